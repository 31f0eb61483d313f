"""The chaos runner's worker: the functions of one deployment, in a process of their own.

``python -m difusion.local.chaos worker --state DIR …`` attaches a :class:`LocalPipeline`
to a deployment the runner provisioned on a running emulator (nothing is provisioned
again), installs the fault injector (faults, or a kill point), lets the pipeline settle
what an earlier worker left, then uploads each cut not yet in the origin, as UCSI would,
and lets it settle (with ``--monitor``, one monitor period overlaps each). What it saw is
written to ``--report`` as JSON when it finishes; a worker killed at its kill point writes
nothing, as a crashed function leaves nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from aws_lambda_powertools.utilities.batch.base import BasePartialProcessor
from botocore.exceptions import ClientError

from difusion.adapters.origin import INCOMING_PREFIX
from difusion.local import pipeline as pipeline_module
from difusion.local.dispatcher import current_function
from difusion.local.emulator import LocalEmulator
from difusion.local.faults import FaultInjector, FaultPlan, KillPoint
from difusion.local.pipeline import LocalPipeline, PipelineOptions
from difusion.local.provision import LocalDeployment
from difusion.signing import SecretKey

DEPLOYMENT_FILE = "deployment.pickle"
# A generous bound on one settle: a pipeline that has not settled by then never will.
SETTLE_SECONDS = 300.0


def save_deployment(state: Path, deployment: LocalDeployment) -> None:
    (state / DEPLOYMENT_FILE).write_bytes(pickle.dumps(deployment))


def load_deployment(state: Path) -> LocalDeployment:
    deployment: LocalDeployment = pickle.loads((state / DEPLOYMENT_FILE).read_bytes())
    return deployment


def attach(deployment: LocalDeployment, emulator: LocalEmulator, log: Any) -> LocalPipeline:
    """A :class:`LocalPipeline` on a deployment provisioned earlier (by the parent): the
    handlers wired to its queues and its sites served, nothing provisioned again."""
    options = PipelineOptions(
        time_scale=deployment.time_scale, max_attempts=deployment.max_attempts
    )
    with mock.patch.object(pipeline_module, "provision", lambda *_, **__: deployment):
        pipeline = LocalPipeline(emulator, SecretKey.generate(), options, log_stream=log)
    if pipeline.deployment.ledger_table != deployment.ledger_table:
        raise RuntimeError("LocalPipeline provisioned a deployment of its own instead of attaching")
    return pipeline


def _uploaded(pipeline: LocalPipeline, package: Path) -> bool:
    try:
        pipeline.s3.head_object(
            Bucket=pipeline.deployment.origin_bucket, Key=INCOMING_PREFIX + package.name
        )
    except ClientError:
        return False
    return True


def _settle(pipeline: LocalPipeline, monitor: bool, monitor_log: Counter[str]) -> None:
    """Let the pipeline settle; with ``monitor``, one monitor period overlaps it."""
    if not monitor:
        pipeline.settle(SETTLE_SECONDS)
        return

    def period() -> None:
        try:
            report = pipeline.run_monitor_period()
            monitor_log["periods"] += 1
            for check in report.get("checks", []):
                monitor_log[f"check {check.get('outcome')}"] += 1
        except Exception as exc:  # a failed period is lost, as a failed scheduled run is
            monitor_log[f"failed {type(exc).__name__}"] += 1

    thread = threading.Thread(target=period, name="monitor-period")
    thread.start()
    pipeline.settle(SETTLE_SECONDS)
    thread.join()
    pipeline.settle(SETTLE_SECONDS)  # what the period sent (a repair)


@contextmanager
def _counting_record_failures(failures: Counter[str]) -> Iterator[None]:
    """Count each record a handler's batch processor reports failed, by function and
    exception: why the steps retried (the handlers log none of it)."""
    lock = threading.Lock()
    original = BasePartialProcessor.failure_handler

    def counted(processor: Any, record: Any, exception: Any) -> Any:
        kind = getattr(exception[0], "__name__", str(exception[0]))
        with lock:
            failures[f"{current_function.get()} {kind}"] += 1
        return original(processor, record, exception)

    with mock.patch.object(BasePartialProcessor, "failure_handler", counted):
        yield


def work(args: argparse.Namespace) -> int:
    """The worker: attach, install the injector, settle what is pending, then upload every
    cut not yet uploaded, settling after each."""
    state = Path(args.state)
    deployment = load_deployment(state)
    port = int(args.endpoint.rsplit(":", 1)[1])
    emulator = LocalEmulator(port=port, kvs_port=args.kvs_port)
    os.environ.update(emulator.environment())
    plan = FaultPlan(rate=args.rate, seed=args.seed) if args.rate else None
    kill = KillPoint(args.kill_at, args.after) if args.kill_at else None
    monitor_log: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    started = time.monotonic()
    injector = FaultInjector(plan, kill)
    error = None
    with open(state / "handlers.jsonl", "a", encoding="utf-8") as log:
        pipeline = attach(deployment, emulator, log)
        try:
            with injector, _counting_record_failures(failures):
                pipeline.settle(SETTLE_SECONDS)
                for package in sorted(Path(args.packages).glob("*.zip")):
                    if _uploaded(pipeline, package):
                        continue
                    pipeline.upload(package)
                    _settle(pipeline, args.monitor, monitor_log)
        except Exception as exc:  # reported below, with what the worker saw until then
            error = f"{type(exc).__name__}: {exc}"
        finally:
            pipeline.close()
    # A raised invocation returns its whole batch to the queue (the dispatcher's record).
    errors = Counter(
        " ".join(e.split(": ")[:2]) + " (invocation)" for e in pipeline.dispatcher.handler_errors
    )
    Path(args.report).write_text(
        json.dumps(
            {
                "faults": injector.counts.to_json(),
                "handler_errors": dict(errors),
                "record_failures": dict(failures.most_common()),
                "monitor": dict(monitor_log),
                "seconds": round(time.monotonic() - started, 1),
                "error": error,
            },
            indent=2,
        )
    )
    if error is not None:
        sys.stderr.write(f"chaos worker: {error}\n")
        return 1
    return 0


def parser(commands: Any) -> None:
    """The ``worker`` subcommand's arguments (the runner passes them)."""
    worker = commands.add_parser("worker", help="(internal) the functions, in a subprocess")
    worker.add_argument("--state", required=True)
    worker.add_argument("--endpoint", required=True)
    worker.add_argument("--kvs-port", type=int, required=True)
    worker.add_argument("--packages", required=True)
    worker.add_argument("--report", required=True)
    worker.add_argument("--rate", type=float, default=0.0)
    worker.add_argument("--seed", type=int, default=0)
    worker.add_argument("--kill-at", type=int, default=0)
    worker.add_argument("--after", action="store_true")
    worker.add_argument("--monitor", action="store_true")


def command(
    state: Path,
    endpoint: str,
    kvs_port: int,
    packages: Path,
    report: Path,
    plan: FaultPlan | None,
    kill: KillPoint | None,
    monitor: bool,
) -> list[str]:
    """The command line that runs a worker, with this process's interpreter."""
    args = [
        sys.executable,
        "-m",
        "difusion.local.chaos",
        "worker",
        "--state",
        str(state),
        "--endpoint",
        endpoint,
        "--kvs-port",
        str(kvs_port),
        "--packages",
        str(packages),
        "--report",
        str(report),
    ]
    if plan is not None:
        args += ["--rate", str(plan.rate), "--seed", str(plan.seed)]
    if kill is not None:
        args += ["--kill-at", str(kill.call)] + (["--after"] if kill.after else [])
    if monitor:
        args.append("--monitor")
    return args

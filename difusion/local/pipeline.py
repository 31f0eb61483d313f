"""The whole pipeline on the embedded default, as one object: provision, submit, settle, read.

Used by ``make demo``, ``difusion local run`` and the integration and e2e tests, so they
all exercise the same path: a package uploaded to the origin bucket, the S3 event carried
by EventBridge to SQS, and the Lambda handlers invoked by the local dispatcher.

The pipeline has one clock (``difusion.local.clock``): the wall clock, or a controlled one
its caller moves. The functions read it through the factory's clock, the monitor's
schedule waits on it, and on a controlled clock the window timer's definition runs on it.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import uuid
import warnings
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from boto3.s3.transfer import TransferConfig

from difusion import topology
from difusion.adapters import factory
from difusion.adapters.ledger import Ledger
from difusion.adapters.origin import INCOMING_PREFIX
from difusion.adapters.pointer_store import KeyValueStorePointer
from difusion.adapters.registry import DifusorRegistry
from difusion.adapters.sessions import new_session
from difusion.local.clock import ControlledClock, PipelineClock, WallClock
from difusion.local.clocked_timer import ClockedExecution
from difusion.local.dispatcher import LambdaContext, LocalDispatcher, Route, invoking
from difusion.local.emulator import REGION, LocalEmulator
from difusion.local.provision import (
    DEMO_DIFUSORES,
    DifusorAccount,
    LocalDeployment,
    account_session,
    provision,
)
from difusion.local.sites import LocalSite, LocalSites
from difusion.models import Difusor
from difusion.package_name import snapshot_id_of
from difusion.signing import SecretKey
from difusion.versions import Pointer, notice_prefix, slot_prefix
from difusion.viewer_headers import ViewerHeaders, portal_origin
from difusion.window import PublicationWindow
from difusion.window_timer import execution_input, execution_name

HANDLERS = {
    "ingest": "lambdas.ingest.handler",
    "sign": "lambdas.sign.handler",
    "replicate": "lambdas.replicate.handler",
    "monitor": "lambdas.monitor.handler",
}
# Lambda runs one invocation per execution environment; the dispatcher runs several at once
# in one process, so Powertools sees a shared Metrics object re-add its dimension.
warnings.filterwarnings("ignore", message="Dimension 'difusor' has already been added")
PORTAL = "institute"
# A hundred times faster than election night: a failed delivery returns in 0.03–0.45 s, and
# a message whose invocation crashed in 54 s instead of 90 minutes.
ACCELERATED = 0.01  # the institute's own portal: the public list of difusores


@dataclass(frozen=True)
class PipelineOptions:
    election: str = "DIP_LOC_BCS"
    time_zone: str = "America/Mazatlan"
    difusores: tuple[DifusorAccount, ...] = DEMO_DIFUSORES
    # Accelerated time: the queues' visibility timeouts and the retry schedule, scaled from
    # the stacks' own (1.0 is election night).
    time_scale: float = ACCELERATED
    # The stacks' maxReceiveCount (config/institute.json, held equal to the topology's).
    max_attempts: int = topology.DEFAULT_MAX_ATTEMPTS
    window: PublicationWindow | None = None  # None: open from the start, for a day
    # 15 min on election night; a second on the wall clock when accelerated (a controlled
    # clock can keep election night's: its periods cost no waiting).
    monitor_period_seconds: int = 1
    monitor_sample_size: int = 0  # 0: every file
    extra_environment: tuple[tuple[str, str], ...] = ()


class LocalPipeline:
    """A provisioned embedded default with the handlers wired to its queues."""

    def __init__(
        self,
        emulator: LocalEmulator,
        secret_key: SecretKey,
        options: PipelineOptions | None = None,
        log_stream: TextIO | None = None,
        clock: PipelineClock | None = None,
    ) -> None:
        self.emulator = emulator
        self.secret_key = secret_key
        self.options = options or PipelineOptions()
        # Replaced between tests like ``options``: ``reset`` provisions on the clock it finds.
        self.clock: PipelineClock = clock or WallClock()
        self.timer: ClockedExecution | None = None  # the window timer, on a controlled clock
        self._log_stream = log_stream
        self.sites = LocalSites()
        self._last_period = 0
        self.deployment: LocalDeployment = self._provision()

    def _provision(self) -> LocalDeployment:
        os.environ.update(self.emulator.environment())
        factory.use_clock(self.clock.now)
        self._last_period = 0
        # On a controlled clock the pipeline runs the timer's definition itself: moto's
        # Step Functions would wait on the wall clock.
        controlled = self.clock if isinstance(self.clock, ControlledClock) else None
        now = self.clock.now()
        window = self.options.window or PublicationWindow(  # open from now, for a day
            now - timedelta(seconds=1), now + timedelta(days=1)
        )
        deployment = provision(
            election=self.options.election,
            time_zone=self.options.time_zone,
            difusores=self.options.difusores,
            secret_key=self.secret_key,
            window=window,
            time_scale=self.options.time_scale,
            max_attempts=self.options.max_attempts,
            start_timer=controlled is None,
        )
        deployment = self._serve_sites(deployment)
        os.environ.update(deployment.function_environment())
        os.environ.update(
            {
                "DIFUSORES_LIST_URL": f"{self.sites[PORTAL].url}/difusores.html",
                "MONITOR_PERIOD_SECONDS": str(self.options.monitor_period_seconds),
                "MONITOR_SAMPLE_SIZE": str(self.options.monitor_sample_size),
                "MONITOR_HTTP_TIMEOUT_SECONDS": "3",
                "RETENTION_DAYS": "1",
            }
        )
        os.environ.update(dict(self.options.extra_environment))
        # Services are cached per execution environment; a fresh deployment is a fresh one.
        for build in (
            factory.ingest_service,
            factory.sign_service,
            factory.replicate_service,
            factory.continuity_service,
        ):
            build.cache_clear()
        # A fresh deployment is a cold start: each handler module runs again with the new
        # environment (settings, idempotency store, powertools objects).
        modules = {
            name: importlib.reload(sys.modules[path])
            if path in sys.modules
            else importlib.import_module(path)
            for name, path in HANDLERS.items()
        }
        self._route_logs(modules["ingest"].logger)
        self._monitor = modules["monitor"].handler
        sqs = new_session().client("sqs")
        self.dispatcher = LocalDispatcher(
            sqs,
            [
                # Lambda's event source mappings, with the stacks' batch sizes; pollers
                # stand for Lambda's scaling (one per active FIFO group for deliveries).
                Route(
                    "difusion-ingest",
                    deployment.ingest_queue_url,
                    modules["ingest"].handler,
                    batch_size=topology.QUEUES["ingest"].batch_size,
                    timeout_seconds=self._timeout("ingest"),
                    pollers=2,
                ),
                Route(
                    "difusion-sign",
                    deployment.sign_queue_url,
                    modules["sign"].handler,
                    batch_size=topology.QUEUES["sign"].batch_size,
                    timeout_seconds=self._timeout("sign"),
                ),
                Route(
                    "difusion-replicate",
                    deployment.delivery_queue_url,
                    modules["replicate"].handler,
                    batch_size=topology.QUEUES["deliveries"].batch_size,
                    timeout_seconds=self._timeout("replicate"),
                    pollers=max(len(deployment.difusores), 1),
                ),
            ],
        )
        if controlled is not None:
            self.timer = self._start_clocked_timer(deployment, controlled)
        return deployment

    def _start_clocked_timer(
        self, deployment: LocalDeployment, clock: ControlledClock
    ) -> ClockedExecution:
        """The deployed timer's definition, executed with its waits on ``clock``: at once up
        to the first instant the clock has not reached (an opening already passed opens
        the window now, as the emulator's execution would)."""
        session = new_session()
        definition = session.client("stepfunctions").describe_state_machine(
            stateMachineArn=deployment.timer_arn
        )["definition"]
        window = deployment.window
        return ClockedExecution(
            json.loads(definition),
            execution_name(deployment.election, window.opening),
            json.loads(execution_input(window.opening, window.closing)),
            clock,
            {"DynamoDB": session.client("dynamodb"), "SQS": session.client("sqs")},
        ).start()

    def _timeout(self, function: str) -> float:
        """The function's timeout in the pipeline's time (its context's remaining time)."""
        return topology.FUNCTIONS[function].timeout_seconds * self.options.time_scale

    def _route_logs(self, logger: Any) -> None:
        if self._log_stream is None:
            return
        for handler in logging.getLogger(logger.service).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(self._log_stream)

    def _serve_sites(self, deployment: LocalDeployment) -> LocalDeployment:
        """Serve each difusor's bucket (and the institute's portal) on loopback, and register
        those addresses as the difusores' public URLs."""
        self.sites.close()
        self.sites.serve(PORTAL, new_session().client("s3"), deployment.origin_bucket, "public/")
        registry = DifusorRegistry(new_session().resource("dynamodb"), deployment.registry_table)
        served = []
        for difusor in deployment.difusores:
            site = self.serve_difusor(difusor)
            difusor = replace(difusor, public_url=site.url)
            registry.put(difusor)
            served.append(difusor)
        return replace(deployment, difusores=tuple(served))

    def serve_difusor(
        self, difusor: Difusor, name: str | None = None, cache_mode: str = "versioned"
    ) -> LocalSite:
        """Serve a difusor's site as its distribution does: its bucket, read as its own
        account, through the edge function and its pointer, with a cache in ``cache_mode``
        (``name``: another site over the same bucket, e.g. in the other mode)."""
        session = account_session(difusor.account_id)
        return self.sites.serve(
            name or difusor.difusor_id,
            session.client("s3"),
            difusor.bucket,
            kvs=(
                session.client("cloudfront-keyvaluestore", region_name=REGION),
                difusor.kvs_arn,
            ),
            cache_mode=cache_mode,
            # the difusor's response headers policy, with the portal's loopback origin
            viewer=ViewerHeaders(cors_origins=(portal_origin(self.portal_url, loopback=True),)),
        )

    @property
    def portal_url(self) -> str:
        """The institute's portal: the list of difusores and the institute's verifier."""
        return self.sites[PORTAL].url

    def reset(self) -> None:
        """Forget everything and provision again (between tests), on ``self.clock``."""
        self._stop_timer()
        self.sites.close()
        self.emulator.reset()
        self.deployment = self._provision()

    def close(self) -> None:
        self._stop_timer()
        self.sites.close()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.stop()
            self.timer = None

    def run_monitor_period(self) -> dict[str, Any]:
        """One update period of the continuity monitor, as its schedule would invoke it:
        the next tick after the last one, once the clock has reached it (a controlled clock
        is moved there, and what falls due on the way — the timer's close — happens first)."""
        period = self.options.monitor_period_seconds
        tick = max(int(self.clock.now().timestamp()), self._last_period + period)
        tick -= tick % period
        if tick <= self._last_period:
            tick += period
        self.clock.wait_until(datetime.fromtimestamp(tick, UTC))
        self._last_period = tick
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": datetime.fromtimestamp(tick, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/difusion-monitor"],
            "detail": {},
        }
        with invoking("difusion-monitor"):  # its calls are the monitor's (as the dispatcher's)
            result: dict[str, Any] = self._monitor(event, LambdaContext("difusion-monitor"))
        return result

    # --- acting --------------------------------------------------------------------

    def upload(self, package: Path, name: str | None = None, multipart: bool = False) -> str:
        """Drop a package into the origin bucket as UCSI does."""
        key = INCOMING_PREFIX + (name or package.name)
        threshold = 5 * 1024 * 1024 if multipart else 1024**3
        config = TransferConfig(multipart_threshold=threshold, multipart_chunksize=5 * 1024 * 1024)
        self.s3.upload_file(str(package), self.deployment.origin_bucket, key, Config=config)
        return key

    def settle(self, timeout: float = 600.0) -> None:
        self.dispatcher.run_until_idle(timeout=timeout)

    def process(self, package: Path, **upload_options: Any) -> dict[str, Any]:
        """Upload one package, let the pipeline settle, return its ledger record."""
        self.upload(package, **upload_options)
        self.settle()
        return (
            self.ledger.snapshot(snapshot_id_of(upload_options.get("name") or package.name)) or {}
        )

    # --- reading -------------------------------------------------------------------

    @property
    def s3(self) -> Any:
        return new_session().client("s3")

    @property
    def ledger(self) -> Ledger:
        return Ledger(
            new_session().resource("dynamodb"),
            self.deployment.ledger_table,
            self.deployment.election,
        )

    @property
    def registry(self) -> DifusorRegistry:
        return DifusorRegistry(new_session().resource("dynamodb"), self.deployment.registry_table)

    def difusor(self, difusor_id: str) -> Difusor:
        return self.registry.get(difusor_id)

    def difusor_s3(self, difusor_id: str) -> Any:
        return account_session(self.difusor(difusor_id).account_id).client("s3")

    def pointer(self, difusor_id: str) -> Pointer | None:
        """The difusor's version pointer, read from its store as its own account would."""
        difusor = self.difusor(difusor_id)
        kvs = account_session(difusor.account_id).client(
            "cloudfront-keyvaluestore", region_name=REGION
        )
        return KeyValueStorePointer(kvs, difusor.kvs_arn).read().pointer

    def versions_made(self, difusor_id: str) -> list[int]:
        """The site versions the difusor's recorded deliveries made live, lowest first (a
        site's first is numbered from the clock: :func:`difusion.versions.version_floor`)."""
        return sorted(
            int(d["site_version"])
            for d in self.ledger.items("DELIVERY#")
            if d["difusor_id"] == difusor_id and d.get("site_version")
        )

    def served_prefix(self, difusor_id: str) -> str | None:
        """The bucket prefix the difusor's site serves now: the live version's slot, or
        the notice of a suspended site (``None``: nothing yet)."""
        pointer = self.pointer(difusor_id)
        if pointer is None:
            return None
        if pointer.live is None:
            assert pointer.notice is not None
            return notice_prefix(pointer.notice)
        return slot_prefix(pointer.live.slot)

    def site_objects(self, difusor_id: str) -> dict[str, bytes]:
        """What the difusor's site serves now, by path: the files of its live version (or
        of its notice), read from its bucket as its own account would."""
        prefix = self.served_prefix(difusor_id)
        if prefix is None:
            return {}
        return {
            key[len(prefix) :]: data
            for key, data in self.bucket_objects(difusor_id, prefix).items()
        }

    def tamper(
        self, difusor_id: str, path: str, body: bytes | None, content_type: str | None = None
    ) -> str:
        """Overwrite ``path`` of what the difusor's site serves now (``None``: delete it),
        as the difusor's own account can, and invalidate its distribution so the public
        sees it (it owns both: a difusor that cannot be trusted); the key changed."""
        prefix = self.served_prefix(difusor_id)
        if prefix is None:
            raise ValueError(f"{difusor_id} serves nothing yet")
        key = prefix + path
        s3, bucket = self.difusor_s3(difusor_id), self.difusor(difusor_id).bucket
        if body is None:
            s3.delete_object(Bucket=bucket, Key=key)
        else:
            extra = {"ContentType": content_type} if content_type else {}
            s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        site = self.sites.sites.get(difusor_id)
        if site is not None and site.cache is not None:
            site.cache.invalidate()
        return key

    def bucket_objects(self, difusor_id: str, prefix: str = "") -> dict[str, bytes]:
        """Everything in a difusor's bucket under ``prefix``, by key."""
        difusor = self.difusor(difusor_id)
        s3 = self.difusor_s3(difusor_id)
        objects: dict[str, bytes] = {}
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=difusor.bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                objects[item["Key"]] = s3.get_object(Bucket=difusor.bucket, Key=item["Key"])[
                    "Body"
                ].read()
        return objects

    def download_site(self, difusor_id: str, destination: Path) -> int:
        objects = self.site_objects(difusor_id)
        for key, data in objects.items():
            path = destination / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return len(objects)

    def dead_letters(self, queue: str) -> list[dict[str, Any]]:
        sqs = new_session().client("sqs")
        url = self.deployment.dead_letter_queue_urls[queue]
        return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])

    def report(self) -> dict[str, Any]:
        """Every snapshot and delivery as the ledger records them."""
        ledger = self.ledger
        return {
            "election": self.deployment.election,
            "head": ledger.items("HEAD"),
            "snapshots": sorted(ledger.items("SNAPSHOT#"), key=lambda s: s["snapshot_id"]),
            "rejections": ledger.items("REJECTION#"),
            "deliveries": sorted(
                ledger.items("DELIVERY#"), key=lambda d: (d["snapshot_id"], d["difusor_id"])
            ),
            "published": ledger.items("PUBLISHED#"),
            "difusores": [
                {k: v for k, v in d.to_item().items() if k != "external_id"}
                for d in self.registry.all()
            ],
        }

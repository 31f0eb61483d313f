"""``make chaos``: election nights under injected faults, and crashes at random points.

Two kinds of run, both on one embedded default (a moto server this process owns), each on
its own freshly provisioned deployment, with the functions in a **worker subprocess**
(``python -m difusion.local.chaos worker``) so that killing them leaves the emulator
running, as a crashed Lambda leaves AWS:

``nights``
    Each night uploads the cuts one after the other, as UCSI would, and lets the pipeline
    settle after each, with faults injected into ``--rate`` of every AWS call the functions
    make (``difusion.local.faults``; 503 SlowDown, 500, throttling, connection refused, and
    connection reset and read timeout after the call executed), and one monitor period per
    cut that overlaps its deliveries. Faults stay on to the end and nobody redrives a dead
    letter: the pipeline must converge by itself, with its own bounded retries.
``crash``
    A kill point is the N-th AWS call the functions make, before it is sent or after the
    service executed it. The worker is SIGKILLed there; a fresh worker then runs the rest
    of the night (what the dead one held comes back within one hold, its heartbeat
    stopped, scaled by ``--time-scale``) and must converge. Kill points are drawn with the seed over
    the calls a clean night makes (measured first, on its own deployment).

After each run :func:`difusion.local.convergence.inspect` reads what the night left and
names every rule broken. The runner prints the figures per run and in total, writes them to
``--out`` as JSON, and exits 1 if any rule was broken (0 otherwise). The seed is printed
first: ``--seed`` replays a run (night ``i`` of seed ``S`` is night 0 of seed ``S + i``;
a kill point is replayed with ``--kill-at N [--after]``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import difusion
from difusion import topology
from difusion.generator import SeriesSpec, generate_series
from difusion.local import chaos_worker
from difusion.local.chaos_report import RunResult, WorkerRun, report, run_line
from difusion.local.convergence import Findings, inspect
from difusion.local.emulator import LocalEmulator
from difusion.local.faults import FaultPlan, KillPoint
from difusion.local.pipeline import ACCELERATED
from difusion.local.provision import DEMO_DIFUSORES, LocalDeployment, provision
from difusion.package_name import snapshot_id_of
from difusion.signing import SecretKey

# Crash runs wait out a step's hold after each kill (its heartbeat stopped): at least 1 s.
CRASH_TIME_SCALE = 0.002
WORKER_TIMEOUT_SECONDS = 900.0


@dataclass(frozen=True)
class NightSpec:
    """What one night is: its cuts, its difusores, its time and its receive count."""

    cuts: int = 8
    casillas: int = 24
    difusores: int = 3
    time_scale: float = ACCELERATED
    max_attempts: int = topology.DEFAULT_MAX_ATTEMPTS  # the stacks' maxReceiveCount
    monitor: bool = True


class ChaosHarness:
    """An emulator, a key and one night's packages; provisions a deployment per run and
    drives worker subprocesses against it."""

    def __init__(self, emulator: LocalEmulator, work_dir: Path, spec: NightSpec) -> None:
        self.emulator = emulator
        self.work_dir = work_dir
        self.spec = spec
        self.secret_key = SecretKey.generate()
        snapshots = generate_series(SeriesSpec.small(cuts=spec.cuts, casillas=spec.casillas))
        self.packages_dir = work_dir / "packages"
        self.packages = [s.write_package(self.packages_dir) for s in snapshots]
        self.snapshot_ids = [snapshot_id_of(p.name) for p in self.packages]
        os.environ.update(emulator.environment())

    def deploy(self, name: str) -> Path:
        """A fresh deployment on the emulator; returns the run's directory."""
        state = self.work_dir / "runs" / name
        state.mkdir(parents=True, exist_ok=True)
        deployment = provision(
            election="DIP_LOC_BCS",
            difusores=DEMO_DIFUSORES[: self.spec.difusores],
            secret_key=self.secret_key,
            time_scale=self.spec.time_scale,
            max_attempts=self.spec.max_attempts,
        )
        chaos_worker.save_deployment(state, deployment)
        return state

    def run_worker(
        self,
        state: Path,
        plan: FaultPlan | None = None,
        kill: KillPoint | None = None,
        timeout: float = WORKER_TIMEOUT_SECONDS,
    ) -> WorkerRun:
        """Run the functions in a subprocess until the night is over (or killed)."""
        index = len(list(state.glob("worker-*.log")))
        report_path = state / f"worker-{index}.json"
        command = chaos_worker.command(
            state,
            self.emulator.endpoint,
            self.emulator.kvs_port,
            self.packages_dir,
            report_path,
            plan,
            kill,
            self.spec.monitor,
        )
        root = str(Path(difusion.__file__).resolve().parents[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        }
        with open(state / f"worker-{index}.log", "w", encoding="utf-8") as log:
            try:
                process = subprocess.run(
                    command, stdout=log, stderr=subprocess.PIPE, env=env, timeout=timeout
                )
                returncode, stderr = process.returncode, process.stderr.decode("utf-8", "replace")
            except subprocess.TimeoutExpired as exc:
                returncode = 124
                stderr = (exc.stderr or b"").decode("utf-8", "replace") + "\n(timed out)"
        figures = json.loads(report_path.read_text()) if report_path.exists() else {}
        return WorkerRun(returncode, figures, stderr)

    @staticmethod
    def deployment(state: Path) -> LocalDeployment:
        return chaos_worker.load_deployment(state)

    def inspect(self, state: Path) -> Findings:
        return inspect(self.deployment(state), self.snapshot_ids, self.secret_key.public_key)

    # --- runs ----------------------------------------------------------------------------

    def night(self, seed: int, rate: float) -> RunResult:
        """A night with ``rate`` of the functions' calls failing, decided by ``seed``."""
        return self._night(f"night-{rate:g}-{seed}", seed, FaultPlan(rate=rate, seed=seed))

    def calls_in_a_clean_night(self) -> tuple[int, RunResult]:
        """The calls a night without faults makes (the kill points are drawn over them);
        the clean night is itself a control."""
        result = self._night("clean", None, None)
        return int(result.workers[0].report.get("faults", {}).get("calls", 0)), result

    def _night(self, name: str, seed: int | None, plan: FaultPlan | None) -> RunResult:
        started = time.monotonic()
        state = self.deploy(name)
        worker = self.run_worker(state, plan=plan)
        findings = self.inspect(state)
        _worker_must_finish(findings, worker, f"{name}'s worker")
        findings.figures["seconds"] = round(time.monotonic() - started, 1)
        return RunResult(name, seed, findings, [worker], state=state)

    def kill_point(self, kill: KillPoint) -> RunResult:
        started = time.monotonic()
        name = f"kill-{kill.call}-{'after' if kill.after else 'before'}"
        state = self.deploy(name)
        first = self.run_worker(state, kill=kill)
        if not first.killed:
            # The night made fewer calls this time: it ran to the end, a plain night.
            findings = self.inspect(state)
            _worker_must_finish(findings, first, "the worker (kill point not reached)")
            findings.figures["kill_point_reached"] = False
            return RunResult(name, None, findings, [first], kill, state)
        second = self.run_worker(state)
        findings = self.inspect(state)
        _worker_must_finish(findings, second, "the restarted worker")
        findings.figures["kill_point_reached"] = True
        findings.figures["killed_at"] = _last_line(first.stderr)
        findings.figures["seconds"] = round(time.monotonic() - started, 1)
        return RunResult(name, None, findings, [first, second], kill, state)


def _worker_must_finish(findings: Findings, worker: WorkerRun, who: str) -> None:
    if worker.returncode != 0:
        findings.violations.insert(
            0, f"{who} exited {worker.returncode}: {_last_line(worker.stderr)}"
        )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def draw_kill_points(seed: int, calls: int, count: int) -> list[KillPoint]:
    """``count`` distinct kill points over a night of ``calls`` calls, drawn with ``seed``."""
    rng = random.Random(seed)
    span = max(calls, 1)
    points: set[tuple[int, bool]] = set()
    while len(points) < min(count, 2 * span):
        points.add((rng.randint(1, span), rng.random() < 0.5))
    return [KillPoint(call, after) for call, after in sorted(points)]


def run_parallel(
    jobs: int, tasks: Sequence[Callable[[], RunResult]], on_done: Callable[[RunResult], None]
) -> list[RunResult]:
    """Run ``tasks`` in ``jobs`` lanes (each its own deployment and worker)."""
    lock = threading.Lock()

    def run(task: Callable[[], RunResult]) -> RunResult:
        result = task()
        with lock:
            on_done(result)
        return result

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        return list(pool.map(run, tasks))


# --- the command line ----------------------------------------------------------------------


def _spec(args: argparse.Namespace, time_scale: float) -> NightSpec:
    return NightSpec(
        cuts=args.cuts,
        casillas=args.casillas,
        difusores=args.difusores,
        time_scale=args.time_scale or time_scale,
        max_attempts=args.max_attempts,
        monitor=not args.no_monitor,
    )


@contextmanager
def _session(args: argparse.Namespace, name: str, spec: NightSpec) -> Iterator[ChaosHarness]:
    """An emulator of its own and the night's packages, for one command."""
    work_dir = Path(args.out) / "work" / name
    work_dir.mkdir(parents=True, exist_ok=True)
    with LocalEmulator(log_path=work_dir / "emulator.log") as emulator:
        yield ChaosHarness(emulator, work_dir, spec)


def _print(text: str) -> None:
    print(text, flush=True)


def run_nights(args: argparse.Namespace, seed: int) -> bool:
    spec = _spec(args, ACCELERATED)
    title, name = f"chaos {args.rate:.0%}", f"nights-{args.rate:g}-{seed}"
    _print(
        f"{title}: seed {seed}; {args.nights} night(s) of {spec.cuts} cuts × "
        f"{spec.difusores} difusores"
    )
    with _session(args, name, spec) as harness:
        tasks = [(lambda s=seed + i: harness.night(s, args.rate)) for i in range(args.nights)]
        results = run_parallel(args.jobs, tasks, lambda r: _print(run_line(r)))
    return report(title, name, seed, results, Path(args.out))


def run_crash(args: argparse.Namespace, seed: int) -> bool:
    spec = _spec(args, CRASH_TIME_SCALE)
    _print(
        f"crash: seed {seed}; {1 if args.kill_at else args.points} kill point(s), nights of "
        f"{spec.cuts} cuts × "
        f"{spec.difusores} difusores, time scale {spec.time_scale:g}"
    )
    with _session(args, f"crash-{seed}", spec) as harness:
        results: list[RunResult] = []
        if args.kill_at:
            points = [KillPoint(args.kill_at, args.after)]
        else:
            calls, clean = harness.calls_in_a_clean_night()
            _print(f"a clean night makes {calls} calls")
            _print(run_line(clean))
            results.append(clean)
            points = draw_kill_points(seed, calls, args.points)
        _print("kill points: " + ", ".join(str(p) for p in points))
        tasks = [(lambda p=p: harness.kill_point(p)) for p in points]
        results += run_parallel(args.jobs, tasks, lambda r: _print(run_line(r)))
    return report("crash", f"crash-{seed}", seed, results, Path(args.out))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m difusion.local.chaos", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("nights", "nights with faults injected into the functions' AWS calls"),
        ("crash", "SIGKILL the functions at random calls, restart them, check convergence"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--seed", type=int, default=None, help="replay (default: random)")
        command.add_argument("--cuts", type=int, default=8 if name == "nights" else 3)
        command.add_argument("--casillas", type=int, default=24 if name == "nights" else 8)
        command.add_argument("--difusores", type=int, default=3, choices=(1, 2, 3))
        command.add_argument("--max-attempts", type=int, default=NightSpec.max_attempts)
        command.add_argument("--time-scale", type=float, default=None)
        command.add_argument("--no-monitor", action="store_true")
        command.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
        command.add_argument("--out", default="out/chaos")
    nights = commands.choices["nights"]
    nights.add_argument("--rate", type=float, required=True, help="share of calls that fail")
    nights.add_argument("--nights", type=int, default=2)
    crash = commands.choices["crash"]
    crash.add_argument("--points", type=int, default=50)
    crash.add_argument("--kill-at", type=int, default=0, help="one given kill point")
    crash.add_argument("--after", action="store_true", help="…after the call executed")
    chaos_worker.parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "worker":
        return chaos_worker.work(args)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    ok = run_nights(args, seed) if args.command == "nights" else run_crash(args, seed)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

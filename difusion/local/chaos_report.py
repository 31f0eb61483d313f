"""What the chaos runner prints and keeps: each run's result, a line per run, the totals."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difusion.local.convergence import Findings
from difusion.local.faults import KillPoint

KILLED = -9  # a worker's return code when its kill point SIGKILLed it


@dataclass
class WorkerRun:
    returncode: int
    report: dict[str, Any]
    stderr: str

    @property
    def killed(self) -> bool:
        return self.returncode == KILLED


@dataclass
class RunResult:
    """One night or one kill point: what the workers reported and what the night left."""

    name: str
    seed: int | None
    findings: Findings
    workers: list[WorkerRun] = field(default_factory=list)
    kill: KillPoint | None = None
    state: Path | None = None  # the run's directory: its deployment, the workers' logs

    @property
    def ok(self) -> bool:
        return self.findings.ok

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "kill": None
            if self.kill is None
            else {"call": self.kill.call, "after": self.kill.after},
            "workers": [
                {"returncode": w.returncode, "report": w.report, "stderr_tail": w.stderr[-2000:]}
                for w in self.workers
            ],
            **self.findings.to_json(),
        }


@dataclass
class WorkerFigures:
    """What the workers of some runs saw, added up."""

    calls: int = 0
    retries: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    redelivered: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, result: RunResult) -> None:
        for worker in result.workers:
            counts = worker.report.get("faults", {})
            self.calls += int(counts.get("calls", 0))
            self.retries += int(counts.get("retries", 0))
            self.faults.update(counts.get("injected", {}))
            self.redelivered.update(counts.get("redelivered", {}))
            self.failures.update(worker.report.get("record_failures", {}))
            self.failures.update(worker.report.get("handler_errors", {}))


def run_line(result: RunResult) -> str:
    """One line per run, as it finishes."""
    f = result.findings.figures
    snapshots, deliveries = f.get("snapshots", {}), f.get("deliveries", {})
    workers = WorkerFigures()
    workers.add(result)
    dead = f.get("dead_letters", {})
    verdict = "ok" if result.ok else f"FAILED ({len(result.findings.violations)})"
    if f.get("kill_point_reached") is False:
        verdict += " (kill point not reached)"
    return (
        f"{result.name:24s} accepted {snapshots.get('accepted')}/{snapshots.get('expected')}  "
        f"delivered {deliveries.get('made')}/{deliveries.get('expected')}  "
        f"faults {sum(workers.faults.values())}  sdk retries {workers.retries}  "
        f"step retries {sum(workers.redelivered.values())}  "
        f"dlq {dead.get('ingest', 0)}/{dead.get('sign', 0)}/{dead.get('deliveries', 0)}  "
        f"double {f.get('double_publications')}  regressions {f.get('regressions')}  "
        f"verified {f.get('verified')}  altered {f.get('monitor_checks', {}).get('altered', 0)}  "
        f"{f.get('seconds', '?')} s  {verdict}"
    )


def summarize(results: Sequence[RunResult]) -> dict[str, Any]:
    """The totals ``make chaos`` prints."""
    totals: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    workers = WorkerFigures()
    for result in results:
        f = result.findings.figures
        totals["snapshots expected"] += f.get("snapshots", {}).get("expected", 0)
        totals["snapshots accepted"] += f.get("snapshots", {}).get("accepted", 0)
        totals["deliveries expected"] += f.get("deliveries", {}).get("expected", 0)
        totals["deliveries made"] += f.get("deliveries", {}).get("made", 0)
        totals["double publications"] += f.get("double_publications", 0)
        totals["regressions"] += f.get("regressions", 0)
        totals["altered checks"] += f.get("monitor_checks", {}).get("altered", 0)
        totals["runs with violations"] += 0 if result.ok else 1
        dead.update(f.get("dead_letters", {}))
        statuses.update(f.get("deliveries", {}).get("statuses", {}))
        workers.add(result)
    return {
        **dict(totals),
        "function calls": workers.calls,
        "sdk retries": workers.retries,
        "faults injected": dict(sorted(workers.faults.items())),
        "step retries (messages received again)": dict(sorted(workers.redelivered.items())),
        "dead letters": dict(dead),
        "delivery records": dict(sorted(statuses.items())),
        "failed records and invocations": dict(workers.failures.most_common()),
    }


def report(title: str, name: str, seed: int, results: Sequence[RunResult], out: Path) -> bool:
    """Print the totals and every broken rule; keep it all in ``out/<name>.json``. True
    when every run kept every rule."""
    ok = all(r.ok for r in results)
    totals = summarize(results)
    print(f"\n== {title}: seed {seed} ==")
    for key, value in totals.items():
        print(f"  {key}: {value}")
    failing = [r for r in results if not r.ok]
    for result in failing:
        print(f"\n  {result.name} (seed {result.seed}, kill {result.kill}):")
        for violation in result.findings.violations[:12]:
            print(f"    - {violation}")
        if len(result.findings.violations) > 12:
            print(f"    … and {len(result.findings.violations) - 12} more")
    print(f"\n{title}: {'every rule holds' if ok else f'{len(failing)} run(s) broke a rule'}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(
        json.dumps(
            {"seed": seed, "totals": totals, "runs": [r.to_json() for r in results]},
            indent=2,
            default=str,
        )
    )
    print(f"figures in {path}")
    return ok

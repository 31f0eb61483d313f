"""``make demo``: a whole election night, in accelerated time, on the embedded default.

The night runs on a controlled clock: its times (the opening, cuts every 20 minutes, the
monitor's periods, the close and its grace) are the story's, and the clock moves only when
the story does, so the night is the same however long the machine takes for each step.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from difusion.adapters.site_sources import DirectorySource
from difusion.generator import SeriesSpec, generate_series
from difusion.local.clock import ControlledClock
from difusion.local.demo_memoria import write_demo_memorias
from difusion.local.pipeline import LocalPipeline, PipelineOptions
from difusion.local.session import (
    PackageOutcome,
    embedded_pipeline,
    published_summary,
    run_package,
)
from difusion.package_name import snapshot_id_of
from difusion.records import as_item
from difusion.signing import SecretKey
from difusion.verification import verify_site
from difusion.window import PublicationWindow


@dataclass(frozen=True)
class NightPlan:
    """An election night, in the night's own time."""

    cut_interval: timedelta = timedelta(minutes=20)  # UCSI's cuts arrive this far apart
    grace: timedelta = timedelta(minutes=15)
    # 15 minutes on election night; 5 here, so the down site's three failed periods come
    # while cuts still arrive (20 minutes without one is an upstream stall).
    monitor_period_seconds: int = 300
    difusor_down: str = "canal-10-los-cabos"
    close_reason: str = "100% de actas registradas (RE art. 353.6)"


def _window_for(plan: NightPlan, clock: ControlledClock, held: int) -> PublicationWindow:
    # The first cuts arrive before the opening, one interval apart.
    opening = clock.now() + held * plan.cut_interval
    # The timer would close a day later; the operator closes early when all actas are in.
    return PublicationWindow(opening, opening + timedelta(hours=24), plan.grace)


def run_demo(
    out_dir: Path, spec: SeriesSpec, console: Console | None = None, plan: NightPlan | None = None
) -> dict[str, Any]:
    """Play a night: cuts held before the opening and released at it, one difusor's site
    down and suspended, an early close, a late cut refused, the closing record. Leaves its
    results in ``out_dir``: report.json, sites/<difusor>/, registro-de-cierre.{json,html},
    difusores.html, keys/prep.pub, logs. Returns the report."""
    console = console or Console()
    plan = plan or NightPlan()
    if spec.cuts < 3:
        raise ValueError("the night needs at least 3 cuts: held, published, and a late one")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    secret_key = SecretKey.generate()
    (out_dir / "keys").mkdir()
    (out_dir / "keys" / "prep.pub").write_text(secret_key.public_key.to_file())

    console.print(
        f"[bold]difusion demo[/] — an election night in accelerated time: {spec.casillas} "
        f"casillas, {spec.cuts} cuts, election {spec.election_code}"
    )
    with console.status("generating the PREP snapshot series…"):
        snapshots = generate_series(spec)
        packages = [s.write_package(out_dir / "packages") for s in snapshots]
    held_count = max(1, spec.cuts // 4)
    before, during, late = packages[:held_count], packages[held_count:-1], packages[-1]
    console.print(
        f"public key {secret_key.public_key.key_id_text}  "
        f"fingerprint {secret_key.public_key.fingerprint}"
    )
    started = time.monotonic()
    clock = ControlledClock(datetime.now().astimezone().replace(second=0, microsecond=0))
    options = PipelineOptions(
        window=_window_for(plan, clock, held_count),
        monitor_period_seconds=plan.monitor_period_seconds,
        monitor_sample_size=64,
    )
    outcomes: list[PackageOutcome] = []
    story: list[str] = []
    with embedded_pipeline(out_dir, secret_key, options, clock) as pipeline:
        window = pipeline.deployment.window
        tz = ZoneInfo(pipeline.deployment.time_zone)

        def say(message: str) -> None:
            stamp = clock.now().astimezone(tz).strftime("%H:%M:%S")
            story.append(f"{stamp} {message}")
            console.print(f"[dim]{stamp}[/] {message}")

        say(
            f"embedded default up: moto on {pipeline.emulator.endpoint}; difusores "
            + ", ".join(
                f"{d.difusor_id} ({d.account_id}) at {d.public_url}"
                for d in pipeline.deployment.difusores
            )
        )
        say(
            f"window opens at {window.opening.astimezone(tz):%H:%M:%S}; a cut every "
            f"{_minutes(plan.cut_interval)}, a monitor period every "
            f"{_minutes(timedelta(seconds=plan.monitor_period_seconds))}"
        )
        # Before the opening: processed and signed, not published
        for index, package in enumerate(before):
            if index:
                clock.advance(plan.cut_interval)
            outcome = run_package(pipeline, package)
            outcomes.append(outcome)
            say(f"{package.name}: {outcome.status}; {_held(pipeline, outcome)}")
        clock.advance_to(window.opening)  # the timer fires: it opens and releases
        if pipeline.ledger.window().state != "open":
            raise RuntimeError("the window timer did not open the window at the opening")
        say("the window is open: the timer releases the newest snapshot to every difusor")
        pipeline.settle()
        _monitor(pipeline, say)
        # During the night: a cut every 20 minutes; one difusor's site goes down
        for index, package in enumerate(during):
            clock.advance(plan.cut_interval)
            outcome = run_package(pipeline, package)
            outcomes.append(outcome)
            say(
                f"{package.name}: {outcome.status}, delivered to "
                f"{_delivered(pipeline, package.name)} difusores"
            )
            if index == 0:
                pipeline.sites[plan.difusor_down].take_down()
                say(f"[red]{plan.difusor_down}'s site goes down[/]")
            _monitor(pipeline, say)
        for _ in range(4):  # until three consecutive periods have failed
            if pipeline.difusor(plan.difusor_down).status == "suspended":
                break
            _monitor(pipeline, say)
        # The close; the late cut arrives a minute after its grace
        pipeline.ledger.close_early(clock.now(), plan.close_reason)
        closed_at = pipeline.ledger.window().closed_at
        say(f"UCSI closes the window: {plan.close_reason}")
        assert closed_at is not None
        clock.advance_to(closed_at + window.grace + timedelta(minutes=1))
        outcome = run_package(pipeline, late)
        outcomes.append(outcome)
        say(
            f"{late.name} arrives after the close and its grace: {outcome.status} "
            f"({outcome.code}: {outcome.reason})"
        )
        finalized = _monitor(pipeline, say)["finalized"]

        report = pipeline.report()
        report["packages"] = [o.to_json() for o in outcomes]
        report["published_now"] = published_summary(pipeline)
        report["handler_errors"] = pipeline.dispatcher.handler_errors
        report["window"] = {
            "opening": window.opening.isoformat(),
            "opened_at": _iso(pipeline.ledger.window().opened_at),
            "closed_at": _iso(closed_at),
            "grace_seconds": int(window.grace.total_seconds()),
        }
        report["story"] = story
        report["incidents"] = [as_item(i) for i in pipeline.ledger.incident_records()]
        for difusor in pipeline.deployment.difusores:
            pipeline.download_site(difusor.difusor_id, out_dir / "sites" / difusor.difusor_id)
        origin = pipeline.deployment.origin_bucket
        for key, name in (
            (finalized["record_key"], "registro-de-cierre.json"),
            (finalized["record_html_key"], "registro-de-cierre.html"),
            ("public/difusores.html", "difusores.html"),
            ("public/difusores.json", "difusores.json"),
            ("public/verificador.html", "verificador.html"),
        ):
            body = pipeline.s3.get_object(Bucket=origin, Key=key)["Body"].read()
            (out_dir / name).write_bytes(body)
        report["closing_record"] = finalized
        # Judged by the closing record's rule (the replicate gate's): see difusion.window.
        closing = json.loads((out_dir / "registro-de-cierre.json").read_text(encoding="utf-8"))
        report["publication_times"] = _publication_times(
            report["deliveries"], len(closing["deliveries_outside_window"])
        )
        # Each difusor's memoria técnica, from logs made for this night and this ledger
        report["memorias"] = write_demo_memorias(
            pipeline, out_dir / "memoria", window.opening, closed_at + window.grace
        )
        (out_dir / "report.json").write_text(
            json.dumps(report, indent=2, ensure_ascii=False, default=str)
        )

    console.print(_deliveries_table(report, tz))
    times = report["publication_times"]
    mark = (
        "[green]none[/]" if times["outside_window"] == 0 else f"[red]{times['outside_window']}[/]"
    )
    console.print(
        f"deliveries published: {times['published']}, first at {times['first']}, last at "
        f"{times['last']}; published before the opening or after the close: {mark}"
    )
    verdicts = {}
    for difusor in report["difusores"]:
        site = out_dir / "sites" / difusor["difusor_id"]
        if difusor["status"] == "suspended":
            notice = (site / "index.html").read_text(encoding="utf-8")
            shown = "fue interrumpida" in notice
            verdicts[difusor["difusor_id"]] = shown
            console.print(
                f"  {difusor['difusor_id']}: suspended — "
                + ("[green]notice shown on its portal[/]" if shown else "[red]no notice[/]")
            )
            continue
        result = verify_site(DirectorySource(site), secret_key.public_key, history=True)
        verdicts[difusor["difusor_id"]] = result.ok
        mark = "[green]verified[/]" if result.ok else f"[red]FAILED[/] {result.problems[:3]}"
        console.print(
            f"  {difusor['difusor_id']}: {result.files} files, {result.actas_checked} actas, "
            f"history of {result.history_checked}, snapshot {result.snapshot_id} — {mark}"
        )
    for memoria in report["memorias"]:
        console.print(
            f"  memoria técnica of {memoria['difusor_id']}: {memoria['hits']:,} hits, "
            f"{memoria['incidents']} incidents, criteria {', '.join(memoria['criteria']) or '—'}"
            f" — {memoria['html']}"
        )
    console.print(
        f"done in {time.monotonic() - started:.1f} s. Results in {out_dir}/ (report.json, "
        "registro-de-cierre.html, difusores.html, verificador.html, sites/, memoria/, "
        "keys/prep.pub). "
        "Check a site with "
        "difusion verify (files, every acta's CODIGO_INTEGRIDAD, the whole chain) or the "
        "stock minisign tool:\n"
        f"  difusion verify {out_dir}/sites/uabcs --public-key {out_dir}/keys/prep.pub --history\n"
        f"  minisign -Vm {out_dir}/sites/uabcs/.well-known/prep/manifest.json "
        f"-x {out_dir}/sites/uabcs/.well-known/prep/manifest.json.minisig "
        f"-p {out_dir}/keys/prep.pub"
    )
    report["verified"] = all(verdicts.values()) and times["outside_window"] == 0
    return report


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _held(pipeline: LocalPipeline, outcome: PackageOutcome) -> str:
    record = pipeline.ledger.snapshot(outcome.snapshot_id) or {}
    if record.get("held_at"):
        return "signed and held: publication opens at the opening"
    return f"delivered to {_delivered(pipeline, outcome.package)} difusores"


def _delivered(pipeline: LocalPipeline, package_name: str) -> int:
    snapshot_id = snapshot_id_of(package_name)
    return sum(
        1
        for d in pipeline.ledger.items(f"DELIVERY#{snapshot_id}#")
        if d.get("status") == "delivered"
    )


def _monitor(pipeline: LocalPipeline, say: Callable[[str], None]) -> dict[str, Any]:
    report = pipeline.run_monitor_period()
    checks = ", ".join(f"{c['difusor_id']} {c['outcome']}" for c in report["checks"])
    actions = "; ".join(report["actions"])
    if report["finalized"]:
        say(f"monitor: the closing record is written ({report['finalized']['record_key']})")
    else:
        say(
            f"monitor period: {checks or 'no sites to check'}"
            + (f" → {actions}" if actions else "")
        )
    return report


def _minutes(span: timedelta) -> str:
    return f"{int(span.total_seconds() // 60)} min"


def _publication_times(deliveries: list[dict[str, Any]], outside: int) -> dict[str, Any]:
    moments = sorted(d["finished_at"] for d in deliveries if d.get("status") == "delivered")
    return {
        "published": len(moments),
        "first": moments[0] if moments else None,
        "last": moments[-1] if moments else None,
        "outside_window": outside,
    }


def _deliveries_table(report: dict[str, Any], tz: ZoneInfo) -> Table:
    table = Table(title=f"Deliveries (snapshot × difusor), {report['election']}")
    for column in ("cut", "difusor", "status", "why", "copied", "published at"):
        table.add_column(column, justify="right" if column == "copied" else "left")
    for package in report["packages"]:
        if package["status"] != "accepted":
            table.add_row(
                _cut_label(package["snapshot_id"]),
                "—",
                f"[red]{package['status']}[/]",
                package["code"] or "",
                "",
                "",
            )
            continue
        rows = sorted(
            (d for d in report["deliveries"] if d["snapshot_id"] == package["snapshot_id"]),
            key=lambda d: (d["difusor_id"], d.get("finished_at", "")),
        )
        if not rows:
            table.add_row(
                _cut_label(package["snapshot_id"]),
                "—",
                "held",
                "superseded before the opening",
                "",
                "",
            )
        for index, d in enumerate(rows):
            status = str(d.get("status"))
            style = "green" if status == "delivered" else "yellow"
            at = d.get("finished_at") if status == "delivered" else None
            table.add_row(
                _cut_label(package["snapshot_id"]) if index == 0 else "",
                d["difusor_id"],
                f"[{style}]{status}[/]",
                str(d.get("reason", "")).split(":")[0],
                str(d.get("objects_copied", "")),
                datetime.fromisoformat(at).astimezone(tz).strftime("%H:%M:%S") if at else "",
            )
    return table


def _cut_label(snapshot_id: str) -> str:
    """``20240602_2120_PREP_…`` → ``06-02 21:20``."""
    stamp = snapshot_id[:13]
    if len(stamp) == 13 and stamp[8] == "_" and stamp.replace("_", "").isdigit():
        return f"{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}"
    return snapshot_id

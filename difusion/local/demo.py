"""``make demo``: a night of PREP cuts through the whole pipeline on the embedded default."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from difusion.generator import SeriesSpec, generate_series
from difusion.local.session import embedded_pipeline, published_summary, run_package
from difusion.signing import SecretKey
from difusion.verification import verify_directory


def run_demo(out_dir: Path, spec: SeriesSpec, console: Console | None = None) -> dict[str, Any]:
    """Generate a series, run every cut through the pipeline, and leave its results in
    ``out_dir``: report.json, sites/<difusor>/, keys/prep.pub, logs. Returns the report."""
    console = console or Console()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    secret_key = SecretKey.generate()
    (out_dir / "keys").mkdir()
    (out_dir / "keys" / "prep.pub").write_text(secret_key.public_key.to_file())

    console.print(
        f"[bold]difusion demo[/] — {spec.casillas} casillas, {spec.cuts} cuts every "
        f"{int(spec.interval.total_seconds() // 60)} min, election {spec.election_code}"
    )
    with console.status("generating the PREP snapshot series…"):
        snapshots = generate_series(spec)
        packages = [s.write_package(out_dir / "packages") for s in snapshots]
    console.print(
        f"public key {secret_key.public_key.key_id_text}  "
        f"fingerprint {secret_key.public_key.fingerprint}"
    )

    table = Table(title=f"Deliveries (snapshot × difusor), {spec.election_code}")
    table.add_column("cut")
    table.add_column("files", justify="right")
    table.add_column("difusor")
    table.add_column("status")
    table.add_column("copied", justify="right")
    table.add_column("deleted", justify="right")
    table.add_column("seconds", justify="right")

    started = time.monotonic()
    with embedded_pipeline(out_dir, secret_key) as pipeline:
        console.print(
            f"embedded default up: moto on {pipeline.emulator.endpoint}, origin bucket "
            f"{pipeline.deployment.origin_bucket}, difusores "
            + ", ".join(f"{d.difusor_id} ({d.account_id})" for d in pipeline.deployment.difusores)
        )
        outcomes = []
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("publishing cuts", total=len(packages))
            for package in packages:
                progress.update(task, description=f"publishing {package.name}")
                outcome = run_package(pipeline, package)
                outcomes.append(outcome)
                progress.advance(task)
                record = pipeline.ledger.snapshot(outcome.snapshot_id) or {}
                _add_rows(
                    table,
                    pipeline.ledger.items(f"DELIVERY#{outcome.snapshot_id}#"),
                    outcome,
                    record.get("file_count", ""),
                )
        console.print(table)

        report = pipeline.report()
        report["packages"] = [o.to_json() for o in outcomes]
        report["published_now"] = published_summary(pipeline)
        report["handler_errors"] = pipeline.dispatcher.handler_errors
        (out_dir / "report.json").write_text(
            json.dumps(report, indent=2, ensure_ascii=False, default=str)
        )
        for difusor in pipeline.deployment.difusores:
            pipeline.download_site(difusor.difusor_id, out_dir / "sites" / difusor.difusor_id)

    verdicts = []
    for difusor in report["difusores"]:
        result = verify_directory(out_dir / "sites" / difusor["difusor_id"], secret_key.public_key)
        verdicts.append(result)
        mark = "[green]verified[/]" if result.ok else f"[red]FAILED[/] {result.problems[:3]}"
        console.print(
            f"  {difusor['difusor_id']}: {result.files} files, snapshot "
            f"{result.snapshot_id} — {mark}"
        )
    console.print(
        f"done in {time.monotonic() - started:.1f} s. Results in {out_dir}/ "
        "(report.json, sites/, keys/prep.pub). Check a site with the stock tool:\n"
        f"  minisign -Vm {out_dir}/sites/uabcs/.well-known/prep/manifest.json "
        f"-x {out_dir}/sites/uabcs/.well-known/prep/manifest.json.minisig "
        f"-p {out_dir}/keys/prep.pub"
    )
    report["verified"] = all(v.ok for v in verdicts)
    return report


def _add_rows(
    table: Table, deliveries: list[dict[str, Any]], outcome: Any, file_count: object
) -> None:
    if outcome.status != "accepted":
        reason = outcome.reason or outcome.code
        table.add_row(
            _cut_label(outcome.snapshot_id),
            "",
            "—",
            f"[red]{outcome.status}[/] {reason}",
            "",
            "",
            "",
        )
        return
    for index, delivery in enumerate(sorted(deliveries, key=lambda d: d["difusor_id"])):
        status = str(delivery.get("status"))
        style = "green" if status == "delivered" else "red"
        seconds = _seconds(delivery.get("started_at"), delivery.get("finished_at"))
        table.add_row(
            _cut_label(outcome.snapshot_id) if index == 0 else "",
            str(file_count) if index == 0 else "",
            delivery["difusor_id"],
            f"[{style}]{status}[/]",
            str(delivery.get("objects_copied", "")),
            str(delivery.get("objects_deleted", "")),
            f"{seconds:.2f}" if seconds is not None else "",
        )


def _cut_label(snapshot_id: str) -> str:
    """``20240602_2120_PREP_…`` → ``06-02 21:20``."""
    stamp = snapshot_id[:13]
    if len(stamp) == 13 and stamp[8] == "_" and stamp.replace("_", "").isdigit():
        return f"{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}"
    return snapshot_id


def _seconds(start: Any, end: Any) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()

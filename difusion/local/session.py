"""Run packages through the embedded default and report what happened to each."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from difusion.local.clock import PipelineClock
from difusion.local.emulator import LocalEmulator
from difusion.local.pipeline import LocalPipeline, PipelineOptions
from difusion.manifest import Manifest
from difusion.package_name import snapshot_id_of
from difusion.publication import MANIFEST_PATH
from difusion.signing import SecretKey


@dataclass(frozen=True)
class PackageOutcome:
    package: str
    snapshot_id: str
    status: str  # accepted | rejected | validated | received | unknown
    code: str
    reason: str
    sequence: int | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "snapshot_id": self.snapshot_id,
            "status": self.status,
            "code": self.code or None,
            "reason": self.reason or None,
            "sequence": self.sequence,
            "seconds": round(self.seconds, 3),
        }


@contextlib.contextmanager
def embedded_pipeline(
    work_dir: Path,
    secret_key: SecretKey | None = None,
    options: PipelineOptions | None = None,
    clock: PipelineClock | None = None,
) -> Iterator[LocalPipeline]:
    """Start the emulator, provision everything (on ``clock``; the wall clock if none),
    yield the pipeline, stop the emulator."""
    work_dir.mkdir(parents=True, exist_ok=True)
    log: TextIO
    with (
        open(work_dir / "logs.jsonl", "w", encoding="utf-8") as log,
        LocalEmulator(log_path=work_dir / "emulator.log") as emulator,
    ):
        pipeline = LocalPipeline(
            emulator,
            secret_key or SecretKey.generate(),
            options or PipelineOptions(),
            log_stream=log,
            clock=clock,
        )
        try:
            yield pipeline
        finally:
            pipeline.close()


def run_package(pipeline: LocalPipeline, package: Path) -> PackageOutcome:
    """Upload one package, let the pipeline settle, and read its outcome from the ledger."""
    started_at = pipeline.clock.now().isoformat()  # the ledger's times are the pipeline's
    started = time.monotonic()
    pipeline.upload(package)
    pipeline.settle()
    seconds = time.monotonic() - started
    file_name = package.name
    snapshot_id = snapshot_id_of(file_name)
    ledger = pipeline.ledger
    late_rejections = [
        r
        for r in ledger.items(f"REJECTION#{snapshot_id}#")
        if str(r.get("rejected_at", "")) >= started_at
    ]
    record = late_rejections[-1] if late_rejections else ledger.snapshot(snapshot_id) or {}
    sequence = record.get("sequence")
    return PackageOutcome(
        package=file_name,
        snapshot_id=snapshot_id,
        status=str(record.get("status", "unknown")),
        code=str(record.get("rejection_code", "")),
        reason=str(record.get("rejection_reason", "")),
        sequence=int(sequence) if sequence is not None else None,
        seconds=seconds,
    )


def published_summary(pipeline: LocalPipeline) -> list[dict[str, Any]]:
    """What each difusor publishes now, read from its own bucket."""
    summary = []
    for difusor in pipeline.deployment.difusores:
        objects = pipeline.site_objects(difusor.difusor_id)
        manifest_bytes = objects.get(MANIFEST_PATH)
        entry: dict[str, Any] = {
            "difusor_id": difusor.difusor_id,
            "account_id": difusor.account_id,
            "bucket": difusor.bucket,
            "objects": len(objects),
            "snapshot_id": None,
            "sequence": None,
            "manifest_sha256": None,
        }
        if manifest_bytes is not None:
            manifest = Manifest.from_bytes(manifest_bytes)
            entry.update(
                snapshot_id=manifest.snapshot_id,
                sequence=manifest.sequence,
                manifest_sha256=manifest.sha256,
                files=len(manifest.files),
            )
        summary.append(entry)
    return summary

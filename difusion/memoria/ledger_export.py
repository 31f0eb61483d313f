"""A difusor's part of the institute's ledger, exported for its memoria técnica.

The difusor has no access to the institute's ledger; the institute exports what concerns
one difusor (``difusion ledger export --difusor ID``): every delivery to it with its times,
every continuity check of its site, its incidents (start, end, cause, actions: a suspension
and a reinstatement are actions of an incident) and the upstream incidents, which held back
every difusor alike. The memoria reads that file (``--ledger``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from difusion.records import CheckRecord, DeliveryRecord, IncidentRecord, as_item

EXPORT_FORMAT = "difusion-ledger-export/1"


class LedgerExportError(ValueError):
    """The file is not a difusor's ledger export this version can read."""


@dataclass(frozen=True)
class DifusorHistory:
    difusor_id: str
    election: str
    exported_at: str
    deliveries: tuple[DeliveryRecord, ...]
    checks: tuple[CheckRecord, ...]
    incidents: tuple[IncidentRecord, ...]
    upstream_incidents: tuple[IncidentRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": EXPORT_FORMAT,
            "difusor_id": self.difusor_id,
            "election": self.election,
            "exported_at": self.exported_at,
            "deliveries": [as_item(d) for d in self.deliveries],
            "checks": [as_item(c) for c in self.checks],
            "incidents": [as_item(i) for i in self.incidents],
            "upstream_incidents": [as_item(i) for i in self.upstream_incidents],
        }


def history_of(
    difusor_id: str,
    election: str,
    exported_at: datetime,
    deliveries: Iterable[DeliveryRecord],
    checks: Iterable[CheckRecord],
    incidents: Iterable[IncidentRecord],
    upstream_incidents: Iterable[IncidentRecord],
) -> DifusorHistory:
    """The records of the whole ledger that concern ``difusor_id``, in time order."""
    return DifusorHistory(
        difusor_id=difusor_id,
        election=election,
        exported_at=exported_at.isoformat(),
        deliveries=tuple(
            sorted(
                (d for d in deliveries if d.difusor_id == difusor_id),
                key=lambda d: (d.started_at or "", d.snapshot_id),
            )
        ),
        checks=tuple(
            sorted(
                (c for c in checks if c.difusor_id == difusor_id),
                key=lambda c: (c.period or "", c.checked_at or ""),
            )
        ),
        incidents=tuple(
            sorted(
                (i for i in incidents if i.difusor_id == difusor_id),
                key=lambda i: i.started_at or "",
            )
        ),
        upstream_incidents=tuple(sorted(upstream_incidents, key=lambda i: i.started_at or "")),
    )


def read_history(path: Path, difusor_id: str | None = None) -> DifusorHistory:
    """The export in ``path``; refused (with the reason) when it is not one, or is another
    difusor's."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LedgerExportError(f"{path}: not a readable ledger export ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise LedgerExportError(f"{path}: not a ledger export ({EXPORT_FORMAT} expected)")
    if difusor_id is not None and data.get("difusor_id") != difusor_id:
        raise LedgerExportError(
            f"{path}: the ledger export of {data.get('difusor_id')!r}, not of {difusor_id!r}"
        )
    try:
        return DifusorHistory(
            difusor_id=str(data["difusor_id"]),
            election=str(data["election"]),
            exported_at=str(data["exported_at"]),
            deliveries=tuple(DeliveryRecord.from_item(d) for d in data["deliveries"]),
            checks=tuple(CheckRecord.from_item(c) for c in data["checks"]),
            incidents=tuple(IncidentRecord.from_item(i) for i in data["incidents"]),
            upstream_incidents=tuple(
                IncidentRecord.from_item(i) for i in data["upstream_incidents"]
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerExportError(f"{path}: an incomplete ledger export ({exc})") from exc

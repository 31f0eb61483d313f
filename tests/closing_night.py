"""One night's ledger items as boto3 returns them (numbers as ``Decimal``, keys and all),
for the closing record's tests: a withdrawal, rejections and a refused re-upload,
deliveries of every kind (failed, skipped, a repair, one outside the window), checks and
incidents of difusores and of the upstream, and records that lack their optional fields.

``tests/fixtures/closing/`` holds the closing record these items made before the ledger
had typed records; the record built from them must stay byte for byte the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from difusion.window import PublicationWindow, WindowRecord, WindowState

ELECTION = "DIP_LOC_BCS"
TIME_ZONE = "America/Mazatlan"
OPENING = datetime(2024, 6, 3, 3, 0, tzinfo=UTC)  # 20:00 in Baja California Sur
WINDOW = PublicationWindow(OPENING, OPENING + timedelta(hours=24), timedelta(minutes=15))
CLOSED_AT = OPENING + timedelta(hours=5)
CLOSE_REASON = "100% de actas registradas (RE art. 353.6)"
RECORD = WindowRecord(WindowState.CLOSED, CLOSED_AT, True, OPENING, CLOSE_REASON)
GENERATED_AT = OPENING + timedelta(hours=6)
PK = f"ELECTION#{ELECTION}"


def at(minutes: float) -> str:
    """An ISO time ``minutes`` after the opening (negative: before it)."""
    return (OPENING + timedelta(minutes=minutes)).isoformat()


def cut(minutes: float) -> str:
    """A cut time as the packages name it: local time, with its offset."""
    return (OPENING + timedelta(minutes=minutes)).astimezone(ZoneInfo(TIME_ZONE)).isoformat()


def _sha(n: int) -> str:
    return f"{n:064x}"


WINDOW_ITEM: dict[str, Any] = {
    "pk": PK,
    "sk": "WINDOW",
    "state": "closed",
    "opened_at": at(0),
    "timer_execution": "arn:aws:states:timer",
    "closed_at": CLOSED_AT.isoformat(),
    "closed_early": True,
    "close_reason": CLOSE_REASON,
}


def _accepted(n: int, snapshot_id: str, cut_minutes: float, **fields: Any) -> dict[str, Any]:
    return {
        "pk": PK,
        "sk": f"SNAPSHOT#{snapshot_id}",
        "kind": "snapshot",
        "snapshot_id": snapshot_id,
        "object_key": f"incoming/{snapshot_id}.zip",
        "object_version": f"v{n}",
        "package_size": Decimal(1000 + n),
        "received_at": at(cut_minutes + 1),
        "cut_time": cut(cut_minutes),
        "package_sha256": _sha(100 + n),
        "file_count": Decimal(40 + n),
        "total_bytes": Decimal(90000 + n),
        "draft_key": f"drafts/{snapshot_id}.json",
        "validated_at": at(cut_minutes + 1.5),
        "signing_key": f"manifests/{n:06d}_{snapshot_id}.json",
        "signing_at": at(cut_minutes + 2),
        "status": "accepted",
        "sequence": Decimal(n),
        "manifest_sha256": _sha(n),
        "manifest_key": f"manifests/{n:06d}_{snapshot_id}.json",
        "previous_manifest_sha256": _sha(n - 1) if n > 1 else "",
        "accepted_at": at(cut_minutes + 2.5),
        **fields,
    }


S1 = "20240602_1950_PREP_DIP_LOC_BCS"
S2 = "20240602_2120_PREP_DIP_LOC_BCS"
S3 = "20240602_2350_PREP_DIP_LOC_BCS"
LATE = "20240603_0030_PREP_DIP_LOC_BCS"
BAD = "20240602_2200_PREP_DIP_LOC_BCS"
WITHDRAWAL = "retiro-000004"

SNAPSHOTS: list[dict[str, Any]] = [
    # held until the opening, later withdrawn by the entry #4
    _accepted(
        1,
        S1,
        -10,
        held_at=at(-7),
        held_reason="before the opening",
        withdrawn_at=at(200),
        withdrawn_by_sequence=Decimal(4),
        withdrawal_reason="paquete con actas duplicadas",
    ),
    _accepted(2, S2, 80),
    # cut after the early close: accepted, published, but not the final publication
    _accepted(3, S3, 290, package_sha256=_sha(999)),
    # rejected, no sequence, no cut time
    {
        "pk": PK,
        "sk": f"SNAPSHOT#{BAD}",
        "kind": "snapshot",
        "snapshot_id": BAD,
        "object_key": f"incoming/{BAD}.zip",
        "status": "rejected",
        "rejection_code": "not_an_archive",
        "rejection_reason": "the package is not a zip archive",
        "rejected_at": at(121),
        "package_size": Decimal(7),
        "received_at": at(120),
    },
    # a step gave up on it
    {
        "pk": PK,
        "sk": "SNAPSHOT#20240602_2230_PREP_DIP_LOC_BCS",
        "kind": "snapshot",
        "snapshot_id": "20240602_2230_PREP_DIP_LOC_BCS",
        "object_key": "incoming/20240602_2230_PREP_DIP_LOC_BCS.zip",
        "status": "failed",
        "last_error": "sign: throttled",
        "failed_step": "sign",
        "attempts": Decimal(5),
        "failed_at": at(160),
    },
    # only received when the window closed
    {
        "pk": PK,
        "sk": f"SNAPSHOT#{LATE}",
        "kind": "snapshot",
        "snapshot_id": LATE,
        "status": "received",
    },
    # the withdrawal entry: no package of its own, it restores #2
    {
        "pk": PK,
        "sk": f"SNAPSHOT#{WITHDRAWAL}",
        "kind": "snapshot",
        "snapshot_id": WITHDRAWAL,
        "cut_time": cut(80),
        "status": "accepted",
        "sequence": Decimal(4),
        "manifest_sha256": _sha(4),
        "manifest_key": f"manifests/000004_{WITHDRAWAL}.json",
        "previous_manifest_sha256": _sha(3),
        "file_count": Decimal(42),
        "total_bytes": Decimal(90002),
        "accepted_at": at(200),
        "withdraws": S1,
        "withdraws_sequence": Decimal(1),
        "withdrawal_reason": "paquete con actas duplicadas",
        "restores_sequence": Decimal(2),
    },
]

REUPLOADS: list[dict[str, Any]] = [
    {
        "pk": PK,
        "sk": f"REJECTION#{S2}#{at(95)}",
        "kind": "rejection",
        "snapshot_id": S2,
        "object_key": f"incoming/{S2}.zip",
        "status": "rejected",
        "rejection_code": "already_accepted",
        "rejection_reason": "an accepted snapshot is never replaced",
        "rejected_at": at(95),
    }
]


def _delivery(
    snapshot_id: str, sequence: int, difusor_id: str, status: str, **fields: Any
) -> dict[str, Any]:
    reason = fields.get("reason", "accepted")
    sk = f"DELIVERY#{snapshot_id}#{difusor_id}"
    if reason != "accepted":
        sk += f"#{reason}"
    return {
        "pk": PK,
        "sk": sk,
        "kind": "delivery",
        "difusor_id": difusor_id,
        "snapshot_id": snapshot_id,
        "sequence": Decimal(sequence),
        "reason": "accepted",
        "delivery_scope": "delta",
        "status": status,
        **fields,
    }


def _done(started: float, copied: int = 12) -> dict[str, Any]:
    return {
        "attempts": Decimal(1),
        "started_at": at(started),
        "attempt_started_at": at(started),
        "finished_at": at(started + 0.5),
        "objects_copied": Decimal(copied),
        "objects_deleted": Decimal(0),
        "bytes_copied": Decimal(copied * 1000),
        "site_version": Decimal(copied),
        "slot": "a",
    }


DELIVERIES: list[dict[str, Any]] = [
    _delivery(S1, 1, "canal-10", "delivered", reason="release:open", **_done(0, 41)),
    _delivery(S1, 1, "uabcs", "delivered", reason="release:open", **_done(0.1, 41)),
    # a retried attempt: judged by the attempt that published it
    _delivery(
        S2,
        2,
        "uabcs",
        "delivered",
        **{**_done(81), "attempts": Decimal(2), "attempt_started_at": at(83)},
    ),
    _delivery(
        S2,
        2,
        "canal-10",
        "failed",
        attempts=Decimal(5),
        started_at=at(81),
        attempt_started_at=at(90),
        last_error="AccessDenied: the delivery role",
        failed_at=at(90.5),
    ),
    # a repair of an altered site, its own record
    _delivery(
        S2,
        2,
        "uabcs",
        "delivered",
        reason="repair:p20240603T0400",
        delivery_scope="repair",
        **_done(62 + 60),
    ),
    # skipped: the difusor was suspended; an empty detail and no error
    _delivery(S3, 3, "canal-10", "skipped", detail="difusor suspended", finished_at=at(291)),
    _delivery(S3, 3, "radio", "superseded", detail="", finished_at=at(292)),
    # published after the close and its grace: called out
    _delivery(S3, 3, "uabcs", "delivered", **_done(5 * 60 + 20)),
    # a record that lacks its reason, scope and times (as early records did)
    {
        "pk": PK,
        "sk": f"DELIVERY#{WITHDRAWAL}#radio",
        "kind": "delivery",
        "difusor_id": "radio",
        "snapshot_id": WITHDRAWAL,
        "status": "retrying",
        "detail": "",
        "last_error": "timeout",
    },
    _delivery(WITHDRAWAL, 4, "uabcs", "delivered", reason="withdrawal:" + S1, **_done(200)),
]


def _check(period: str, difusor_id: str, outcome: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": PK,
        "sk": f"CHECK#{period}#{difusor_id}",
        "kind": "check",
        "difusor_id": difusor_id,
        "period": period,
        "detail": "" if outcome == "ok" else f"{outcome} at {period}",
        "served_sequence": None if outcome == "unreachable" else Decimal(2),
        "served_snapshot_id": "" if outcome == "unreachable" else S2,
        "files_checked": Decimal(32),
        "altered_paths": ["index.html"] if outcome == "altered" else [],
        "checked_at": period,
        "incident_for_actions": "",
    }
    if outcome is not None:
        item["outcome"] = outcome
    return item


CHECKS: list[dict[str, Any]] = [
    _check(at(15), "canal-10", "ok"),
    _check(at(15), "uabcs", "ok"),
    _check(at(30), "canal-10", "unreachable"),
    _check(at(30), "uabcs", "updating"),
    _check(at(45), "canal-10", "unreachable"),
    _check(at(45), "uabcs", "altered"),
    _check(at(60), "uabcs", None),  # an outcome never recorded counts as a failure
]

INCIDENTS: list[dict[str, Any]] = [
    {
        "pk": PK,
        "sk": f"INCIDENT#{at(30)}#canal-10",
        "kind": "incident",
        "incident_id": f"{at(30)}#canal-10",
        "difusor_id": "canal-10",
        "incident_kind": "availability",
        "cause": "unreachable",
        "detail": "connection refused",
        "started_at": at(30),
        "periods_failed": Decimal(3),
        "causes": ["unreachable", "timeout"],
        "actions": [f"{at(30)} alert", f"{at(60)} suspended"],
        "last_update_at": at(60),
        "noted": {f"{at(30)}:failed", f"{at(45)}:failed"},
    },
    {
        "pk": PK,
        "sk": f"INCIDENT#{at(45)}#uabcs",
        "kind": "incident",
        "incident_id": f"{at(45)}#uabcs",
        "difusor_id": "uabcs",
        "incident_kind": "integrity",
        "cause": "altered",
        "detail": "index.html differs",
        "started_at": at(45),
        "periods_failed": Decimal(0),
        "causes": [],
        "actions": [],
        "ended_at": at(60),
        "resolution": "repaired",
    },
    # an incident recorded without its lists
    {
        "pk": PK,
        "sk": f"INCIDENT#{at(75)}#uabcs",
        "kind": "incident",
        "incident_id": f"{at(75)}#uabcs",
        "difusor_id": "uabcs",
        "incident_kind": "availability",
        "cause": "timeout",
        "started_at": at(75),
    },
]

UPSTREAM_INCIDENTS: list[dict[str, Any]] = [
    {
        "pk": PK,
        "sk": f"UPSTREAM#INCIDENT#{at(120)}",
        "kind": "incident",
        "incident_id": f"{at(120)}#@upstream",
        "difusor_id": "@upstream",
        "incident_kind": "upstream",
        "cause": "no new snapshot",
        "detail": "silent for 25 minutes",
        "started_at": at(120),
        "periods_failed": Decimal(2),
        "causes": [],
        "actions": [f"{at(120)} alert"],
        "ended_at": at(150),
        "resolution": "a new snapshot arrived",
    }
]

DIFUSORES: list[dict[str, Any]] = [
    {
        "difusor_id": "uabcs",
        "name": "UABCS",
        "public_url": "https://prep.uabcs.mx",
        "status": "active",
        "status_reason": "",
    },
    {
        "difusor_id": "canal-10",
        "name": "Canal 10 <Los Cabos>",
        "public_url": "https://prep.canal10.mx",
        "status": "suspended",
        "status_reason": "three failed periods",
    },
    {"difusor_id": "radio", "name": "Radio", "status": "retired"},
]

RETAINED: list[dict[str, Any]] = [
    {"key": f"incoming/{S2}.zip", "version_id": "v2", "retain_until": at(60 * 24 * 3650)},
]

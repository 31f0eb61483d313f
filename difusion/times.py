"""ISO 8601 times, one way: what the ledger, the timer, the settings and the records read."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def parse_iso(value: Any) -> datetime:
    """An ISO 8601 time as the pipeline writes it (``isoformat()``), or as AWS writes it
    (Step Functions and EventBridge end in ``Z``). Raises ``ValueError`` otherwise."""
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def parse_iso_or_none(value: Any) -> datetime | None:
    """:func:`parse_iso`, with an empty or missing value as ``None``."""
    return parse_iso(value) if value else None

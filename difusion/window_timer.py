"""The window timer's definition and input: one Step Functions definition, shared by the
institute's stack and the embedded default."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

DEFINITION_PATH = (
    Path(__file__).resolve().parent.parent / "stacks" / "institute" / ("window_timer.asl.json")
)


def render_definition(
    template: str, *, ledger_table: str, sign_queue_url: str, election: str
) -> str:
    """Fill the definition's ``${...}`` placeholders (what CDK's substitutions do)."""
    values = {"LedgerTable": ledger_table, "SignQueueUrl": sign_queue_url, "Election": election}
    for key, value in values.items():
        template = template.replace("${" + key + "}", value)
    return template


def execution_input(opening: datetime, closing: datetime) -> str:
    """Wait states want RFC 3339 instants in UTC with a ``Z``, to the second.

    Rounded up, never down: a timer that fires a fraction of a second before the opening
    would release a snapshot the functions must still hold.
    """

    def instant(moment: datetime) -> str:
        if moment.microsecond:
            moment = moment.replace(microsecond=0) + timedelta(seconds=1)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return json.dumps({"opening": instant(opening), "closing": instant(closing)})


def execution_name(election: str, opening: datetime) -> str:
    return f"window-{election}-{opening.astimezone(UTC):%Y%m%dT%H%M%SZ}"

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from difusion.window_timer import DEFINITION_PATH, execution_input, render_definition


def test_the_timer_never_fires_before_the_configured_instant():
    opening = datetime(2024, 6, 2, 19, 59, 59, 1, tzinfo=ZoneInfo("America/Mazatlan"))
    closing = datetime(2024, 6, 3, 20, 0, tzinfo=ZoneInfo("America/Mazatlan"))
    data = json.loads(execution_input(opening, closing))
    assert data == {"opening": "2024-06-03T03:00:00Z", "closing": "2024-06-04T03:00:00Z"}
    fired = datetime.fromisoformat(data["opening"].replace("Z", "+00:00"))
    assert fired >= opening.astimezone(UTC)


def test_rendering_fills_every_placeholder_of_the_shared_definition():
    text = render_definition(
        DEFINITION_PATH.read_text(),
        ledger_table="ledger",
        sign_queue_url="https://queue/sign.fifo",
        election="DIP_LOC_BCS",
    )
    assert "${" not in text
    definition = json.loads(text)
    assert definition["StartAt"] == "WaitForOpening"
    assert definition["States"]["Release"]["Parameters"]["QueueUrl"] == "https://queue/sign.fifo"

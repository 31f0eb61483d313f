"""The publication window's state, an early close, and snapshots held for the opening."""

from __future__ import annotations

from datetime import datetime

from botocore.exceptions import ClientError

from difusion.adapters.ledger.errors import (
    WindowNotOpen,
)
from difusion.adapters.ledger.table import (
    LedgerTable,
    is_condition_failure,
    iso,
)
from difusion.times import parse_iso_or_none
from difusion.window import WindowRecord, WindowState


class WindowRecords(LedgerTable):
    # --- the window --------------------------------------------------------------------

    def window(self) -> WindowRecord:
        """The window's state as the timer (or an early close, with its reason) left it;
        none yet means it has not opened."""
        item = self._table.get_item(Key={"pk": self._pk, "sk": "WINDOW"}, ConsistentRead=True).get(
            "Item"
        )
        if item is None:
            return WindowRecord()
        return WindowRecord(
            state=WindowState(str(item["state"])),
            closed_at=parse_iso_or_none(item.get("closed_at")),
            closed_early=bool(item.get("closed_early", False)),
            opened_at=parse_iso_or_none(item.get("opened_at")),
            close_reason=str(item.get("close_reason", "")),
        )

    def close_early(self, at: datetime, reason: str) -> None:
        """Close an open window now (RE art. 353.6). Raises ``WindowNotOpen`` otherwise."""
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": "WINDOW"},
                UpdateExpression=(
                    "SET #state = :closed, closed_at = :at, closed_early = :true, "
                    "close_reason = :reason"
                ),
                ConditionExpression="#state = :open",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":closed": str(WindowState.CLOSED),
                    ":open": str(WindowState.OPEN),
                    ":at": iso(at),
                    ":true": True,
                    ":reason": reason,
                },
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise WindowNotOpen(self.election) from None
            raise

    def mark_held(self, snapshot_id: str, reason: str, at: datetime) -> None:
        """Note on an accepted snapshot that its publication waits for the opening."""
        self._table.update_item(
            Key={"pk": self._pk, "sk": f"SNAPSHOT#{snapshot_id}"},
            UpdateExpression="SET held_at = :at, held_reason = :reason",
            ExpressionAttributeValues={":at": iso(at), ":reason": reason},
        )

"""The closing record, written once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from difusion.adapters.ledger.errors import (
    AlreadyFinalized,
)
from difusion.adapters.ledger.table import (
    LedgerTable,
    is_condition_failure,
    iso,
    plain,
)


class ClosingRecords(LedgerTable):
    # --- the closing record -----------------------------------------------------------

    def finalized(self) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": self._pk, "sk": "FINAL"}, ConsistentRead=True).get(
            "Item"
        )
        return None if item is None else plain(item)

    def record_final(self, record: dict[str, Any], at: datetime) -> None:
        """Note that the closing record was written; only once."""
        try:
            self._table.put_item(
                Item={
                    "pk": self._pk,
                    "sk": "FINAL",
                    "kind": "final",
                    **record,
                    "finalized_at": iso(at),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise AlreadyFinalized(self.election) from None
            raise

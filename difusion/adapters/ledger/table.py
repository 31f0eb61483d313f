"""The ledger's table: one election's partition, and what every record module shares."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from difusion.models import (
    DeliveryLease,
    DeliveryRequest,
)


def iso(at: datetime) -> str:
    return at.isoformat()


def plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, set):  # a string or number set: sorted, as JSON has no sets
        return sorted(plain(v) for v in value)
    return value


def forward_condition(request: DeliveryRequest) -> str:
    """A difusor's published sequence only moves forward; a redelivery may rewrite it."""
    if request.is_redelivery:
        return "attribute_not_exists(#seq) OR #seq <= :seq"
    return "attribute_not_exists(#seq) OR #seq < :seq"


def lease_of(item: dict[str, Any]) -> DeliveryLease | None:
    if "lease_until" not in item:
        return None
    return DeliveryLease(
        owner=str(item.get("lease_owner", "")),
        sequence=int(item.get("lease_sequence", 0)),
        until=int(item["lease_until"]),
    )


def lease_owner(request: DeliveryRequest) -> str:
    """The delivery a lease belongs to: every attempt of one delivery is the same owner."""
    return f"{request.snapshot_id}#{request.reason}"


def is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


class LedgerTable:
    """One election's partition of the ledger table; every concern's records live here."""

    def __init__(self, dynamodb: Any, table_name: str, election: str) -> None:
        self._table = dynamodb.Table(table_name)
        # The resource's client serializes plain Python values, transactions included.
        self._client = self._table.meta.client
        self.table_name = table_name
        self.election = election
        self._pk = f"ELECTION#{election}"

    # --- reading ---------------------------------------------------------------------

    def items(self, prefix: str) -> list[dict[str, Any]]:
        """Every item of this election whose sort key starts with ``prefix``."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(self._pk) & Key("sk").begins_with(prefix),
            "ConsistentRead": True,
        }
        while True:
            page = self._table.query(**kwargs)
            items.extend(plain(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

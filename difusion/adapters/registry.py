"""The difusor registry (DynamoDB, one item per difusor)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from difusion.models import Difusor, DifusorStatus


class UnknownDifusor(LookupError):
    pass


class StatusUnchanged(Exception):
    """The difusor was not in the status the change starts from."""


class DifusorRegistry:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._table = dynamodb.Table(table_name)

    def put(self, difusor: Difusor) -> None:
        self._table.put_item(Item=difusor.to_item())

    def get(self, difusor_id: str) -> Difusor:
        item = self._table.get_item(Key={"difusor_id": difusor_id}, ConsistentRead=True).get("Item")
        if item is None:
            raise UnknownDifusor(f"difusor {difusor_id!r} is not registered")
        return Difusor.from_item(item)

    def all(self) -> list[Difusor]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"ConsistentRead": True}
        while True:
            page = self._table.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted((Difusor.from_item(i) for i in items), key=lambda d: d.difusor_id)

    def active(self) -> list[Difusor]:
        return [d for d in self.all() if d.status is DifusorStatus.ACTIVE]

    def suspend(self, difusor_id: str, reason: str, at: datetime) -> Difusor:
        """Suspend an active difusor; raises :class:`StatusUnchanged` if it is not active."""
        return self._move(difusor_id, DifusorStatus.ACTIVE, DifusorStatus.SUSPENDED, reason, at)

    def reinstate(self, difusor_id: str, reason: str, at: datetime) -> Difusor:
        """Make a suspended difusor active again; :class:`StatusUnchanged` otherwise."""
        return self._move(difusor_id, DifusorStatus.SUSPENDED, DifusorStatus.ACTIVE, reason, at)

    def _move(
        self,
        difusor_id: str,
        source: DifusorStatus,
        target: DifusorStatus,
        reason: str,
        at: datetime,
    ) -> Difusor:
        try:
            item = self._table.update_item(
                Key={"difusor_id": difusor_id},
                UpdateExpression="SET #status = :target, status_reason = :reason, "
                "status_since = :at",
                ConditionExpression="attribute_exists(difusor_id) AND #status = :source",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":target": str(target),
                    ":source": str(source),
                    ":reason": reason,
                    ":at": at.isoformat(),
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            current = self.get(difusor_id)  # raises UnknownDifusor when not registered
            raise StatusUnchanged(
                f"difusor {difusor_id!r} is {current.status}, not {source}"
            ) from None
        return Difusor.from_item(item)

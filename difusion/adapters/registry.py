"""The difusor registry (DynamoDB, one item per difusor)."""

from __future__ import annotations

from typing import Any

from difusion.models import Difusor, DifusorStatus


class UnknownDifusor(LookupError):
    pass


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

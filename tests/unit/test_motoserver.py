"""The emulator's AWS rules (``difusion.local.motoserver``), on moto in this process."""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from difusion.local.motoserver import apply_cloud_rules

TABLE = "ledger"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Any:
    # In this process: an integration test run earlier by the same worker may have
    # pointed every SDK client at an emulator server (AWS_ENDPOINT_URL).
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    apply_cloud_rules()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def test_a_canceled_transaction_does_not_undo_a_write_made_while_it_ran(dynamodb, monkeypatch):
    inside, release = threading.Event(), threading.Event()
    read = DynamoDBBackend.get_item

    def pausing_on_the_check(self: DynamoDBBackend, table: str, key: dict, *a: Any, **k: Any):
        if key.get("pk", {}).get("S") == "checked":  # the transaction's condition
            inside.set()
            release.wait(10)
        return read(self, table, key, *a, **k)

    monkeypatch.setattr(DynamoDBBackend, "get_item", pausing_on_the_check)
    errors: list[Exception] = []

    def transaction() -> None:
        try:
            dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "mine"}}}},
                    {
                        "ConditionCheck": {
                            "TableName": TABLE,
                            "Key": {"pk": {"S": "checked"}},
                            "ConditionExpression": "attribute_exists(pk)",  # it fails
                        }
                    },
                ]
            )
        except Exception as exc:
            errors.append(exc)

    # Given a transaction that will be canceled, caught between its start and its end
    first = threading.Thread(target=transaction)
    first.start()
    assert inside.wait(10)
    # When another client writes meanwhile
    other = threading.Thread(
        target=dynamodb.put_item, kwargs={"TableName": TABLE, "Item": {"pk": {"S": "other"}}}
    )
    other.start()
    other.join(0.5)
    waited = other.is_alive()  # DynamoDB serializes it with the transaction
    release.set()
    first.join(10)
    other.join(10)
    # Then the transaction changed nothing, and the other write stays
    assert waited
    assert [type(e).__name__ for e in errors] == ["TransactionCanceledException"]
    items = {i["pk"]["S"] for i in dynamodb.scan(TableName=TABLE)["Items"]}
    assert items == {"other"}

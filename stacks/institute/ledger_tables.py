"""The ledger, the difusor registry and the idempotency records (DynamoDB)."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct


class LedgerTables(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        string = dynamodb.AttributeType.STRING
        common: dict[str, Any] = {
            "billing_mode": dynamodb.BillingMode.PAY_PER_REQUEST,
            "encryption": dynamodb.TableEncryption.AWS_MANAGED,
            "point_in_time_recovery_specification": dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
        }
        self.ledger = dynamodb.Table(
            self,
            "Ledger",
            partition_key=dynamodb.Attribute(name="pk", type=string),
            sort_key=dynamodb.Attribute(name="sk", type=string),
            removal_policy=RemovalPolicy.RETAIN,  # the night's record outlives the stack
            **common,
        )
        self.registry = dynamodb.Table(
            self,
            "Registry",
            partition_key=dynamodb.Attribute(name="difusor_id", type=string),
            removal_policy=RemovalPolicy.RETAIN,
            **common,
        )
        self.idempotency = dynamodb.Table(
            self,
            "Idempotency",
            partition_key=dynamodb.Attribute(name="id", type=string),
            time_to_live_attribute="expiration",  # Powertools writes it
            removal_policy=RemovalPolicy.DESTROY,
            **common,
        )

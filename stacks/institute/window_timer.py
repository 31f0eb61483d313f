"""The window's timer: the Step Functions definition the embedded default runs too."""

from __future__ import annotations

from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from difusion.window_timer import DEFINITION_PATH


class WindowTimer(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        election_id: str,
        ledger: dynamodb.ITable,
        sign_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment="Opens and closes the PREP publication window",
            definition_body=sfn.DefinitionBody.from_file(str(DEFINITION_PATH)),
            definition_substitutions={
                "LedgerTable": ledger.table_name,
                "SignQueueUrl": sign_queue.queue_url,
                "Election": election_id,
            },
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL),
        )
        # Exactly what the definition does: one item's update, one queue's messages.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[ledger.table_arn],
                conditions={
                    "ForAllValues:StringEquals": {
                        "dynamodb:LeadingKeys": [f"ELECTION#{election_id}"]
                    }
                },
            )
        )
        sign_queue.grant_send_messages(self.state_machine)
        Validations.of(self.state_machine.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Step Functions' log delivery and X-Ray actions do not support "
                "resource-level permissions.",
            )
        )

"""The institute's stack: everything in the origin account."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from stacks.config import InstituteConfig
from stacks.institute.ledger_tables import LedgerTables
from stacks.institute.monitoring import Monitoring
from stacks.institute.origin_bucket import OriginBucket
from stacks.institute.pipeline_functions import PipelineFunctions
from stacks.institute.pipeline_queues import PipelineQueues
from stacks.institute.signing_key import SigningKey
from stacks.institute.window_timer import WindowTimer


class InstituteStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: InstituteConfig, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.origin = OriginBucket(self, "Origin")
        self.tables = LedgerTables(self, "Tables")
        self.queues = PipelineQueues(
            self,
            "Queues",
            origin=self.origin.bucket,
            max_attempts=config.delivery_max_attempts,
        )
        self.signing_key = SigningKey(self, "SigningKey")
        self.functions = PipelineFunctions(
            self,
            "Pipeline",
            config=config,
            origin=self.origin.bucket,
            tables=self.tables,
            queues=self.queues,
            signing_key=self.signing_key,
        )
        self.window_timer = WindowTimer(
            self,
            "WindowTimer",
            election_id=config.election_id,
            ledger=self.tables.ledger,
            sign_queue=self.queues.sign,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            functions=self.functions.functions,
            dead_letter_queues=self.queues.dead_letter_queues,
        )
        outputs = {
            "OriginBucketName": self.origin.bucket.bucket_name,
            "PublisherRoleArn": self.functions.publisher_role.role_arn,
            "MonitorRoleArn": self.functions.monitor_role.role_arn,
            "IngestRoleArn": self.functions.roles["ingest"].role_arn,
            "SignRoleArn": self.functions.roles["sign"].role_arn,
            "AlarmTopicArn": self.monitoring.topic.topic_arn,
            "LedgerTableName": self.tables.ledger.table_name,
            "RegistryTableName": self.tables.registry.table_name,
            "IdempotencyTableName": self.tables.idempotency.table_name,
            "DeliveryQueueUrl": self.queues.deliveries.queue_url,
            "IngestQueueUrl": self.queues.ingest.queue_url,
            "SignQueueUrl": self.queues.sign.queue_url,
            "MonitorFunctionName": self.functions.monitor.function_name,
            "SigningSecretName": self.signing_key.secret.secret_name,
            "DashboardName": self.monitoring.dashboard.dashboard_name,
            "WindowTimerArn": self.window_timer.state_machine.state_machine_arn,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)

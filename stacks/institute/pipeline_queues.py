"""The queues between the steps, each with a dead-letter queue, and the S3 event rule."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from difusion import topology

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")


class PipelineQueues(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        origin: s3.IBucket,
        max_attempts: int,
    ) -> None:
        super().__init__(scope, construct_id)
        shapes = topology.QUEUES
        self.ingest, self.ingest_dlq = self._queue("Ingest", shapes["ingest"], max_attempts)
        self.sign, self.sign_dlq = self._queue("Sign", shapes["sign"], max_attempts)
        self.deliveries, self.deliveries_dlq = self._queue(
            "Deliveries", shapes["deliveries"], max_attempts
        )
        self.dead_letter_queues = {
            "ingest": self.ingest_dlq,
            "sign": self.sign_dlq,
            "deliveries": self.deliveries_dlq,
        }
        # Only archives under incoming/ start the pipeline; anything else there is
        # recorded as rejected by ingest, so the rule matches the prefix alone.
        self.rule = events.Rule(
            self,
            "PackageUploaded",
            description="A snapshot package landed in incoming/ of the origin bucket",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [origin.bucket_name]},
                    "object": {"key": [{"prefix": "incoming/"}]},
                },
            ),
            targets=[targets.SqsQueue(self.ingest)],
        )

    def _queue(
        self, name: str, shape: topology.QueueShape, max_attempts: int
    ) -> tuple[sqs.Queue, sqs.Queue]:
        fifo = shape.fifo
        dead_letters = sqs.Queue(
            self,
            f"{name}DeadLetters",
            fifo=fifo or None,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.seconds(topology.DEAD_LETTER_RETENTION_SECONDS),
        )
        Validations.of(dead_letters).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This is a dead-letter queue; its messages wait for an operator.",
            )
        )
        queue = sqs.Queue(
            self,
            name,
            fifo=fifo or None,
            content_based_deduplication=False if fifo else None,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # Six times the function's timeout (AWS's advice); a message that failed is
            # made visible again sooner by the handler (topology.RetrySchedule).
            visibility_timeout=Duration.seconds(shape.visibility_timeout_seconds),
            retention_period=Duration.seconds(topology.QUEUE_RETENTION_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=dead_letters, max_receive_count=max_attempts
            ),
        )
        return queue, dead_letters

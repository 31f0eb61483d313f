"""The queues between the steps, each with a dead-letter queue, and the S3 event rule."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")


class PipelineQueues(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        origin: s3.IBucket,
        max_attempts: int,
        ingest_timeout: Duration,
        sign_timeout: Duration,
        replicate_timeout: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.ingest, self.ingest_dlq = self._queue(
            "Ingest", fifo=False, timeout=ingest_timeout, max_attempts=max_attempts
        )
        self.sign, self.sign_dlq = self._queue(
            "Sign", fifo=True, timeout=sign_timeout, max_attempts=max_attempts
        )
        self.deliveries, self.deliveries_dlq = self._queue(
            "Deliveries", fifo=True, timeout=replicate_timeout, max_attempts=max_attempts
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
        self, name: str, *, fifo: bool, timeout: Duration, max_attempts: int
    ) -> tuple[sqs.Queue, sqs.Queue]:
        dead_letters = sqs.Queue(
            self,
            f"{name}DeadLetters",
            fifo=fifo or None,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
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
            # AWS's advice: at least six times the function timeout, so a message is never
            # handed to a second invocation while the first still works on it.
            visibility_timeout=Duration.seconds(timeout.to_seconds() * 6),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=dead_letters, max_receive_count=max_attempts
            ),
        )
        return queue, dead_letters

"""The origin bucket where UCSI drops packages and the pipeline stages and signs."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.access_log_bucket import access_log_bucket


class OriginBucket(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        # No bucket policy grants difusores anything: the publisher copies with its own
        # credentials, so nothing here is readable from a difusor's account.
        self.access_logs = access_log_bucket(self, "AccessLogs")
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            # No fixed name: nothing outside this account needs it (difusores never read the
            # origin), and a retained bucket left by a deleted stack would block a redeploy.
            versioned=True,
            # At the close the final package, manifest and closing record are put under
            # compliance-mode retention (RE art. 353.9): Object Lock exists from creation.
            object_lock_enabled=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            event_bridge_enabled=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="origin/",
            lifecycle_rules=[
                # Packages stay for inspection and audit; after the night they move to
                # cheaper storage. Older versions of a re-uploaded name expire after a year.
                s3.LifecycleRule(
                    id="incoming-packages",
                    prefix="incoming/",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(30),
                        )
                    ],
                    noncurrent_version_expiration=Duration.days(365),
                ),
                s3.LifecycleRule(id="drafts", prefix="drafts/", expiration=Duration.days(30)),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self._acknowledge_notifications_handler()

    def _acknowledge_notifications_handler(self) -> None:
        # event_bridge_enabled makes CDK add its bucket-notifications custom resource, whose
        # role uses the basic execution managed policy; it runs only at deploy time.
        stack = Stack.of(self)
        for child in stack.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                Validations.of(child).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                        "service-role/AWSLambdaBasicExecutionRole]",
                        reason="CDK's deploy-time handler that turns on EventBridge "
                        "notifications for the origin bucket; it only writes its own logs.",
                    )
                )

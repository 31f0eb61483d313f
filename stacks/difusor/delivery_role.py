"""The cross-account role the institute's publisher assumes to deliver snapshots."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import DELIVERY_ROLE_NAME, DifusorConfig

ORIGIN_SOURCE_PREFIXES = ("objects/sha256/", "manifests/", "keys/")


class DeliveryRole(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DifusorConfig,
        bucket: s3.IBucket,
        distribution: cloudfront.IDistribution,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            role_name=DELIVERY_ROLE_NAME,
            description="Lets the electoral institute publish PREP snapshots into this site",
            # The publisher delivers snapshots; the continuity monitor puts up the notice
            # when the institute interrupts this site's transmission. Both need the id.
            assumed_by=iam.CompositePrincipal(
                iam.ArnPrincipal(config.publisher_role_arn),
                iam.ArnPrincipal(config.monitor_role_arn),
            ),
            external_ids=[config.external_id],
        )
        statements = [
            iam.PolicyStatement(
                sid="WriteTheSite",
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[bucket.arn_for_objects("*")],
            ),
            # A full redelivery (reinstatement) lists the site to remove what is not in the
            # snapshot, such as the suspension notice's status file.
            iam.PolicyStatement(
                sid="ListTheSite", actions=["s3:ListBucket"], resources=[bucket.bucket_arn]
            ),
            iam.PolicyStatement(
                sid="InvalidateTheDistribution",
                actions=["cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"],
                resources=[
                    Stack.of(self).format_arn(
                        service="cloudfront",
                        region="",
                        resource="distribution",
                        resource_name=distribution.distribution_id,
                    )
                ],
            ),
            # Server-side CopyObject reads the source with the same credentials that write
            # the target: the institute's staged content, manifests and key.
            iam.PolicyStatement(
                sid="ReadTheInstitutesSources",
                actions=["s3:GetObject"],
                resources=[
                    f"arn:aws:s3:::{config.origin_bucket}/{prefix}*"
                    for prefix in ORIGIN_SOURCE_PREFIXES
                ],
            ),
        ]
        policy = iam.Policy(self, "Policy", statements=statements)
        self.role.attach_inline_policy(policy)
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{_logical_ref(bucket)}>/*]",
                reason="A snapshot writes any path of the site; the bucket holds nothing else.",
            ),
            *[
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{config.origin_bucket}/"
                    f"{prefix}*]",
                    reason="Read-only, on the institute's staged content, manifests and key.",
                )
                for prefix in ORIGIN_SOURCE_PREFIXES
            ],
        )


def _logical_ref(bucket: s3.IBucket) -> str:
    return Stack.of(bucket).get_logical_id(bucket.node.default_child) + ".Arn"  # type: ignore[arg-type]

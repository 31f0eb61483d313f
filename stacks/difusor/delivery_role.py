"""What the institute may do in this difusor's account, and nothing more.

The institute's publisher (deliveries) and continuity monitor (the suspension notice) write
into the site bucket with their own credentials, under this bucket's policy: the difusor
never gets any access to the institute's origin, so nothing of a snapshot is readable from
its account before it is published there, and nothing new once it is suspended (RE art.
353.4). CloudFront has no resource policies, so switching the site's version takes a role in
this account: the delivery role, trusted by those two institute roles with the external id,
allowed only to read and write the version pointer in this site's KeyValueStore (the
publication itself, and the suspension notice).

Both the bucket policy and the trust policy name the institute's account as principal and
its two roles in an ``aws:PrincipalArn`` condition. Naming the roles as principals would
make IAM and S3 reject the policy while those roles do not exist yet (difusores deploy
before the institute) and pin their unique ids, so recreating the institute's stack would
silently break every difusor's trust.
"""

from __future__ import annotations

from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import DifusorConfig

# What the institute's roles do in the site bucket: server-side copies from the origin
# (CopyObject, multipart UploadPartCopy for files over 5 GB, aborted on failure), the
# notice, removals, and the listing a full redelivery compares against.
SITE_OBJECT_ACTIONS = ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
SITE_BUCKET_ACTIONS = ("s3:ListBucket",)
# Service Authorization Reference, CloudFront KeyValueStore: the data plane's actions, on
# resource type key-value-store; no condition keys.
POINTER_ACTIONS = (
    "cloudfront-keyvaluestore:DescribeKeyValueStore",
    "cloudfront-keyvaluestore:GetKey",
    "cloudfront-keyvaluestore:PutKey",
)


class DeliveryRole(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DifusorConfig,
        bucket: s3.IBucket,
        store: cloudfront.IKeyValueStore,
    ) -> None:
        super().__init__(scope, construct_id)
        institute_roles = [config.publisher_role_arn, config.monitor_role_arn]
        institute = iam.AccountPrincipal(config.institute_account)
        only_the_institutes_roles = {"ArnEquals": {"aws:PrincipalArn": institute_roles}}
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="TheInstitutePublishes",
                principals=[institute],
                actions=list(SITE_OBJECT_ACTIONS),
                resources=[bucket.arn_for_objects("*")],
                conditions=only_the_institutes_roles,
            )
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="TheInstituteListsTheSite",
                principals=[institute],
                actions=list(SITE_BUCKET_ACTIONS),
                resources=[bucket.bucket_arn],
                conditions=only_the_institutes_roles,
            )
        )
        self.role = iam.Role(
            self,
            "Role",
            role_name=config.delivery_role_name,
            description="Lets the electoral institute switch this PREP site's version",
            assumed_by=iam.AccountPrincipal(config.institute_account).with_conditions(
                {
                    "StringEquals": {"sts:ExternalId": config.external_id},
                    **only_the_institutes_roles,
                }
            ),
        )
        policy = iam.Policy(
            self,
            "Policy",
            statements=[
                iam.PolicyStatement(
                    sid="SwitchTheSiteVersion",
                    actions=list(POINTER_ACTIONS),
                    resources=[store.key_value_store_arn],
                )
            ],
        )
        self.role.attach_inline_policy(policy)

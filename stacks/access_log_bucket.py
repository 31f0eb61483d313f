"""The bucket that receives a stack's access logs (one per stack)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_s3 as s3
from constructs import Construct


def access_log_bucket(
    scope: Construct, construct_id: str, *, for_cloudfront: bool = False
) -> s3.Bucket:
    """Private, encrypted, TLS-only; kept 400 days (the difusores' technical report covers
    visits from June 1 to 10). CloudFront's standard logs are written with ACLs, so a bucket
    that receives them lets object writers own what they write."""
    bucket = s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        object_ownership=(
            s3.ObjectOwnership.OBJECT_WRITER
            if for_cloudfront
            else s3.ObjectOwnership.BUCKET_OWNER_ENFORCED
        ),
        lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(400))],
        removal_policy=RemovalPolicy.RETAIN,
    )
    Validations.of(bucket).acknowledge(
        Acknowledgment(
            id="AwsSolutions-S1",
            reason="This is the access-log bucket itself; logging it would loop.",
        )
    )
    return bucket

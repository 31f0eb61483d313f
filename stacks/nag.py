"""Narrow cdk-nag acknowledgments: one finding, one resource, one reason."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_s3 as s3
from constructs import IConstruct


def bucket_arn_ref(bucket: s3.IBucket) -> str:
    """How cdk-nag spells a bucket's ARN in findings: ``<LogicalId.Arn>``."""
    stack = Stack.of(bucket)
    return f"<{stack.get_logical_id(bucket.node.default_child)}.Arn>"  # type: ignore[arg-type]


def acknowledge_prefixes(
    construct: IConstruct, bucket: s3.IBucket, prefixes: Iterable[str], reason: str
) -> None:
    """Acknowledge IAM5 for object wildcards confined to ``prefixes`` of ``bucket``."""
    arn = bucket_arn_ref(bucket)
    Validations.of(construct).acknowledge(
        *[
            Acknowledgment(id=f"AwsSolutions-IAM5[Resource::{arn}/{prefix}*]", reason=reason)
            for prefix in prefixes
        ]
    )

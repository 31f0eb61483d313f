"""Rules AWS's services enforce at deploy or run time that neither CloudFormation's schema,
cfn-lint, cdk-nag nor the emulator check. Each reads a synthesized template (as JSON) and
returns the violations, each naming the resource and the document the rule comes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

Template = dict[str, Any]

CLOUDFRONT_CACHE_POLICY_DOC = (
    "CloudFront Developer Guide, 'Understand cache policies' (all TTLs 0 disables caching) "
    "and 'Serve compressed files'; awsdocs/amazon-cloudfront-developer-guide#51"
)
IAM_PRINCIPAL_DOC = (
    "IAM User Guide, 'AWS JSON policy elements: Principal' (a role principal must exist and "
    "is saved as its unique id; use aws:PrincipalArn in a condition instead)"
)
SNS_KMS_DOC = (
    "Amazon SNS Developer Guide, 'Enable compatibility between event sources from AWS "
    "services and encrypted topics'"
)
LAMBDA_SQS_DOC = (
    "AWS Lambda Developer Guide, 'Using Lambda with Amazon SQS' (visibility timeout at "
    "least six times the function timeout)"
)

_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:role/")


def _resources(template: Template, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == kind:
            yield logical_id, resource.get("Properties", {})


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _ref_id(value: Any) -> str | None:
    """The logical id a ``Ref`` or ``Fn::GetAtt`` points at."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def cache_policies_that_cloudfront_rejects(template: Template) -> list[str]:
    """A cache policy that disables caching (every TTL 0) may not ask for gzip or brotli:
    CloudFront rejects it ("invalid for policy with caching disabled")."""
    violations = []
    for logical_id, props in _resources(template, "AWS::CloudFront::CachePolicy"):
        config = props.get("CachePolicyConfig", {})
        ttls = (config.get("MinTTL"), config.get("DefaultTTL"), config.get("MaxTTL"))
        params = config.get("ParametersInCacheKeyAndForwardedToOrigin", {})
        encodings = [
            name
            for name in ("EnableAcceptEncodingGzip", "EnableAcceptEncodingBrotli")
            if params.get(name) is True
        ]
        if ttls == (0, 0, 0) and encodings:
            violations.append(
                f"{logical_id}: caching disabled with {', '.join(encodings)} "
                f"({CLOUDFRONT_CACHE_POLICY_DOC})"
            )
    return violations


def _policies(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every trust and resource policy document in the template."""
    for logical_id, props in _resources(template, "AWS::IAM::Role"):
        yield f"{logical_id} (trust policy)", props.get("AssumeRolePolicyDocument", {})
    for kind, key in (
        ("AWS::S3::BucketPolicy", "PolicyDocument"),
        ("AWS::KMS::Key", "KeyPolicy"),
        ("AWS::SecretsManager::ResourcePolicy", "ResourcePolicy"),
        ("AWS::SQS::QueuePolicy", "PolicyDocument"),
        ("AWS::SNS::TopicPolicy", "PolicyDocument"),
    ):
        for logical_id, props in _resources(template, kind):
            yield f"{logical_id} ({kind})", props.get(key, {})


def principals_naming_roles(template: Template) -> list[str]:
    """No trust or resource policy names an IAM role by a literal ARN: IAM and S3 reject a
    principal that does not exist yet ("Invalid principal in policy") and pin an existing
    one's unique id, so recreating that role silently breaks the grant. A role of the same
    template (``Fn::GetAtt``) exists first; others go in an ``aws:PrincipalArn`` condition."""
    violations = []
    for where, document in _policies(template):
        for statement in _statements(document):
            principal = statement.get("Principal", {})
            if not isinstance(principal, dict):
                continue
            for value in _as_list(principal.get("AWS", [])):
                if isinstance(value, str) and _ROLE_ARN.match(value):
                    violations.append(
                        f"{where}: principal {value} names a role ({IAM_PRINCIPAL_DOC})"
                    )
    return violations


def _allows_service(key_policy: dict[str, Any], service: str, actions: set[str]) -> bool:
    granted: set[str] = set()
    for statement in _statements(key_policy):
        if statement.get("Effect") != "Allow" or statement.get("Condition"):
            continue
        principal = statement.get("Principal", {})
        services = _as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
        if service in services:
            granted.update(_as_list(statement.get("Action", [])))
    return actions <= granted


def encrypted_topics_cloudwatch_cannot_publish_to(template: Template) -> list[str]:
    """An SNS topic that CloudWatch alarms publish to and that is encrypted with a key of
    this template needs that key to let cloudwatch.amazonaws.com use it; otherwise every
    alarm's notification fails and no one hears of it."""
    alarm_topics = {
        _ref_id(action)
        for _, props in _resources(template, "AWS::CloudWatch::Alarm")
        for action in props.get("AlarmActions", [])
    }
    keys = dict(_resources(template, "AWS::KMS::Key"))
    violations = []
    for logical_id, props in _resources(template, "AWS::SNS::Topic"):
        key_id = _ref_id(props.get("KmsMasterKeyId"))
        if logical_id not in alarm_topics or key_id is None or key_id not in keys:
            continue
        needed = {"kms:Decrypt", "kms:GenerateDataKey*"}
        if not _allows_service(
            keys[key_id].get("KeyPolicy", {}), "cloudwatch.amazonaws.com", needed
        ):
            violations.append(
                f"{logical_id}: its key {key_id} does not let cloudwatch.amazonaws.com "
                f"{' and '.join(sorted(needed))} ({SNS_KMS_DOC})"
            )
    return violations


def queues_shorter_than_six_function_timeouts(template: Template) -> list[str]:
    """A queue that feeds a function keeps each message invisible at least six times the
    function's timeout, so a message is not handed to a second invocation mid-work."""
    resources = template.get("Resources", {})
    violations = []
    for logical_id, props in _resources(template, "AWS::Lambda::EventSourceMapping"):
        queue_id = _ref_id(props.get("EventSourceArn"))
        function_id = _ref_id(props.get("FunctionName"))
        if queue_id is None or function_id is None:
            continue
        visibility = resources[queue_id]["Properties"].get("VisibilityTimeout", 30)
        timeout = resources[function_id]["Properties"].get("Timeout", 3)
        if visibility < 6 * timeout:
            violations.append(
                f"{logical_id}: queue {queue_id} visibility {visibility} s < 6 × "
                f"{function_id}'s {timeout} s ({LAMBDA_SQS_DOC})"
            )
    return violations


RULES = (
    cache_policies_that_cloudfront_rejects,
    principals_naming_roles,
    encrypted_topics_cloudwatch_cannot_publish_to,
    queues_shorter_than_six_function_timeouts,
)

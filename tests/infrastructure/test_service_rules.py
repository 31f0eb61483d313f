"""What AWS's services would reject or silently break, checked on both synthesized
templates; each rule is also shown to catch the defect it exists for."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.infrastructure import service_rules
from tests.infrastructure.service_rules import (
    RULES,
    cache_policies_that_cloudfront_rejects,
    encrypted_topics_cloudwatch_cannot_publish_to,
    principals_naming_roles,
    queues_shorter_than_six_function_timeouts,
)

pytestmark = pytest.mark.infrastructure


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
@pytest.mark.parametrize("stack", ["institute", "difusor"])
def test_the_synthesized_stacks_break_no_service_rule(rule, stack, request):
    template = request.getfixturevalue(stack).to_json()
    assert rule(template) == []


def _of_type(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    return next((k, v) for k, v in template["Resources"].items() if v["Type"] == kind)


def test_a_cache_policy_with_caching_off_and_compression_on_is_caught(difusor):
    # Given the difusor's cache policy with every TTL 0 (caching disabled) and gzip/brotli on
    template = copy.deepcopy(difusor.to_json())
    logical_id, policy = _of_type(template, "AWS::CloudFront::CachePolicy")
    config = policy["Properties"]["CachePolicyConfig"]
    config.update(MinTTL=0, DefaultTTL=0, MaxTTL=0)
    params = config["ParametersInCacheKeyAndForwardedToOrigin"]
    params["EnableAcceptEncodingGzip"] = True
    params["EnableAcceptEncodingBrotli"] = True
    # (as deployed: a year at the edge, compression on, which CloudFront accepts)
    assert cache_policies_that_cloudfront_rejects(difusor.to_json()) == []
    # When the rule reads it / Then CloudFront's refusal is named
    [violation] = cache_policies_that_cloudfront_rejects(template)
    assert logical_id in violation and "EnableAcceptEncodingGzip" in violation
    assert "CloudFront Developer Guide" in violation


def test_a_trust_policy_naming_the_institutes_role_is_caught(difusor, difusor_config):
    # Given the delivery role trusting the publisher role by ARN, as it did
    template = copy.deepcopy(difusor.to_json())
    role = next(
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Role"
        and r["Properties"].get("RoleName") == difusor_config.delivery_role_name
    )
    [statement] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    statement["Principal"] = {
        "AWS": [difusor_config.publisher_role_arn, difusor_config.monitor_role_arn]
    }
    # Then both roles are named as what IAM would refuse before the institute deploys
    violations = principals_naming_roles(template)
    assert len(violations) == 2
    assert all("trust policy" in v and "Principal" in v for v in violations)


def test_a_bucket_policy_naming_a_role_is_caught(difusor, difusor_config):
    template = copy.deepcopy(difusor.to_json())
    _, policy = _of_type(template, "AWS::S3::BucketPolicy")
    policy["Properties"]["PolicyDocument"]["Statement"].append(
        {
            "Effect": "Allow",
            "Principal": {"AWS": difusor_config.publisher_role_arn},
            "Action": "s3:PutObject",
            "Resource": "*",
        }
    )
    [violation] = principals_naming_roles(template)
    assert "AWS::S3::BucketPolicy" in violation


def test_an_alarm_topic_whose_key_only_trusts_the_account_is_caught(institute):
    # Given the alarm topic's key policy as it was: only the account root
    template = copy.deepcopy(institute.to_json())
    topic_id, topic = next(
        (k, v)
        for k, v in template["Resources"].items()
        if v["Type"] == "AWS::SNS::Topic" and "KmsMasterKeyId" in v["Properties"]
    )
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_policy = template["Resources"][key_id]["Properties"]["KeyPolicy"]
    key_policy["Statement"] = [
        s
        for s in key_policy["Statement"]
        if "cloudwatch.amazonaws.com" not in str(s.get("Principal", ""))
    ]
    # Then the rule says CloudWatch cannot publish to it
    [violation] = encrypted_topics_cloudwatch_cannot_publish_to(template)
    assert topic_id in violation and "cloudwatch.amazonaws.com" in violation
    assert service_rules.SNS_KMS_DOC in violation


def test_a_queue_shorter_than_six_function_timeouts_is_caught(institute):
    template = copy.deepcopy(institute.to_json())
    mapping_id, mapping = _of_type(template, "AWS::Lambda::EventSourceMapping")
    queue_id = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
    template["Resources"][queue_id]["Properties"]["VisibilityTimeout"] = 10
    [violation] = queues_shorter_than_six_function_timeouts(template)
    assert mapping_id in violation and "visibility 10 s" in violation


def test_cloudwatch_may_publish_to_the_alarm_topic(institute):
    """Its policy (CDK writes one for TLS-only) must let CloudWatch publish (Knowledge Center,
    'cloudwatch-receive-sns-for-alarm-trigger')."""
    [policy] = institute.find_resources("AWS::SNS::TopicPolicy").values()
    allows = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert [s["Action"] for s in allows] == ["sns:Publish"]

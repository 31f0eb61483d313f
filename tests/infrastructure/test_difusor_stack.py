"""The difusor's stack: the call's technical requirements, secure by default."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template

from tests.infrastructure.conftest import synth
from tests.infrastructure.templates import actions_of, bucket_policy, only, statements_of

pytestmark = pytest.mark.infrastructure


def _site_bucket_id(template: Template) -> str:
    [bucket_id] = [
        k
        for k, v in template.find_resources("AWS::S3::Bucket").items()
        if "VersioningConfiguration" in v["Properties"]
    ]
    return bucket_id


def test_it_deploys_in_us_east_1_where_cloudfront_waf_lives(synthesized):
    assert synthesized[2].region == "us-east-1"


def test_the_site_bucket_is_private_owner_enforced_encrypted_versioned_tls_only(difusor):
    bucket_id = _site_bucket_id(difusor)
    props = difusor.to_json()["Resources"][bucket_id]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert (
        props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ]["SSEAlgorithm"]
        == "AES256"
    )
    assert "LoggingConfiguration" in props
    statements = bucket_policy(difusor, bucket_id)["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    # Only CloudFront (through origin access control) reads it; the institute only writes.
    allows = [s for s in statements if s["Effect"] == "Allow"]
    readers = [s for s in allows if "s3:GetObject" in actions_of([s])]
    assert [s["Principal"] for s in readers] == [{"Service": "cloudfront.amazonaws.com"}]


def test_only_the_institutes_publisher_and_monitor_write_the_site_under_its_policy(
    difusor, difusor_config
):
    bucket_id = _site_bucket_id(difusor)
    by_sid = {s.get("Sid"): s for s in bucket_policy(difusor, bucket_id)["Statement"]}
    institute_roles = sorted([difusor_config.publisher_role_arn, difusor_config.monitor_role_arn])
    bucket_arn = {"Fn::GetAtt": [bucket_id, "Arn"]}
    for sid, actions, resource in (
        (
            "TheInstitutePublishes",
            {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
            {"Fn::Join": ["", [bucket_arn, "/*"]]},
        ),
        ("TheInstituteListsTheSite", {"s3:ListBucket"}, bucket_arn),
    ):
        statement = by_sid[sid]
        # The institute's account as principal and its roles in a condition: the policy is
        # valid before those roles exist and survives their recreation.
        assert statement["Principal"] == {
            "AWS": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        f":iam::{difusor_config.institute_account}:root",
                    ],
                ]
            }
        }
        assert sorted(statement["Condition"]["ArnEquals"]["aws:PrincipalArn"]) == institute_roles
        assert actions_of([statement]) == actions
        assert statement["Resource"] == resource
        assert statement["Effect"] == "Allow"


def test_cloudfront_revalidates_every_request_over_https_through_oac(difusor):
    policy = only(difusor, "AWS::CloudFront::CachePolicy")["Properties"]["CachePolicyConfig"]
    assert (policy["MinTTL"], policy["DefaultTTL"], policy["MaxTTL"]) == (0, 0, 0)
    encodings = policy["ParametersInCacheKeyAndForwardedToOrigin"]
    assert encodings["EnableAcceptEncodingGzip"] is False
    assert encodings["EnableAcceptEncodingBrotli"] is False
    only(difusor, "AWS::CloudFront::OriginAccessControl")
    config = only(difusor, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert "CachePolicyId" in behavior and "ResponseHeadersPolicyId" in behavior
    [origin] = config["Origins"]
    assert "OriginAccessControlId" in origin
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert config["DefaultRootObject"] == "index.html"
    assert config["Logging"]["Prefix"] == "cloudfront/"
    [association] = behavior["FunctionAssociations"]
    assert association["EventType"] == "viewer-request"
    code = only(difusor, "AWS::CloudFront::Function")["Properties"]["FunctionCode"]
    assert "index.html" in code


def test_security_headers_are_sent(difusor):
    headers = only(difusor, "AWS::CloudFront::ResponseHeadersPolicy")["Properties"][
        "ResponseHeadersPolicyConfig"
    ]["SecurityHeadersConfig"]
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] == 31536000
    assert headers["ContentTypeOptions"]["Override"] is True
    assert headers["FrameOptions"]["FrameOption"] == "SAMEORIGIN"


def test_waf_has_the_managed_rule_groups_and_a_rate_limit_and_fronts_the_distribution(difusor):
    acl_id, acl = next(iter(difusor.find_resources("AWS::WAFv2::WebACL").items()))
    props = acl["Properties"]
    assert props["Scope"] == "CLOUDFRONT"
    names = [
        r["Statement"].get("ManagedRuleGroupStatement", {}).get("Name") for r in props["Rules"]
    ]
    assert names[:3] == [
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    ]
    [rate] = [r for r in props["Rules"] if "RateBasedStatement" in r["Statement"]]
    assert rate["Statement"]["RateBasedStatement"]["Limit"] == 2000
    assert rate["Action"] == {"Block": {}}
    config = only(difusor, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    assert config["WebACLId"] == {"Fn::GetAtt": [acl_id, "Arn"]}


def _delivery_role_id(difusor: Template, difusor_config) -> str:
    return next(
        iter(
            difusor.find_resources(
                "AWS::IAM::Role", {"Properties": {"RoleName": difusor_config.delivery_role_name}}
            )
        )
    )


def test_the_delivery_role_trusts_only_the_publisher_and_monitor_with_the_external_id(
    difusor, difusor_config
):
    role = difusor.to_json()["Resources"][_delivery_role_id(difusor, difusor_config)]
    assert role["Properties"]["RoleName"] == "difusion-delivery-dip-loc-bcs"
    [statement] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    # The institute's account, narrowed to its two roles by a condition: no role ARN as a
    # principal, which IAM rejects while the role does not exist (difusores deploy first).
    assert statement["Principal"]["AWS"]["Fn::Join"][1][-1] == (
        f":iam::{difusor_config.institute_account}:root"
    )
    assert statement["Condition"] == {
        "StringEquals": {"sts:ExternalId": difusor_config.external_id},
        "ArnEquals": {
            "aws:PrincipalArn": [difusor_config.publisher_role_arn, difusor_config.monitor_role_arn]
        },
    }


def test_the_delivery_role_may_only_invalidate_this_distribution(difusor, difusor_config):
    statements = statements_of(difusor, _delivery_role_id(difusor, difusor_config))
    assert actions_of(statements) == {
        "cloudfront:CreateInvalidation",
        "cloudfront:GetInvalidation",
    }
    [invalidation] = statements
    distribution_id = next(iter(difusor.find_resources("AWS::CloudFront::Distribution")))
    assert {"Ref": distribution_id} in invalidation["Resource"]["Fn::Join"][1]


def test_nothing_in_the_difusors_account_can_read_the_institutes_origin(difusor):
    text = str(difusor.to_json())
    assert "difusion-origin" not in text
    for role_id in difusor.find_resources("AWS::IAM::Role"):
        for statement in statements_of(difusor, role_id):
            assert not any(a.startswith("s3:Get") for a in actions_of([statement])), statement


def test_outputs_are_what_the_institute_needs_to_register_the_difusor(difusor):
    outputs = difusor.find_outputs("*")
    assert set(outputs) >= {
        "DifusorId",
        "DifusorName",
        "AccountId",
        "SiteBucketName",
        "DistributionId",
        "DeliveryRoleArn",
        "ExternalId",
        "ElectionId",
        "SiteRegion",
        "PublicUrl",
    }
    from difusion.cli import _OUTPUT_FIELDS

    assert set(_OUTPUT_FIELDS) <= set(outputs)


def test_shield_advanced_and_a_custom_domain_are_switches(tmp_path, difusor_config):
    from dataclasses import asdict

    raw = {
        **asdict(difusor_config),
        "id": difusor_config.difusor_id,
        "account": difusor_config.account,
        "shield_advanced": True,
        "domain_name": "prep.uabcs.mx",
        "certificate_arn": "arn:aws:acm:us-east-1:777788889999:certificate/abc",
    }
    raw.pop("difusor_id")
    _, _, stack = synth(tmp_path / "cdk.out", difusor=raw)
    template = Template.from_stack(stack)
    only(template, "AWS::Shield::Protection")
    config = only(template, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    assert config["Aliases"] == ["prep.uabcs.mx"]
    assert config["ViewerCertificate"]["MinimumProtocolVersion"] == "TLSv1.2_2021"


def test_without_the_switch_there_is_no_shield_advanced_protection(difusor):
    assert difusor.find_resources("AWS::Shield::Protection") == {}

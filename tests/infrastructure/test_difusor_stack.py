"""The difusor's stack: the call's technical requirements, secure by default."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template

from stacks.difusor.site_versions import FUNCTION_FILE
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


def _cache_key(policy: dict) -> dict:
    return policy["ParametersInCacheKeyAndForwardedToOrigin"]


def test_cloudfront_keeps_immutable_versions_at_the_edge_over_https_through_oac(difusor):
    # versioned (the default cache_mode): a year at the edge, the version in the cache key
    policy = only(difusor, "AWS::CloudFront::CachePolicy")["Properties"]["CachePolicyConfig"]
    assert (policy["MinTTL"], policy["DefaultTTL"], policy["MaxTTL"]) == (31536000,) * 3
    key = _cache_key(policy)
    assert key["QueryStringsConfig"] == {
        "QueryStringBehavior": "whitelist",
        "QueryStrings": ["v"],
    }
    assert key["EnableAcceptEncodingGzip"] is True
    assert key["EnableAcceptEncodingBrotli"] is True
    only(difusor, "AWS::CloudFront::OriginAccessControl")
    config = only(difusor, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert "CachePolicyId" in behavior and "ResponseHeadersPolicyId" in behavior
    assert behavior["Compress"] is True
    [origin] = config["Origins"]
    assert "OriginAccessControlId" in origin
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert origin["OriginShield"] == {"Enabled": True, "OriginShieldRegion": "us-east-1"}
    # "/" is the function's: a redirect to the live version, not a default root object
    assert "DefaultRootObject" not in config
    assert config["Logging"]["Prefix"] == "cloudfront/"


def test_the_viewer_request_function_is_the_repositorys_file_with_its_store(difusor):
    config = only(difusor, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    [association] = config["DefaultCacheBehavior"]["FunctionAssociations"]
    assert association["EventType"] == "viewer-request"
    [(function_id, function)] = difusor.find_resources("AWS::CloudFront::Function").items()
    assert association["FunctionARN"] == {"Fn::GetAtt": [function_id, "FunctionARN"]}
    props = function["Properties"]
    # byte for byte what edge/viewer_request.js is, and what node --test edge/ tests
    assert props["FunctionCode"] == FUNCTION_FILE.read_text()
    assert props["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    [(store_id, _)] = difusor.find_resources("AWS::CloudFront::KeyValueStore").items()
    [kvs] = props["FunctionConfig"]["KeyValueStoreAssociations"]
    assert kvs == {"KeyValueStoreARN": {"Fn::GetAtt": [store_id, "Arn"]}}
    assert props["AutoPublish"] is True
    assert store_id in function.get("DependsOn", [])
    # and the store's ARN is an output the institute registers
    outputs = difusor.to_json()["Outputs"]
    assert outputs["KeyValueStoreArn"]["Value"] == {"Fn::GetAtt": [store_id, "Arn"]}
    assert outputs["CacheMode"]["Value"] == "versioned"


def test_security_headers_are_sent_and_browsers_revalidate_every_load(difusor):
    config = only(difusor, "AWS::CloudFront::ResponseHeadersPolicy")["Properties"][
        "ResponseHeadersPolicyConfig"
    ]
    assert config["CustomHeadersConfig"]["Items"] == [
        {"Header": "Cache-Control", "Value": "no-cache", "Override": True}
    ]
    headers = config["SecurityHeadersConfig"]
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] == 31536000
    assert headers["ContentTypeOptions"]["Override"] is True
    assert headers["FrameOptions"]["FrameOption"] == "SAMEORIGIN"


def test_only_the_institutes_portal_may_read_the_site_cross_origin(difusor, difusor_config):
    config = only(difusor, "AWS::CloudFront::ResponseHeadersPolicy")["Properties"][
        "ResponseHeadersPolicyConfig"
    ]
    cors = config["CorsConfig"]
    # the portal the config names, and nothing else: no wildcard, no credentials, reads only
    assert cors["AccessControlAllowOrigins"]["Items"] == ["https://prep.ieebcs.org.mx"]
    assert cors["AccessControlAllowOrigins"]["Items"] == [difusor_config.portal_origin]
    assert cors["AccessControlAllowMethods"]["Items"] == ["GET", "HEAD"]
    assert cors["AccessControlAllowCredentials"] is False
    # CloudFormation needs one allowed header: a CORS-safelisted one opens nothing
    assert cors["AccessControlAllowHeaders"]["Items"] == ["Accept"]
    assert "AccessControlExposeHeaders" not in cors
    assert cors["OriginOverride"] is True
    # the embedded default's sites apply this very policy
    viewer = difusor_config.viewer_headers
    assert viewer.for_response("https://prep.ieebcs.org.mx") == {
        "Cache-Control": "no-cache",
        "Access-Control-Allow-Origin": "https://prep.ieebcs.org.mx",
    }
    assert viewer.for_response("https://prep.otro.example") == {"Cache-Control": "no-cache"}
    assert viewer.for_response(None) == {"Cache-Control": "no-cache"}


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
    assert rate["Statement"]["RateBasedStatement"]["Limit"] == 20000
    # a blocked check reads as "too many requests" to the verifier, not as missing files
    response = rate["Action"]["Block"]["CustomResponse"]
    assert response["ResponseCode"] == 429
    assert {"Name": "access-control-allow-origin", "Value": "*"} in response["ResponseHeaders"]
    assert set(rate["Action"]) == {"Block"}
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


def test_the_delivery_role_may_only_read_and_write_this_sites_version_pointer(
    difusor, difusor_config
):
    statements = statements_of(difusor, _delivery_role_id(difusor, difusor_config))
    assert actions_of(statements) == {
        "cloudfront-keyvaluestore:DescribeKeyValueStore",
        "cloudfront-keyvaluestore:GetKey",
        "cloudfront-keyvaluestore:PutKey",
    }
    [pointer] = statements
    store_id = next(iter(difusor.find_resources("AWS::CloudFront::KeyValueStore")))
    assert pointer["Resource"] == {"Fn::GetAtt": [store_id, "Arn"]}


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
        "KeyValueStoreArn",
        "CacheMode",
        "DeliveryRoleArn",
        "ExternalId",
        "ElectionId",
        "SiteRegion",
        "PublicUrl",
    }
    from difusion.cli import _OUTPUT_FIELDS

    assert set(_OUTPUT_FIELDS) <= set(outputs)


def test_the_log_bucket_is_an_output_for_the_memoria(difusor):
    # `difusion memoria --logs s3://<LogBucketName>/cloudfront/` reads what the
    # distribution logs there
    outputs = difusor.find_outputs("LogBucketName")
    [distribution] = difusor.find_resources("AWS::CloudFront::Distribution").values()
    logging = distribution["Properties"]["DistributionConfig"]["Logging"]
    assert logging["Prefix"] == "cloudfront/"
    assert outputs["LogBucketName"]["Value"] == {"Ref": logging["Bucket"]["Fn::GetAtt"][0]}


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
    raw["cache_mode"] = "revalidate"
    _, _, stack = synth(tmp_path / "cdk.out", difusor=raw)
    template = Template.from_stack(stack)
    only(template, "AWS::Shield::Protection")
    config = only(template, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    assert config["Aliases"] == ["prep.uabcs.mx"]
    assert config["ViewerCertificate"]["MinimumProtocolVersion"] == "TLSv1.2_2021"
    # revalidate (the literal mode): every request a conditional GET at the bucket; a
    # caching policy all the same (max TTL above 0), without compression flags, which
    # CloudFront refuses for a policy with caching disabled and does not use at min TTL 0
    policy = only(template, "AWS::CloudFront::CachePolicy")["Properties"]["CachePolicyConfig"]
    assert (policy["MinTTL"], policy["DefaultTTL"], policy["MaxTTL"]) == (0, 0, 31536000)
    key = _cache_key(policy)
    assert key["QueryStringsConfig"]["QueryStrings"] == ["v"]
    assert key["EnableAcceptEncodingGzip"] is False and key["EnableAcceptEncodingBrotli"] is False
    assert config["DefaultCacheBehavior"]["Compress"] is False
    # the same function and store: visitors get whole versions in both modes
    only(template, "AWS::CloudFront::KeyValueStore")
    [association] = config["DefaultCacheBehavior"]["FunctionAssociations"]
    assert association["EventType"] == "viewer-request"
    assert config["Origins"][0]["OriginShield"]["Enabled"] is True


def test_without_the_switch_there_is_no_shield_advanced_protection(difusor):
    assert difusor.find_resources("AWS::Shield::Protection") == {}

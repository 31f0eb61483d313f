"""Preflight in a difusor's account: each check over recorded AWS responses
(tests/fixtures/preflight/), as the difusor's stack deploys it and as it must not be."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from difusion.preflight.difusor_checks import (
    check_bucket_policy,
    check_delivery_permissions,
    check_delivery_trust,
    check_distribution,
    check_edge_function,
    check_ownership,
    check_public_access_block,
    check_version_pointer,
    viewer_request_functions,
)
from difusion.preflight.outputs import DifusorOutputs, InstituteRoles

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "preflight"


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def difusor() -> DifusorOutputs:
    return DifusorOutputs.from_file(FIXTURES / "difusor-outputs.json")


@pytest.fixture
def institute() -> InstituteRoles:
    return InstituteRoles.named("123456789012", "DIP_LOC_BCS")


def by_check(lines):
    return {line.check: line for line in lines}


# --- the distribution -----------------------------------------------------------------


def test_the_distribution_as_the_stack_deploys_it_passes_every_check(difusor):
    # Given the distribution as the difusor's stack deploys it
    lines = check_distribution(recorded("get_distribution.json"), difusor.bucket)
    # Then deployed, HTTPS-only, behind its WAF, reading the site bucket with OAC
    assert [line.check for line in lines] == [
        "distribution deployed",
        "distribution https",
        "distribution waf",
        "distribution origin",
        "distribution oac",
    ]
    assert all(line.ok for line in lines), [line.reason for line in lines if not line.ok]
    assert "WafSiteAcl-kQ3vX9rT2mLp" in by_check(lines)["distribution waf"].reason


def test_a_legacy_distribution_fails_with_each_reason(difusor):
    # Given a distribution still deploying, serving HTTP, without WAF, with a legacy OAI
    lines = by_check(check_distribution(recorded("get_distribution_legacy.json"), difusor.bucket))
    assert "InProgress" in lines["distribution deployed"].reason
    assert lines["distribution https"].reason == (
        "viewers are served HTTP: default: allow-all, /datos/*: allow-all"
    )
    assert "no WAF web ACL" in lines["distribution waf"].reason
    assert "legacy origin access identity" in lines["distribution oac"].reason
    assert "has no origin access control" in lines["distribution oac"].reason
    assert not any(lines[c].ok for c in lines if c != "distribution origin")


def test_a_distribution_reading_another_bucket_fails(difusor):
    lines = by_check(check_distribution(recorded("get_distribution.json"), "prep-otro-sitio"))
    origin = lines["distribution origin"]
    assert not origin.ok and "not bucket prep-otro-sitio" in origin.reason


def test_a_disabled_distribution_fails(difusor):
    response = recorded("get_distribution.json")
    response["Distribution"]["DistributionConfig"]["Enabled"] = False
    deployed = by_check(check_distribution(response, difusor.bucket))["distribution deployed"]
    assert not deployed.ok and "DISABLED" in deployed.reason


# --- the bucket -----------------------------------------------------------------------


def test_the_public_access_block_must_have_all_four_settings_on(difusor):
    assert check_public_access_block(recorded("get_public_access_block.json"), difusor.bucket).ok
    partial = check_public_access_block(
        recorded("get_public_access_block_partial.json"), difusor.bucket
    )
    assert not partial.ok and partial.reason == "off: BlockPublicPolicy, RestrictPublicBuckets"
    assert not check_public_access_block(None, difusor.bucket).ok


def test_objects_must_be_owned_by_the_bucket_owner(difusor):
    assert check_ownership(recorded("get_bucket_ownership_controls.json"), difusor.bucket).ok
    writer = check_ownership(
        recorded("get_bucket_ownership_controls_object_writer.json"), difusor.bucket
    )
    assert not writer.ok and "ObjectWriter" in writer.reason
    assert not check_ownership(None, difusor.bucket).ok


def test_the_stacks_bucket_policy_is_tls_only_oac_read_and_written_by_the_two_roles(
    difusor, institute
):
    # Given the bucket policy the difusor's stack writes
    policy = recorded("get_bucket_policy.json")["Policy"]
    # When evaluated
    lines = check_bucket_policy(policy, difusor, institute)
    # Then every line passes, one per institute role for the writes
    assert all(line.ok for line in lines), [line.reason for line in lines if not line.ok]
    assert [line.check for line in lines] == [
        "bucket tls only",
        "bucket readers",
        "institute writes",
        "institute writes",
        "bucket writers",
    ]
    assert lines[2].subject.endswith("← publisher") and lines[3].subject.endswith("← monitor")


def test_a_public_bucket_policy_fails_for_tls_readers_and_writers(difusor, institute):
    # Given a public-read policy without the TLS deny, letting any institute principal write
    policy = recorded("get_bucket_policy_public.json")["Policy"]
    lines = by_check(check_bucket_policy(policy, difusor, institute))
    assert "no Deny when aws:SecureTransport is false" in lines["bucket tls only"].reason
    assert "statement PublicRead allows anyone" in lines["bucket readers"].reason
    assert "any role of the institute's account may" in lines["bucket writers"].reason
    assert not any(lines[c].ok for c in ("bucket tls only", "bucket readers", "bucket writers"))


def test_a_policy_naming_other_institute_roles_refuses_the_publisher(difusor, institute):
    # Given a bucket policy written for a drill's roles, not this election's
    policy = recorded("get_bucket_policy.json")["Policy"].replace("dip-loc-bcs", "simulacro")
    writes = [
        line
        for line in check_bucket_policy(policy, difusor, institute)
        if line.check == "institute writes"
    ]
    assert len(writes) == 2 and not any(line.ok for line in writes)
    assert "may not s3:PutObject, s3:DeleteObject" in writes[0].reason


def test_a_bucket_without_a_policy_fails_every_policy_check(difusor, institute):
    lines = check_bucket_policy(None, difusor, institute)
    assert lines and all(not line.ok and "no policy" in line.reason for line in lines)


def test_an_oac_grant_for_another_distribution_does_not_let_this_one_read(difusor, institute):
    policy = recorded("get_bucket_policy.json")["Policy"].replace(
        difusor.distribution_id, "E9OTHERDISTRO"
    )
    readers = by_check(check_bucket_policy(policy, difusor, institute))["bucket readers"]
    assert not readers.ok and "no OAC grant" in readers.reason


# --- the delivery role ----------------------------------------------------------------


def test_the_delivery_role_trusts_the_two_roles_with_the_external_id_only(difusor, institute):
    # Given GetRole's URL-encoded trust policy, as the stack writes it
    line = check_delivery_trust(recorded("get_role_delivery.json"), difusor, institute)
    # Then the publisher and monitor may assume it with the id, nobody without it
    assert line.ok, line.reason
    assert line.subject == difusor.role_arn
    assert "external id sha256:" in line.reason
    assert difusor.external_id not in line.reason  # named, never shown


def test_a_trust_without_external_id_or_role_condition_fails(difusor, institute):
    line = check_delivery_trust(
        recorded("get_role_delivery_no_external_id.json"), difusor, institute
    )
    assert not line.ok
    assert "without an external id" in line.reason
    assert "any role of the institute's account may assume it" in line.reason


def test_a_trust_with_another_external_id_refuses_both_roles(difusor, institute):
    line = check_delivery_trust(
        recorded("get_role_delivery.json"), replace_external_id(difusor), institute
    )
    assert not line.ok
    assert "publisher may not assume it" in line.reason
    assert "monitor may not assume it" in line.reason


def replace_external_id(difusor: DifusorOutputs) -> DifusorOutputs:
    from dataclasses import replace

    return replace(difusor, external_id="0" * 32)


def test_the_delivery_role_may_only_switch_its_sites_version(difusor):
    policy = recorded("get_role_policy.json")["PolicyDocument"]
    line = check_delivery_permissions(
        difusor.role_arn, difusor.account_id, {"inline policy P": policy}, difusor.kvs_arn
    )
    assert line.ok, line.reason


def test_a_delivery_role_allowed_more_fails_naming_what(difusor):
    broad = recorded("get_role_policy_broad.json")["PolicyDocument"]
    line = check_delivery_permissions(
        difusor.role_arn, difusor.account_id, {"inline policy P": broad}, difusor.kvs_arn
    )
    assert not line.ok
    assert "allows cloudfront:*" in line.reason and "names *" in line.reason


def test_a_delivery_role_without_policies_cannot_switch_the_version(difusor):
    line = check_delivery_permissions(difusor.role_arn, difusor.account_id, {}, difusor.kvs_arn)
    assert not line.ok and "does not allow cloudfront-keyvaluestore:PutKey" in line.reason


# --- whole-site versions ----------------------------------------------------------------


def _edge(difusor, distribution="get_distribution.json", function=None):
    behaviors = viewer_request_functions(recorded(distribution))
    described = function or recorded("describe_function.json")
    arns = {a for a in behaviors.values() if a}
    return check_edge_function(behaviors, dict.fromkeys(arns, described), difusor.kvs_arn)


def test_every_behavior_routes_by_the_store_the_institute_switches(difusor):
    line = _edge(difusor)
    assert line.ok, line.reason
    assert difusor.kvs_arn in line.reason and "VersionsRouter" in line.subject


def test_a_function_reading_another_store_fails_naming_both(difusor):
    # Given the stack redeployed with a new store, and UCSI still holding the old ARN
    function = recorded("describe_function.json")
    items = function["FunctionSummary"]["FunctionConfig"]["KeyValueStoreAssociations"]["Items"]
    items[0]["KeyValueStoreARN"] = difusor.kvs_arn.replace("4f7c2d9e", "00000000")
    line = _edge(difusor, function=function)
    assert not line.ok
    assert f"not {difusor.kvs_arn}" in line.reason and "00000000" in line.reason


def test_a_function_on_the_old_runtime_or_without_a_store_fails(difusor):
    function = recorded("describe_function.json")
    config = function["FunctionSummary"]["FunctionConfig"]
    config["Runtime"] = "cloudfront-js-1.0"
    config["KeyValueStoreAssociations"] = {"Quantity": 0}
    line = _edge(difusor, function=function)
    assert not line.ok
    assert "cloudfront-js-1.0, not cloudfront-js-2.0" in line.reason
    assert "reads no KeyValueStore" in line.reason


def test_a_behavior_without_the_function_fails_naming_it(difusor):
    response = recorded("get_distribution.json")
    config = response["Distribution"]["DistributionConfig"]
    config["CacheBehaviors"] = {
        "Quantity": 1,
        "Items": [{"PathPattern": "/datos/*", "FunctionAssociations": {"Quantity": 0}}],
    }
    behaviors = viewer_request_functions(response)
    assert behaviors["/datos/*"] is None and behaviors["default"]
    described = {behaviors["default"]: recorded("describe_function.json")}
    line = check_edge_function(behaviors, described, difusor.kvs_arn)
    assert not line.ok and "behavior /datos/* has no viewer-request function" in line.reason
    # and a distribution with no function at all routes nothing
    del config["DefaultCacheBehavior"]["FunctionAssociations"]
    line = check_edge_function(viewer_request_functions(response), {}, difusor.kvs_arn)
    assert not line.ok and "behavior default has no viewer-request function" in line.reason


def test_the_pointer_is_reported_as_the_edge_reads_it(difusor):
    from difusion.versions import Held, Pointer

    empty = check_version_pointer(None, difusor.kvs_arn)
    assert empty.ok and "503 until the institute's first delivery" in empty.reason
    first = Pointer.first("a", Held(3, "a" * 64))
    live = check_version_pointer(first.switched(Held(4, "b" * 64)), difusor.kvs_arn)
    assert live.ok and live.reason.startswith("version 2 live (cut 4, slot b)")
    assert "version 1 still routable" in live.reason
    suspended = check_version_pointer(Pointer.suspended("aviso-1", 2), difusor.kvs_arn)
    assert suspended.ok and "notice aviso-1" in suspended.reason
    broken = check_version_pointer(None, difusor.kvs_arn, error="not JSON")
    assert not broken.ok and "answers 503: not JSON" in broken.reason


# --- the edge as AWS runs it (difusion.preflight.edge_checks) -----------------------------


def _live_pointer():
    from difusion.versions import Held, Pointer

    return Pointer.first("a", Held(3, "a" * 64)).switched(Held(4, "b" * 64))


def _test_result(output: dict[str, Any], utilization: str = "20") -> dict[str, Any]:
    return {"ComputeUtilization": utilization, "FunctionOutput": json.dumps(output)}


def test_the_events_asked_follow_from_the_pointer():
    from difusion.preflight.edge_checks import edge_cases
    from difusion.versions import Pointer

    # Given a live pointer (version 2 in slot b), the cases name that version and slot
    live = edge_cases(_live_pointer())
    assert [(c.name, c.status, c.location, c.origin_uri, c.version_query) for c in live.cases] == [
        ("unversioned path", 302, "/v/2/.well-known/prep/manifest.json", None, None),
        ("live version", None, None, "/_v/b/index.html", "2"),
        ("traversal path", 400, None, None, None),
    ]
    assert live.unasked == ""
    # A suspended one asks the notice; an empty one only the 503 and a traversal
    suspended = edge_cases(Pointer.suspended("aviso-1", 2))
    assert [c.origin_uri or c.location for c in suspended.cases[:2]] == [
        "/_aviso/aviso-1/index.html",
        "/",
    ]
    assert [c.status for c in edge_cases(None).cases] == [503, 400]
    # and a store that could not be read, only what needs no pointer
    unread = edge_cases(None, pointer_read=False)
    assert [c.status for c in unread.cases] == [400] and "could not be read" in unread.unasked


def test_a_function_answer_is_judged_by_status_location_slot_and_cacheability():
    from difusion.preflight.edge_checks import edge_cases, judge_case

    redirect, slot, _ = edge_cases(_live_pointer()).cases
    headers = {"location": {"value": "/v/2/.well-known/prep/manifest.json"}}
    right = {
        "response": {
            "statusCode": 302,
            "headers": {**headers, "cache-control": {"value": "no-store"}},
        }
    }
    assert judge_case(redirect, _test_result(right)) is None
    cacheable = {"response": {"statusCode": 302, "headers": headers}}
    assert "is cacheable" in str(judge_case(redirect, _test_result(cacheable)))
    passed_on = {"request": {"uri": "/_v/a/x", "querystring": {}}}
    assert "expected 302, got the request to /_v/a/x" in str(
        judge_case(redirect, _test_result(passed_on))
    )
    other_slot = {"request": {"uri": "/_v/a/index.html", "querystring": {"v": {"value": "2"}}}}
    assert "got /_v/a/index.html?v=2" in str(judge_case(slot, _test_result(other_slot)))


def test_compute_utilization_above_the_threshold_warns_without_failing():
    from difusion.preflight.edge_checks import (
        UTILIZATION_WARNING,
        EdgeCase,
        EdgeCases,
        check_function_runs,
    )

    case = EdgeCase("traversal path", "/a/../b", status=400)
    answer = {"response": {"statusCode": 400, "headers": {"cache-control": {"value": "no-store"}}}}
    at = check_function_runs("router", EdgeCases((case,)), [_test_result(answer, "70")])
    above = check_function_runs("router", EdgeCases((case,)), [_test_result(answer, "71")])
    assert UTILIZATION_WARNING == 70
    assert at.ok and "warning" not in at.reason
    assert above.ok and "compute utilization ≤ 71; warning: above 70" in above.reason


def test_the_sites_answer_must_be_the_functions_own_for_the_pointer():
    from difusion.preflight.edge_checks import SiteAnswer, check_site_answer
    from difusion.versions import Pointer

    url = "https://prep.example/.well-known/prep/manifest.json"
    # An absolute location to the live version passes
    absolute = SiteAnswer(
        302,
        {
            "Location": "https://prep.example/v/2/.well-known/prep/manifest.json",
            "Cache-Control": "no-store",
        },
    )
    assert check_site_answer(url, absolute, _live_pointer()).ok
    # A redirect to an old version does not
    old = SiteAnswer(
        302, {"location": "/v/1/.well-known/prep/manifest.json", "cache-control": "no-store"}
    )
    line = check_site_answer(url, old, _live_pointer())
    assert not line.ok and "expected location /v/2/" in line.reason
    # Suspended: the manifest leads to the notice's home page
    home = SiteAnswer(302, {"location": "/", "cache-control": "no-store"})
    assert check_site_answer(url, home, Pointer.suspended("aviso-1", 2)).ok
    # A 503 without the function's headers is not the function's (an origin's, a throttle's)
    bare = SiteAnswer(503, {"server": "CloudFront"})
    assert not check_site_answer(url, bare, None).ok
    assert not check_site_answer(url, None, None, error="timed out").ok


def test_the_web_acl_needs_every_managed_group_the_stack_deploys_enforcing():
    from difusion.preflight.edge_checks import STACK_MANAGED_RULE_GROUPS, check_web_acl
    from stacks.difusor.web_acl import MANAGED_RULE_GROUPS

    assert STACK_MANAGED_RULE_GROUPS == MANAGED_RULE_GROUPS
    arn = recorded("get_distribution.json")["Distribution"]["DistributionConfig"]["WebACLId"]
    assert check_web_acl(recorded("get_web_acl.json"), arn).ok
    counting = recorded("get_web_acl.json")
    counting["WebACL"]["Rules"][0]["OverrideAction"] = {"Count": {}}
    del counting["WebACL"]["Rules"][1]
    line = check_web_acl(counting, arn)
    assert not line.ok
    assert "AWSManagedRulesCommonRuleSet only counts" in line.reason
    assert "no AWSManagedRulesKnownBadInputsRuleSet" in line.reason


def test_the_log_bucket_is_the_distributions_and_needs_acls():
    from difusion.preflight.edge_checks import check_log_bucket_ownership, log_bucket_name

    response = recorded("get_distribution.json")
    bucket = log_bucket_name(response)
    assert bucket == "difusiondifusor-dip-loc-bcs-sitelogs2c8e1f04-1ab2cd3ef4gh"
    assert check_log_bucket_ownership(
        recorded("get_bucket_ownership_controls_object_writer.json"), bucket
    ).ok
    assert check_log_bucket_ownership(None, bucket).ok  # none set: S3 treats it as ObjectWriter
    assert not check_log_bucket_ownership(recorded("get_bucket_ownership_controls.json"), bucket).ok
    response["Distribution"]["DistributionConfig"]["Logging"]["Enabled"] = False
    assert log_bucket_name(response) is None


def test_the_account_must_list_the_sites_distribution():
    from difusion.preflight.edge_checks import check_distributions_listed

    listed = recorded("list_distributions.json")
    assert check_distributions_listed(listed, "E2QWRUHAPOMQZL").ok
    line = check_distributions_listed(listed, "EOTHERDIST")
    assert not line.ok and "not EOTHERDIST" in line.reason

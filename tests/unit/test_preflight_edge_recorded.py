"""Difusor mode proves the edge on AWS: the function run by ``cloudfront:TestFunction`` on
LIVE, its deployed bytes, the site's own answer to a HEAD, the web ACL's rules, the log
bucket's ownership and the account's distributions, over recorded responses
(tests/fixtures/preflight/, shapes from the API reference) and no sockets."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from difusion.preflight import collect
from difusion.preflight.collect import difusor_preflight
from difusion.preflight.edge_checks import EDGE_FUNCTION_FILE
from difusion.preflight.outputs import DifusorOutputs, InstituteRoles
from tests.unit.test_preflight_recorded import (
    EMPTY_EDGE,
    FIXTURES,
    INSTITUTE,
    LIVE_EDGE,
    LOG_BUCKET,
    RecordedSite,
    difusor_account,
    recorded,
    recorded_get_function,
    recorded_test_function,
)

EDGE_LINES = (
    "edge function runs",
    "edge function code",
    "site answers",
    "waf rules",
    "log bucket ownership",
    "cloudfront account",
)


@pytest.fixture
def difusor() -> DifusorOutputs:
    return DifusorOutputs.from_file(FIXTURES / "difusor-outputs.json")


@pytest.fixture
def roles() -> InstituteRoles:
    return InstituteRoles.named(INSTITUTE, "DIP_LOC_BCS")


def edge_lines(difusor, roles, session, site: RecordedSite | None = None) -> dict[str, Any]:
    results = difusor_preflight(difusor, roles, session, fetch=site or RecordedSite())
    return {r.check: r for r in results if r.check in EDGE_LINES}


def refused(operation: str, message: str, code: str = "AccessDenied") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_a_healthy_difusors_edge_passes_every_line(difusor, roles):
    # Given the difusor's account as the stack deploys it, and its site answering
    site = RecordedSite("head_manifest_redirect.json")
    # When preflight runs there
    lines = edge_lines(difusor, roles, difusor_account(), site)
    # Then every edge line is ✓, saying what was proven
    assert set(lines) == set(EDGE_LINES)
    assert all(line.ok for line in lines.values()), [r for r in lines.values() if not r.ok]
    runs = lines["edge function runs"]
    assert runs.subject == "us-east-1DifusionDifusorCdnVersionsRouterE4A1"
    assert "to 3 events on LIVE" in runs.reason and "compute utilization ≤ 16" in runs.reason
    assert "warning" not in runs.reason
    assert lines["edge function code"].reason.startswith("LIVE is viewer_request.js (sha256:")
    # And the HEAD asked the manifest's unversioned URL on the site's registered address
    assert site.asked == ["https://d1a2b3c4d5e6f7.cloudfront.net/.well-known/prep/manifest.json"]
    assert "302 location /v/13316402/" in lines["site answers"].reason
    assert "rate limit 20000 per IP answers 429" in lines["waf rules"].reason
    assert lines["log bucket ownership"].subject == LOG_BUCKET
    assert "ObjectWriter: ACLs enabled" in lines["log bucket ownership"].reason


def test_a_function_that_errors_on_cloudfronts_runtime_fails(difusor, roles):
    # Given a LIVE function that fails at request time (what today's `await` inside a call's
    # arguments does on cloudfront-js-2.0), whatever the event
    failing = {uri: "test_function_error.json" for uri in LIVE_EDGE}
    session = difusor_account(cloudfront={"test_function": recorded_test_function(failing)})
    # When preflight runs
    line = edge_lines(difusor, roles, session)["edge function runs"]
    # Then the line fails with CloudFront's own message
    assert not line.ok
    assert "the function failed: SyntaxError: await in arguments not supported" in line.reason


def test_a_function_answering_other_than_the_pointer_says_fails(difusor, roles):
    # Given a function that sends the live version's page to a notice
    wrong = {**LIVE_EDGE, "/v/13316402/index.html": "test_function_suspended_home.json"}
    session = difusor_account(cloudfront={"test_function": recorded_test_function(wrong)})
    line = edge_lines(difusor, roles, session)["edge function runs"]
    assert not line.ok
    assert "expected /_v/b/index.html?v=13316402" in line.reason


def test_live_bytes_other_than_the_repository_file_fail_naming_both_hashes(difusor, roles):
    # Given a LIVE function edited in the console after the stack deployed it
    edited = EDGE_FUNCTION_FILE.read_bytes() + b"\n// edited in the console\n"
    session = difusor_account(cloudfront={"get_function": recorded_get_function(edited)})
    line = edge_lines(difusor, roles, session)["edge function code"]
    assert not line.ok
    assert line.reason.count("sha256:") == 2 and "is not the repository's" in line.reason


def test_a_head_answered_by_cloudfronts_function_error_fails(difusor, roles):
    # Given CloudFront answering the manifest with its function-error 503
    site = RecordedSite("head_manifest_function_error.json")
    line = edge_lines(difusor, roles, difusor_account(), site)["site answers"]
    assert not line.ok
    assert "x-cache 'FunctionExecutionError from cloudfront'" in line.reason


def test_a_web_acl_whose_rate_rule_does_not_answer_429_fails(difusor, roles):
    # Given the rate-based rule blocking with WAF's default 403
    session = difusor_account(wafv2={"get_web_acl": recorded("get_web_acl_rate_rule_403.json")})
    line = edge_lines(difusor, roles, session)["waf rules"]
    assert not line.ok and "no rate-based rule blocking with 429" in line.reason


def test_a_log_bucket_with_acls_disabled_fails(difusor, roles):
    # Given the log bucket set to BucketOwnerEnforced (ACLs off)
    enforced = recorded("get_bucket_ownership_controls.json")
    session = difusor_account(s3={"get_bucket_ownership_controls": lambda **_: enforced})
    line = edge_lines(difusor, roles, session)["log bucket ownership"]
    assert not line.ok and "cannot deliver its standard logs" in line.reason


def test_before_the_first_delivery_only_the_503_and_a_traversal_are_asked(difusor, roles):
    # Given an empty store, and the function's own 503 on the site
    missing = refused("GetKey", "Key not found", "ResourceNotFoundException")
    session = difusor_account(
        **{"cloudfront-keyvaluestore": {"get_key": missing}},
        cloudfront={"test_function": recorded_test_function(EMPTY_EDGE)},
    )
    site = RecordedSite()
    site.answer = {
        "status": 503,
        "headers": {"retry-after": "5", "cache-control": "no-store", "x-cache": "FunctionGen"},
    }
    lines = edge_lines(difusor, roles, session, site)
    # Then both pass, and the line says what could not be asked
    assert lines["edge function runs"].ok, lines["edge function runs"]
    assert "before the first delivery): only the 503 and a traversal" in (
        lines["edge function runs"].reason
    )
    assert session.calls.count("cloudfront.test_function") == len(EMPTY_EDGE)
    assert lines["site answers"].ok and "no pointer yet" in lines["site answers"].reason


def test_a_read_only_policy_without_test_function_says_what_to_grant(difusor, roles):
    denied = refused("TestFunction", "not authorized to perform: cloudfront:TestFunction")
    session = difusor_account(cloudfront={"test_function": denied})
    line = edge_lines(difusor, roles, session)["edge function runs"]
    assert not line.ok and "grant cloudfront:TestFunction on this function" in line.reason


def test_a_stale_etag_is_reported_as_itself_not_as_a_missing_grant(difusor, roles):
    # Given the function republished between DescribeFunction and TestFunction
    stale = refused("TestFunction", "The ETag does not match", code="PreconditionFailed")
    session = difusor_account(cloudfront={"test_function": stale})
    # When preflight runs
    line = edge_lines(difusor, roles, session)["edge function runs"]
    # Then the line fails with AWS's own reason, and no advice about permissions
    assert not line.ok and "PreconditionFailed" in line.reason
    assert "grant cloudfront:TestFunction" not in line.reason


def test_an_account_not_yet_verified_is_told_to_ask_aws_support(difusor, roles):
    message = "Your account must be verified before you can add new CloudFront resources."
    session = difusor_account(
        cloudfront={"list_distributions": refused("ListDistributions", message)}
    )
    line = edge_lines(difusor, roles, session)["cloudfront account"]
    assert not line.ok and "open a case with AWS Support" in line.reason


def test_the_default_fetcher_is_the_one_the_command_uses(difusor, roles, monkeypatch):
    # Given no fetcher passed (the command line's call), the module's head_request answers
    site = RecordedSite("head_manifest_function_error.json")
    monkeypatch.setattr(collect, "head_request", site)
    results = difusor_preflight(difusor, roles, difusor_account())
    (line,) = [r for r in results if r.check == "site answers"]
    assert not line.ok and len(site.asked) == 1

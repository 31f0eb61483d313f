"""Preflight in the institute's account: its outputs, the permissions table, and each
check over recorded AWS responses (tests/fixtures/preflight/), passing and failing."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from difusion.models import Difusor, DifusorStatus
from difusion.preflight.checks import (
    DELIVERY_ROLE_TRUST,
    CheckResult,
    check_alarm_subscriptions,
    check_credentials,
    check_difusor_report,
    check_permission,
    check_secret_policy,
    check_window_timer,
    check_window_timer_started,
    external_id_tag,
    policy_document,
    select_difusores,
)
from difusion.preflight.deployment_checks import (
    check_concurrency,
    check_layer_awscrt,
    check_origin_notifications,
    check_region_opt_in,
    layer_listing,
    layer_version_arns,
)
from difusion.preflight.outputs import DifusorOutputs, InstituteOutputs, OutputsError
from difusion.preflight.requirements import (
    NEEDS,
    TIMER,
    Deployment,
    Requirement,
    expand,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "preflight"
INSTITUTE = "123456789012"
SITE_OBJECT = "arn:aws:s3:::difusiondifusor-dip-loc-bcs-sitesite9f3c2a71-0hx2vq8mzt1k/index.html"


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def outputs() -> InstituteOutputs:
    return InstituteOutputs.from_file(FIXTURES / "institute-outputs.json")


@pytest.fixture
def uabcs() -> Difusor:
    difusor = DifusorOutputs.from_file(FIXTURES / "difusor-outputs.json")
    return Difusor(
        difusor_id=difusor.difusor_id,
        name="UABCS",
        account_id=difusor.account_id,
        bucket=difusor.bucket,
        distribution_id=difusor.distribution_id,
        role_arn=difusor.role_arn,
        external_id=difusor.external_id,
        public_url="https://d1a2b3c4d5e6f7.cloudfront.net",
    )


def site_writes(role: str, allowed: bool = True) -> Requirement:
    return Requirement(
        function="replicate",
        role_arn=role,
        actions=("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"),
        resource=SITE_OBJECT,
        label="uabcs site objects",
        why="copies",
        allowed=allowed,
    )


# --- outputs --------------------------------------------------------------------------


def test_institute_outputs_are_read_from_cdks_outputs_file(outputs):
    # Given the file `cdk deploy --outputs-file` wrote (When read in the fixture)
    # Then the account, partition and region come from the ARNs it holds
    assert outputs.account == INSTITUTE
    assert outputs.partition == "aws"
    assert outputs.region == "mx-central-1"
    assert outputs.function_roles()["replicate"] == outputs.publisher_role_arn


def test_an_outputs_file_without_the_new_outputs_names_each_one_missing(tmp_path):
    # Given the outputs of a stack deployed before the role and queue outputs existed
    raw = recorded("institute-outputs.json")
    stack = raw["DifusionInstitute-dip-loc-bcs"]
    for name in ("IngestRoleArn", "SignRoleArn", "SignQueueUrl"):
        del stack[name]
    path = tmp_path / "institute-outputs.json"
    path.write_text(json.dumps(raw))
    # When it is read, Then the error names the file and every missing output
    with pytest.raises(OutputsError) as error:
        InstituteOutputs.from_file(path)
    message = str(error.value)
    assert str(path) in message
    assert "IngestRoleArn, SignRoleArn, SignQueueUrl" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not a JSON outputs file"),
        ("[]", "expected a JSON object"),
        ('{"A": {"OriginBucketName": "a"}, "B": {"OriginBucketName": "b"}}', "2 stacks"),
        ('{"DifusionDifusor": {"DifusorId": "x"}}', "no stack with a OriginBucketName"),
    ],
)
def test_an_unusable_outputs_file_is_a_usage_error_that_says_why(tmp_path, content, expected):
    path = tmp_path / "outputs.json"
    path.write_text(content)
    with pytest.raises(OutputsError, match=expected):
        InstituteOutputs.from_file(path)


def test_a_missing_outputs_file_is_named():
    with pytest.raises(OutputsError, match="no such file"):
        InstituteOutputs.from_file(Path("/nonexistent/institute-outputs.json"))


def test_a_difusor_outputs_file_whose_role_is_in_another_account_is_refused(tmp_path):
    raw = recorded("difusor-outputs.json")
    raw["DifusionDifusor-dip-loc-bcs"]["AccountId"] = "999999999999"
    path = tmp_path / "difusor-outputs.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(OutputsError, match="AccountId says 999999999999"):
        DifusorOutputs.from_file(path)


# --- the requirements table -----------------------------------------------------------


def deployment(outputs: InstituteOutputs, difusores: tuple[Difusor, ...], **extra: Any):
    secret = "arn:aws:secretsmanager:mx-central-1:123456789012:secret:SigningKey-Ab1Cd2"
    return Deployment(outputs=outputs, difusores=difusores, secret_arn=secret, **extra)


def test_the_table_asks_about_every_difusors_site_in_its_own_account(outputs, uabcs):
    # Given two registered difusores in two accounts
    other = replace(
        uabcs,
        difusor_id="canal-10",
        account_id="333333333333",
        bucket="prep-canal-10",
        role_arn="arn:aws:iam::333333333333:role/difusion-delivery-dip-loc-bcs",
    )
    # When the table is expanded
    requirements = expand(deployment(outputs, (uabcs, other)))
    # Then the publisher and the monitor are asked about each site's bucket with that
    # difusor's account as aws:ResourceAccount, and about assuming each delivery role
    for difusor in (uabcs, other):
        site = [r for r in requirements if difusor.bucket in r.resource]
        assert {r.function for r in site} == {"replicate", "monitor"}
        assert all(r.context["aws:ResourceAccount"] == difusor.account_id for r in site)
        assert all(r.context["aws:SecureTransport"] == "true" for r in site)
        assumes = [r for r in requirements if r.resource == difusor.role_arn]
        assert {(r.function, r.actions) for r in assumes} == {
            ("replicate", ("sts:AssumeRole",)),
            ("monitor", ("sts:AssumeRole",)),
        }
    replicate_roles = {r.role_arn for r in requirements if r.function == "replicate"}
    assert replicate_roles == {outputs.publisher_role_arn}


def test_the_table_names_concrete_origin_objects_under_each_prefix(outputs, uabcs):
    requirements = expand(deployment(outputs, (uabcs,)))
    retention = [r for r in requirements if r.actions == ("s3:PutObjectRetention",)]
    # The monitor retains the final package, manifest, key and closing record
    assert {r.resource.split("/", 1)[1].split("/")[0] for r in retention} == {
        "incoming",
        "manifests",
        "keys",
        "closing",
    }
    assert all(r.resource.startswith(f"arn:aws:s3:::{outputs.origin_bucket}/") for r in retention)
    listing = next(
        r for r in requirements if r.actions == ("s3:ListBucket",) and "origin" in r.label
    )
    assert listing.context["s3:prefix"] == "manifests/"


def test_only_sign_may_read_the_secret_and_its_key_only_when_customer_managed(outputs, uabcs):
    # Given the deployment without and then with a customer-managed key on the secret
    plain = expand(deployment(outputs, (uabcs,)))
    key = "arn:aws:kms:mx-central-1:123456789012:key/0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e"
    with_key = expand(deployment(outputs, (uabcs,), secret_key_arn=key))
    # Then sign must read it and the other three must not
    secret = [r for r in plain if r.label == "signing secret"]
    assert {(r.function, r.allowed) for r in secret} == {
        ("sign", True),
        ("ingest", False),
        ("replicate", False),
        ("monitor", False),
    }
    # And the decryption is asked about only when there is a key to ask about
    assert not [r for r in plain if r.resource == key]
    (decrypt,) = [r for r in with_key if r.resource == key]
    assert decrypt.function == "sign" and decrypt.actions == ("kms:Decrypt",)
    assert decrypt.context["kms:ViaService"] == "secretsmanager.mx-central-1.amazonaws.com"


def test_the_timer_is_asked_about_with_its_elections_ledger_partition(outputs, uabcs):
    timer_role = "arn:aws:iam::123456789012:role/WindowTimerRole"
    without = expand(deployment(outputs, (uabcs,)))
    found = expand(deployment(outputs, (uabcs,), timer_role_arn=timer_role, election="DIP_LOC_BCS"))
    assert not [r for r in without if r.function == TIMER]
    ledger = next(r for r in found if r.function == TIMER and r.label == "ledger table")
    assert ledger.role_arn == timer_role
    assert ledger.context["dynamodb:LeadingKeys"] == ("ELECTION#DIP_LOC_BCS",)


def test_every_function_needs_something_and_every_need_says_why():
    assert {n.function for n in NEEDS} == {"ingest", "sign", "replicate", "monitor", TIMER}
    assert all(n.why and n.actions for n in NEEDS)
    assert all(":" in action for n in NEEDS for action in n.actions)


# --- the policy simulator -------------------------------------------------------------


def test_allowed_actions_pass_naming_the_policy_that_allows_them():
    # Given the simulator's answer for the publisher's writes into a difusor's site
    results = recorded("simulate_principal_policy_allowed.json")["EvaluationResults"]
    # When checked
    line = check_permission(site_writes(f"arn:aws:iam::{INSTITUTE}:role/p"), results)
    # Then it passes, naming the statement's policy
    assert line.ok and line.check == "permission"
    assert "PublisherRoleDefaultPolicy8E1F6B2A" in line.reason


def test_an_implicit_deny_fails_naming_each_action_refused():
    # Given a publisher whose policy lost DeleteObject and AbortMultipartUpload
    results = recorded("simulate_principal_policy_implicit_deny.json")["EvaluationResults"]
    line = check_permission(site_writes(f"arn:aws:iam::{INSTITUTE}:role/p"), results)
    assert not line.ok
    assert "s3:DeleteObject: implicitDeny (no statement allows it)" in line.reason
    assert "s3:AbortMultipartUpload: implicitDeny" in line.reason
    assert "s3:PutObject" not in line.reason
    assert SITE_OBJECT in line.reason


def test_an_explicit_deny_of_what_sign_needs_fails_naming_the_deny():
    results = recorded("simulate_principal_policy_explicit_deny.json")["EvaluationResults"]
    secret = results[0]["EvalResourceName"]
    needed = Requirement(
        "sign",
        "arn:aws:iam::1:role/s",
        ("secretsmanager:GetSecretValue",),
        secret,
        "signing secret",
        "key",
    )
    line = check_permission(needed, results)
    assert not line.ok
    assert "explicitDeny (denied by OperatorsGuardrail)" in line.reason


def test_what_a_function_must_not_do_passes_when_denied_and_fails_when_allowed():
    # Given the simulator's answers: one denied, one allowed
    denied = recorded("simulate_principal_policy_explicit_deny.json")["EvaluationResults"]
    secret = denied[0]["EvalResourceName"]
    forbidden = Requirement(
        "ingest",
        "arn:aws:iam::1:role/i",
        ("secretsmanager:GetSecretValue",),
        secret,
        "signing secret",
        "only sign",
        allowed=False,
    )
    allowed = [
        {**denied[0], "EvalDecision": "allowed", "MatchedStatements": [{"SourcePolicyId": "Oops"}]}
    ]
    # Then denied passes as forbidden; allowed fails, naming who allows it
    assert check_permission(forbidden, denied).ok
    line = check_permission(forbidden, allowed)
    assert not line.ok and line.check == "forbidden"
    assert line.reason.startswith(
        "secretsmanager:GetSecretValue is allowed (by Oops), but only sign"
    )


def test_a_missing_result_or_missing_context_is_reported():
    results = recorded("simulate_principal_policy_implicit_deny.json")["EvaluationResults"]
    lacking = [{**r, "MissingContextValues": ["aws:ResourceAccount"]} for r in results[1:]]
    line = check_permission(site_writes("arn:aws:iam::1:role/p"), lacking)
    assert not line.ok
    assert "s3:PutObject: the simulator returned no result" in line.reason
    assert "the simulation lacked aws:ResourceAccount" in line.reason


# --- the signing secret ---------------------------------------------------------------


def test_the_secrets_policy_denies_everyone_but_the_sign_function(outputs):
    line = check_secret_policy(
        recorded("get_resource_policy.json"), outputs.function_roles(), INSTITUTE
    )
    assert line.ok, line.reason
    assert "readable by the sign function only" in line.reason
    assert "an administrator" in line.reason and "the account's root" in line.reason


def test_a_secret_without_a_policy_fails(outputs):
    line = check_secret_policy(
        recorded("get_resource_policy_none.json"), outputs.function_roles(), INSTITUTE
    )
    assert not line.ok and "no resource policy" in line.reason


def test_a_policy_that_names_an_old_sign_role_denies_the_sign_function_too(outputs):
    # Given the institute's stack recreated: the sign role is new, the policy names the old
    response = recorded("get_resource_policy.json")
    old = response["ResourcePolicy"].replace("Q7hYc2LmPz4K", "OLD0ROLE0ID0")
    line = check_secret_policy(
        {**response, "ResourcePolicy": old}, outputs.function_roles(), INSTITUTE
    )
    assert not line.ok and "denies the sign function too" in line.reason


def test_a_policy_that_spares_another_function_fails_naming_it(outputs):
    response = recorded("get_resource_policy.json")
    document = json.loads(response["ResourcePolicy"])
    condition = document["Statement"][0]["Condition"]["ArnNotEquals"]
    condition["aws:PrincipalArn"] = [condition["aws:PrincipalArn"], outputs.ingest_role_arn]
    line = check_secret_policy(
        {**response, "ResourcePolicy": json.dumps(document)}, outputs.function_roles(), INSTITUTE
    )
    assert not line.ok and "does not deny the ingest function" in line.reason


# --- the alarm topic and the timer ----------------------------------------------------


def test_one_confirmed_subscription_is_enough_and_pending_ones_are_mentioned(outputs):
    subscriptions = recorded("list_subscriptions_by_topic.json")["Subscriptions"]
    line = check_alarm_subscriptions(outputs.alarm_topic_arn, subscriptions)
    assert line.ok
    assert line.reason == "1 confirmed (email); 1 pending confirmation"


def test_only_pending_subscriptions_fail(outputs):
    subscriptions = recorded("list_subscriptions_by_topic_pending.json")["Subscriptions"]
    line = check_alarm_subscriptions(outputs.alarm_topic_arn, subscriptions)
    assert not line.ok and "none confirmed" in line.reason
    assert not check_alarm_subscriptions(outputs.alarm_topic_arn, []).ok


def test_the_window_timer_is_active_and_names_its_election():
    line = check_window_timer(recorded("describe_state_machine.json"))
    assert line.ok and line.reason == "active, for DIP_LOC_BCS"
    deleting = {**recorded("describe_state_machine.json"), "status": "DELETING"}
    assert not check_window_timer(deleting).ok


def test_a_window_timer_nobody_started_fails_saying_how_to_start_it(outputs):
    running = recorded("list_executions.json")["executions"]
    started = check_window_timer_started(outputs.window_timer_arn, running)
    assert started.ok and "window-DIP_LOC_BCS-20240603T010000Z" in started.reason
    idle = check_window_timer_started(outputs.window_timer_arn, [])
    assert not idle.ok and "difusion window start" in idle.reason


# --- the registry, the credentials, the difusores' reports ----------------------------


def test_the_registry_gives_the_difusores_not_retired(uabcs):
    retired = replace(uabcs, difusor_id="old", status=DifusorStatus.RETIRED)
    line, chosen = select_difusores([uabcs, retired], "registry", None)
    assert line.ok and chosen == (uabcs,)
    line, chosen = select_difusores([uabcs], "registry", "canal-10")
    assert not line.ok and "canal-10 is not registered (registered: uabcs)" in line.reason
    line, chosen = select_difusores([retired], "registry", None)
    assert not line.ok and chosen == ()


def test_credentials_of_another_account_stop_preflight_with_advice():
    identity = {"Account": "999999999999", "Arn": "arn:aws:sts::999999999999:assumed-role/x/y"}
    line = check_credentials(identity, INSTITUTE, "the institute's")
    assert not line.ok and "use a profile in that account" in line.reason
    assert check_credentials({**identity, "Account": INSTITUTE}, INSTITUTE, "x").ok


def trust_line(difusor: Difusor, ok: bool = True, external_id: str | None = None) -> CheckResult:
    tag = external_id_tag(external_id or difusor.external_id)
    return CheckResult(DELIVERY_ROLE_TRUST, difusor.role_arn, ok, f"with the {tag}")


def test_without_the_difusors_report_its_trust_is_not_checked_and_fails(uabcs):
    (line,) = check_difusor_report(uabcs, {})
    assert not line.ok
    assert "--difusor-report" in line.reason and "--difusor-outputs" in line.reason


def test_the_difusors_report_settles_its_trust_when_it_checked_the_registered_id(uabcs):
    # Given the difusor's report with its trust line and one other check that failed
    report = [trust_line(uabcs), CheckResult("distribution waf", "E2", False, "no WAF")]
    # When matched against the registry's entry
    trust, summary = check_difusor_report(uabcs, {"uabcs.json": report})
    # Then the trust passes, and the report's own failures show in its summary
    assert trust.ok and trust.reason.startswith("uabcs.json: ")
    assert not summary.ok and "1 of 2 ✓" in summary.reason and "distribution waf" in summary.reason


def test_a_report_made_with_another_external_id_fails(uabcs):
    report = [trust_line(uabcs, external_id="not-the-registered-one")]
    trust, _ = check_difusor_report(uabcs, {"uabcs.json": report})
    assert not trust.ok and "another external id" in trust.reason


def test_a_report_whose_trust_failed_fails(uabcs):
    trust, summary = check_difusor_report(uabcs, {"r.json": [trust_line(uabcs, ok=False)]})
    assert not trust.ok and not summary.ok


# --- policy documents ------------------------------------------------------------------


def test_policy_documents_are_read_url_encoded_plain_or_already_parsed():
    document = {"Version": "2012-10-17", "Statement": []}
    assert policy_document(quote(json.dumps(document))) == document
    assert policy_document(json.dumps(document, indent=2)) == document
    assert policy_document(document) == document


# --- the deployment as AWS runs it (difusion.preflight.deployment_checks) -----------------


def test_origin_notifications_pass_only_with_an_eventbridge_configuration():
    bucket = "origin"
    on = recorded("get_bucket_notification_configuration.json")
    assert check_origin_notifications(on, bucket).ok
    off = recorded("get_bucket_notification_configuration_off.json")
    line = check_origin_notifications(off, bucket)
    assert not line.ok and "EventBridge notifications are off" in line.reason


def test_the_layer_needs_awscrt_and_its_compiled_extension():
    arn = recorded("get_layer_version_by_arn.json")["LayerVersionArn"]
    full = ["python/awscrt/__init__.py", "python/_awscrt.abi3.so"]
    assert check_layer_awscrt("replicate", {arn: full}).ok
    # Without the extension awscrt cannot import: a pure-Python copy is not enough
    line = check_layer_awscrt("replicate", {arn: full[:1]})
    assert not line.ok and "cannot sign with SigV4A" in line.reason
    assert not check_layer_awscrt("replicate", {}).ok  # no layer at all
    assert "could not read it" in check_layer_awscrt("replicate", {}, "AccessDenied").reason


def test_the_layers_of_a_function_configuration_are_its_layer_version_arns():
    (monitor,) = [
        f
        for f in recorded("list_functions.json")["Functions"]
        if f["Description"].startswith("difusion monitor")
    ]
    assert layer_version_arns(monitor) == [
        recorded("get_layer_version_by_arn.json")["LayerVersionArn"]
    ]
    assert layer_version_arns({"FunctionName": "no-layers"}) == []


@pytest.mark.parametrize(("difusores", "ok"), [(3, True), (4, False)])
def test_concurrency_must_cover_two_delivery_groups_per_difusor_plus_four(difusores, ok):
    # Given a new account's reduced quota of 10 concurrent executions
    settings = recorded("get_account_settings_new_account.json")
    # When 3 difusores (10 needed) or 4 (12 needed) are registered
    line = check_concurrency(settings, difusores, "mx-central-1")
    # Then the line passes or fails, and on failure says what to request
    assert line.ok is ok
    if not ok:
        assert "10 unreserved of 10 concurrent executions, but 12 are needed" in line.reason
        assert "request 'Concurrent executions' in mx-central-1 of at least 12" in line.reason


def test_the_concurrency_need_follows_the_queues_as_deployed():
    # Given the deliveries' groups per difusor and ingest's cap, as the stack deploys them
    from difusion import topology

    # Then the need counts each (a change to either moves it)
    assert topology.QUEUES["ingest"].max_concurrency == 2
    assert topology.concurrency_needed(0) == 2 + 1 + 1
    assert topology.concurrency_needed(5) - topology.concurrency_needed(4) == 2


@pytest.mark.parametrize(
    ("region", "status", "ok", "says"),
    [
        ("us-east-1", "ENABLED_BY_DEFAULT", True, "difusores need do nothing"),
        ("mx-central-1", "ENABLED", True, "no difusor needs to enable mx-central-1"),
        ("mx-central-1", "DISABLING", False, "is DISABLING in this account"),
        ("mx-central-1", "ENABLING", False, "cannot run until it is ENABLED"),
    ],
)
def test_the_regions_opt_in_status_says_what_sts_needs(region, status, ok, says):
    line = check_region_opt_in(region, {"RegionName": region, "RegionOptStatus": status})
    assert line.ok is ok and says in line.reason


def test_an_unreadable_opt_in_status_falls_back_to_the_documented_default_regions():
    assert "enabled by default" in check_region_opt_in("us-west-2", None, "denied").reason
    line = check_region_opt_in("mx-central-1", None, "denied")
    assert "an opt-in Region" in line.reason and "GetRegionOptStatus: denied" in line.reason


def test_a_layer_listing_is_read_from_its_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as layer:
        layer.writestr("python/awscrt/__init__.py", b"")
    assert layer_listing(buffer.getvalue()) == ["python/awscrt/__init__.py"]
    with pytest.raises(ValueError, match="not a zip archive"):
        layer_listing(b"not a zip")

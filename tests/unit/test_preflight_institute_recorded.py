"""Institute mode over recorded responses, with IAM's policy simulator answering from the
synthesized template's identity policies (tests/unit/preflight_simulator.py): the sign
role's kms:Decrypt, and the deployment checks (EventBridge, the layer's awscrt, Lambda
concurrency, the Region's opt-in status)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from difusion.local.iam.templates import without_statement
from difusion.preflight.collect import difusor_preflight, institute_preflight
from difusion.preflight.outputs import DifusorOutputs, InstituteOutputs, InstituteRoles
from stacks.institute.signing_key import DECRYPT_STATEMENT
from tests.unit.preflight_simulator import institute_template
from tests.unit.test_preflight_recorded import (
    FIXTURES,
    INSTITUTE,
    difusor_account,
    institute_account,
    layer_downloads,  # noqa: F401  (autouse: no layer download leaves the test)
    recorded,
    recorded_layer,
    recorded_simulator,
    recorded_site,  # noqa: F401  (autouse: the difusor's HEAD answers from its recording)
)

pytestmark = pytest.mark.xdist_group("preflight_institute_template")
DECRYPT_LINE = "sign → signing secret's KMS key"


@pytest.fixture
def outputs() -> InstituteOutputs:
    return InstituteOutputs.from_file(FIXTURES / "institute-outputs.json")


@pytest.fixture
def reports() -> dict[str, Any]:
    """uabcs's own difusor-mode report, which settles its delivery role's trust."""
    difusor = DifusorOutputs.from_file(FIXTURES / "difusor-outputs.json")
    roles = InstituteRoles.named(INSTITUTE, "DIP_LOC_BCS")
    return {"uabcs.json": difusor_preflight(difusor, roles, difusor_account())}


def lines(results: list[Any]) -> dict[str, Any]:
    return {r.check: r for r in results if r.check not in ("permission", "forbidden")}


# --- the sign role's kms:Decrypt --------------------------------------------------------


def test_the_healthy_template_passes_every_permission_including_the_keys_decrypt(outputs, reports):
    # Given the institute's account as its stack deploys it
    session = institute_account(outputs)
    # When preflight runs
    results = institute_preflight(outputs, session, reports=reports)
    # Then every line passes, the key's line among them, granted by the role's own policy
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    (decrypt,) = [r for r in results if r.subject == DECRYPT_LINE]
    assert decrypt.reason.startswith("kms:Decrypt allowed by PipelineSignRoleDefaultPolicy")


def test_without_the_roles_own_decrypt_statement_preflight_fails_exactly_the_keys_line(
    outputs, reports
):
    # Given the template as it was before: kms:Decrypt only in the key policy
    before = without_statement(institute_template(), DECRYPT_STATEMENT)
    session = institute_account(
        outputs, iam={"simulate_principal_policy": recorded_simulator(before)}
    )
    # When preflight runs
    results = institute_preflight(outputs, session, reports=reports)
    # Then exactly the key's line fails, as IAM's simulator answers for a role caller
    failed = [r for r in results if not r.ok]
    assert [(r.check, r.subject) for r in failed] == [("permission", DECRYPT_LINE)]
    assert failed[0].reason.startswith("kms:Decrypt: implicitDeny (no statement allows it)")


def test_the_simulator_is_asked_with_the_context_the_decrypt_statement_needs(outputs):
    # Given a simulator that keeps the questions
    asked: list[dict[str, Any]] = []
    simulate = recorded_simulator()

    def keep(**request: Any) -> dict[str, Any]:
        asked.append(request)
        return simulate(**request)

    # When preflight runs
    institute_preflight(
        outputs, institute_account(outputs, iam={"simulate_principal_policy": keep})
    )
    # Then the key's question carries Secrets Manager's service and the secret's ARN
    key = recorded("describe_key.json")["KeyMetadata"]["Arn"]
    (question,) = [q for q in asked if q["ResourceArns"] == [key]]
    context = {e["ContextKeyName"]: e["ContextKeyValues"] for e in question["ContextEntries"]}
    assert context["kms:ViaService"] == ["secretsmanager.mx-central-1.amazonaws.com"]
    assert context["kms:EncryptionContext:SecretARN"] == [recorded("describe_secret.json")["ARN"]]
    # And without that context the same role is refused: the condition is evaluated
    bare = simulate(
        PolicySourceArn=outputs.sign_role_arn, ActionNames=["kms:Decrypt"], ResourceArns=[key]
    )
    assert bare["EvaluationResults"][0]["EvalDecision"] == "implicitDeny"


def test_a_grant_only_in_a_resource_policy_is_implicitly_denied_by_the_simulator(outputs):
    # Given the sign role's statement on the secret removed from its own policy (the secret's
    # resource policy never allows: it only denies others)
    simulate = recorded_simulator()
    secret = recorded("describe_secret.json")["ARN"]
    # When the ingest role (no grant anywhere) and sign are asked about the secret
    ingest, sign = (
        simulate(
            PolicySourceArn=role,
            ActionNames=["secretsmanager:GetSecretValue"],
            ResourceArns=[secret],
        )["EvaluationResults"][0]
        for role in (outputs.ingest_role_arn, outputs.sign_role_arn)
    )
    # Then the answers follow the roles' own policies, in the API's shape
    assert ingest["EvalDecision"] == "implicitDeny" and ingest["MatchedStatements"] == []
    assert sign["EvalDecision"] == "allowed"
    assert sign["MatchedStatements"][0]["SourcePolicyType"] == "role"
    assert sign["ResourceSpecificResults"][0]["EvalResourceDecision"] == "allowed"


# --- the deployment as AWS runs it ------------------------------------------------------


def test_the_deployment_lines_pass_as_the_stack_deploys_it(outputs):
    results = lines(institute_preflight(outputs, institute_account(outputs)))
    assert results["origin notifications"].ok
    layer = results["layer awscrt"]
    assert layer.ok and "ships awscrt 0.38.0" in layer.reason
    assert "PipelineReplicate" in layer.subject and outputs.monitor_role_arn not in layer.subject
    concurrency = results["lambda concurrency"]
    assert concurrency.ok
    assert "6 needed (2 delivery groups × 1 difusores + ingest, sign, monitor)" in (
        concurrency.reason
    )
    region = results["sts region"]
    assert region.ok and "an opt-in Region, enabled here" in region.reason
    assert "us-east-1 regional STS endpoint" in region.reason


def test_origin_notifications_off_fail_their_line(outputs):
    off = {
        "get_bucket_notification_configuration": recorded(
            "get_bucket_notification_configuration_off.json"
        )
    }
    line = lines(institute_preflight(outputs, institute_account(outputs, s3=off)))
    assert not line["origin notifications"].ok
    assert "no package dropped in incoming/ reaches ingest" in line["origin notifications"].reason


def test_a_layer_without_awscrt_fails_its_line(outputs, monkeypatch):
    # Given a layer whose zip lacks awscrt
    from difusion.preflight import collect

    asked: list[str] = []

    def download(url: str) -> bytes:
        asked.append(url)
        return recorded_layer("python/difusion/__init__.py", "python/botocore/__init__.py")

    monkeypatch.setattr(collect, "download_layer", download)
    # When preflight runs
    line = lines(institute_preflight(outputs, institute_account(outputs)))["layer awscrt"]
    # Then the line fails saying what breaks, and the zip came from Content.Location
    assert not line.ok and "cannot sign with SigV4A" in line.reason
    assert asked == [recorded("get_layer_version_by_arn.json")["Content"]["Location"]]


def test_a_new_accounts_concurrency_is_reported_and_fails_below_the_need(outputs):
    # Given a new account's reduced quota: 10 concurrent executions, 2 left unreserved
    settings = recorded("get_account_settings_new_account.json")
    settings["AccountLimit"]["UnreservedConcurrentExecutions"] = 2
    session = institute_account(outputs, **{"lambda": {"get_account_settings": settings}})
    # When preflight runs
    line = lines(institute_preflight(outputs, session))["lambda concurrency"]
    # Then it fails, naming what to request where
    assert not line.ok
    assert "2 unreserved of 10 concurrent executions, but 6 are needed" in line.reason
    assert "Service Quotas → AWS Lambda, request 'Concurrent executions' in mx-central-1" in (
        line.reason
    )


def test_a_region_not_enabled_fails_and_an_unreadable_status_falls_back_to_the_docs(outputs):
    disabled = {
        "get_region_opt_status": {"RegionName": "mx-central-1", "RegionOptStatus": "DISABLED"}
    }
    line = lines(institute_preflight(outputs, institute_account(outputs, account=disabled)))
    assert not line["sts region"].ok and "is DISABLED" in line["sts region"].reason
    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetRegionOptStatus"
    )
    line = lines(
        institute_preflight(
            outputs, institute_account(outputs, account={"get_region_opt_status": denied})
        )
    )
    assert line["sts region"].ok
    assert "from the documented default Regions" in line["sts region"].reason
    assert "an opt-in Region" in line["sts region"].reason

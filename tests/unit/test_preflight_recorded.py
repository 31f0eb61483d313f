"""``difusion preflight`` end to end over recorded AWS responses: the collector's calls,
the checks, the report and the exit codes, with a session whose clients answer from
tests/fixtures/preflight/ (no sockets). The emulator tier (tests/integration/
test_preflight.py) runs the same code against moto where moto implements the calls."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from difusion.cli import main
from difusion.local.iam.templates import without_statement
from difusion.preflight import collect, command
from difusion.preflight.collect import difusor_preflight, institute_preflight
from difusion.preflight.edge_checks import EDGE_FUNCTION_FILE, SiteAnswer
from difusion.preflight.outputs import DifusorOutputs, InstituteOutputs, InstituteRoles
from tests.unit.preflight_simulator import institute_template, template_simulator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "preflight"
INSTITUTE, DIFUSOR = "123456789012", "210987654321"
READ_ONLY = ("get_", "list_", "describe_", "simulate_", "scan")
# The institute's template is synthesized once per process (tests/unit/preflight_simulator.py):
# keep its users on one xdist worker.
pytestmark = pytest.mark.xdist_group("preflight_institute_template")


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def recorded_simulator(template: dict[str, Any] | None = None) -> Callable[..., dict[str, Any]]:
    """Answers iam:SimulatePrincipalPolicy as AWS does for a role: from the role's own
    policies in the institute's synthesized template (or ``template``, a changed copy),
    evaluated with the project's evaluator, in the API's response shape
    (tests/unit/preflight_simulator.py). Resource policies are not considered."""
    outputs = InstituteOutputs.from_file(FIXTURES / "institute-outputs.json")
    return template_simulator(template or institute_template(), outputs)


def recorded_layer(*names: str) -> bytes:
    """A layer's zip holding ``names`` (by default what `make layer` ships for SigV4A)."""
    listing = names or (
        "python/awscrt/__init__.py",
        "python/_awscrt.abi3.so",
        "python/awscrt-0.38.0.dist-info/METADATA",
        "python/difusion/__init__.py",
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as layer:
        for name in listing:
            layer.writestr(name, b"")
    return buffer.getvalue()


class RecordedClient:
    def __init__(self, service: str, answers: dict[str, Any], calls: list[str]) -> None:
        self._service, self._answers, self._calls = service, answers, calls

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            self._calls.append(f"{self._service}.{operation}")
            answer = self._answers[operation]
            if isinstance(answer, ClientError):
                raise answer
            return answer(**kwargs) if callable(answer) else copy.deepcopy(answer)

        return call


class RecordedTable:
    def __init__(self, calls: list[str]) -> None:
        self._calls = calls

    def scan(self, **_: Any) -> dict[str, Any]:
        self._calls.append("dynamodb.scan")
        deserialize = TypeDeserializer().deserialize
        items = recorded("scan_registry.json")["Items"]
        return {"Items": [{k: deserialize(v) for k, v in item.items()} for item in items]}


class RecordedSession:
    """A boto3 session whose clients answer from recordings; records every call."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def client(self, service: str, region_name: str | None = None, **_: Any) -> RecordedClient:
        return RecordedClient(service, self.answers.get(service, {}), self.calls)

    def resource(self, service: str, region_name: str | None = None, **_: Any) -> Any:
        calls = self.calls
        return type("Resource", (), {"Table": lambda self, name: RecordedTable(calls)})()


# TestFunction's recorded answers, by the event's URI, for the pointer in get_key.json
# (version 13316402 live in slot b) and for an empty store.
LIVE_EDGE = {
    "/.well-known/prep/manifest.json": "test_function_unversioned.json",
    "/v/13316402/index.html": "test_function_live_version.json",
    "/v/1/../../_v/a/index.html": "test_function_traversal.json",
}
EMPTY_EDGE = {
    "/.well-known/prep/manifest.json": "test_function_empty_pointer.json",
    "/v/1/../../_v/a/index.html": "test_function_traversal.json",
}
LOG_BUCKET = "difusiondifusor-dip-loc-bcs-sitelogs2c8e1f04-1ab2cd3ef4gh"


def recorded_test_function(by_uri: dict[str, str] = LIVE_EDGE) -> Callable[..., Any]:
    """Answers cloudfront:TestFunction from the recording for the event's URI; only on LIVE,
    at the ETag DescribeFunction gave."""
    etag = recorded("describe_function.json")["ETag"]

    def test_function(Name, IfMatch, Stage, EventObject, **_):
        assert (IfMatch, Stage) == (etag, "LIVE")
        return recorded(by_uri[json.loads(EventObject)["request"]["uri"]])

    return test_function


def recorded_get_function(code: bytes | None = None) -> Callable[..., Any]:
    """cloudfront:GetFunction: the recorded headers and ``code`` as the body (boto3's
    StreamingBody), by default the repository's edge/viewer_request.js."""
    body = EDGE_FUNCTION_FILE.read_bytes() if code is None else code
    return lambda **_: {**recorded("get_function.json"), "FunctionCode": io.BytesIO(body)}


def ownership_by_bucket(Bucket: str, **_: Any) -> Any:
    """The site bucket with ACLs off, the log bucket with ACLs on, as the stack sets them."""
    log = Bucket == LOG_BUCKET
    return recorded(f"get_bucket_ownership_controls{'_object_writer' if log else ''}.json")


class RecordedSite:
    """The site's HEAD answered from a recording; keeps the URLs asked."""

    def __init__(self, name: str = "head_manifest_redirect.json") -> None:
        self.answer = recorded(name)
        self.asked: list[str] = []

    def __call__(self, url: str) -> SiteAnswer:
        self.asked.append(url)
        return SiteAnswer(self.answer["status"], self.answer["headers"])


@pytest.fixture(autouse=True)
def layer_downloads(monkeypatch) -> list[str]:
    """No test here downloads a layer: the presigned URL answers a zip built here."""
    asked: list[str] = []

    def download(url: str) -> bytes:
        asked.append(url)
        return recorded_layer()

    monkeypatch.setattr(collect, "download_layer", download)
    return asked


@pytest.fixture(autouse=True)
def recorded_site(monkeypatch) -> RecordedSite:
    """No test here reaches a network: the site's HEAD answers from the recording."""
    site = RecordedSite()
    monkeypatch.setattr(collect, "head_request", site)
    return site


def difusor_account(**overrides: dict[str, Any]) -> RecordedSession:
    answers: dict[str, dict[str, Any]] = {
        "sts": {
            "get_caller_identity": {
                "Account": DIFUSOR,
                "Arn": f"arn:aws:sts::{DIFUSOR}:assumed-role/ReadOnly/ana",
            }
        },
        "cloudfront": {
            "get_distribution": recorded("get_distribution.json"),
            "describe_function": recorded("describe_function.json"),
            "test_function": recorded_test_function(),
            "get_function": recorded_get_function(),
            "list_distributions": recorded("list_distributions.json"),
        },
        "wafv2": {"get_web_acl": recorded("get_web_acl.json")},
        "cloudfront-keyvaluestore": {
            "describe_key_value_store": recorded("describe_key_value_store.json"),
            "get_key": recorded("get_key.json"),
        },
        "s3": {
            "get_public_access_block": recorded("get_public_access_block.json"),
            "get_bucket_ownership_controls": ownership_by_bucket,
            "get_bucket_policy": recorded("get_bucket_policy.json"),
        },
        "iam": {
            "get_role": recorded("get_role_delivery.json"),
            "list_role_policies": recorded("list_role_policies.json"),
            "get_role_policy": recorded("get_role_policy.json"),
            "list_attached_role_policies": recorded("list_attached_role_policies.json"),
        },
    }
    for service, changes in overrides.items():
        answers[service] = {**answers[service], **changes}
    return RecordedSession(answers)


def institute_account(outputs: InstituteOutputs, **overrides: dict[str, Any]) -> RecordedSession:
    """The institute's account as its stack deploys it: the signing secret under its
    customer-managed key, and IAM's simulator answering from the synthesized policies."""
    answers: dict[str, dict[str, Any]] = {
        "sts": {
            "get_caller_identity": {
                "Account": INSTITUTE,
                "Arn": f"arn:aws:sts::{INSTITUTE}:assumed-role/UCSI/luis",
            }
        },
        "stepfunctions": {
            "describe_state_machine": recorded("describe_state_machine.json"),
            "list_executions": recorded("list_executions.json"),
        },
        "secretsmanager": {
            "get_resource_policy": recorded("get_resource_policy.json"),
            "describe_secret": recorded("describe_secret.json"),
        },
        "kms": {"describe_key": recorded("describe_key.json")},
        "sns": {"list_subscriptions_by_topic": recorded("list_subscriptions_by_topic.json")},
        "s3": {
            "get_bucket_notification_configuration": recorded(
                "get_bucket_notification_configuration.json"
            )
        },
        "lambda": {
            "list_functions": recorded("list_functions.json"),
            "get_layer_version_by_arn": recorded("get_layer_version_by_arn.json"),
            "get_account_settings": recorded("get_account_settings.json"),
        },
        "account": {"get_region_opt_status": recorded("get_region_opt_status.json")},
        "iam": {"simulate_principal_policy": recorded_simulator()},
    }
    for service, changes in overrides.items():
        answers[service] = {**answers.get(service, {}), **changes}
    return RecordedSession(answers)


@pytest.fixture
def difusor() -> DifusorOutputs:
    return DifusorOutputs.from_file(FIXTURES / "difusor-outputs.json")


@pytest.fixture
def outputs() -> InstituteOutputs:
    return InstituteOutputs.from_file(FIXTURES / "institute-outputs.json")


@pytest.fixture
def institute_roles() -> InstituteRoles:
    return InstituteRoles.named(INSTITUTE, "DIP_LOC_BCS")


# --- difusor mode ---------------------------------------------------------------------


def test_a_difusor_deployed_by_its_stack_passes_every_check_with_read_only_calls(
    difusor, institute_roles
):
    # Given the difusor's account answering as the stack deploys it
    session = difusor_account()
    # When preflight runs there
    results = difusor_preflight(difusor, institute_roles, session)
    # Then every line is ✓, and every call was a read (TestFunction runs the function on
    # sample events and changes nothing)
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    assert [r.check for r in results] == [
        "credentials",
        "distribution deployed",
        "distribution https",
        "distribution waf",
        "distribution origin",
        "distribution oac",
        "edge function",
        "version pointer",
        "edge function runs",
        "edge function code",
        "site answers",
        "waf rules",
        "log bucket ownership",
        "cloudfront account",
        "bucket public access",
        "bucket ownership",
        "bucket tls only",
        "bucket readers",
        "institute writes",
        "institute writes",
        "bucket writers",
        "delivery role trust",
        "delivery role policy",
    ]
    assert all(
        call.split(".")[1].startswith(READ_ONLY) or call == "cloudfront.test_function"
        for call in session.calls
    )
    assert session.calls.count("cloudfront.test_function") == len(LIVE_EDGE)
    pointer = next(r for r in results if r.check == "version pointer")
    assert pointer.reason.startswith("version 13316402 live (cut 12, slot b)")


def test_the_pointer_is_empty_before_the_first_delivery_and_a_broken_one_fails():
    difusor = DifusorOutputs.from_file(FIXTURES / "difusor-outputs.json")
    roles = InstituteRoles.named(INSTITUTE, "DIP_LOC_BCS")
    missing = ClientError(
        {"Error": {"Code": "ResourceNotFoundException", "Message": "Key not found"}}, "GetKey"
    )
    empty = difusor_account(**{"cloudfront-keyvaluestore": {"get_key": missing}})
    [line] = [r for r in difusor_preflight(difusor, roles, empty) if r.check == "version pointer"]
    assert line.ok and "503 until the institute's first delivery" in line.reason
    broken = {**recorded("get_key.json"), "Value": '{"state": "live"}'}
    session = difusor_account(**{"cloudfront-keyvaluestore": {"get_key": broken}})
    [line] = [r for r in difusor_preflight(difusor, roles, session) if r.check == "version pointer"]
    assert not line.ok and "the site answers 503" in line.reason
    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeKeyValueStore"
    )
    session = difusor_account(**{"cloudfront-keyvaluestore": {"describe_key_value_store": denied}})
    [line] = [r for r in difusor_preflight(difusor, roles, session) if r.check == "version pointer"]
    assert not line.ok and "AccessDeniedException" in line.reason


def test_a_difusor_without_a_public_access_block_or_policy_fails_those_lines(
    difusor, institute_roles
):
    # Given S3 answering that the bucket has neither
    missing = {
        "get_public_access_block": ClientError(
            {"Error": {"Code": "NoSuchPublicAccessBlockConfiguration", "Message": "none"}},
            "GetPublicAccessBlock",
        ),
        "get_bucket_policy": ClientError(
            {"Error": {"Code": "NoSuchBucketPolicy", "Message": "none"}}, "GetBucketPolicy"
        ),
    }
    results = difusor_preflight(difusor, institute_roles, difusor_account(s3=missing))
    failed = {r.check: r.reason for r in results if not r.ok}
    assert failed["bucket public access"] == "no public access block on the bucket"
    assert failed["bucket tls only"] == "the bucket has no policy"
    assert "institute writes" in failed


def test_a_call_refused_becomes_a_failed_line_and_the_rest_still_run(difusor, institute_roles):
    denied = ClientError(
        {
            "Error": {
                "Code": "AccessDenied",
                "Message": "not authorized to cloudfront:GetDistribution",
            }
        },
        "GetDistribution",
    )
    results = difusor_preflight(
        difusor, institute_roles, difusor_account(cloudfront={"get_distribution": denied})
    )
    (line,) = [r for r in results if r.check == "distribution"]
    assert not line.ok
    assert line.reason == (
        "could not read it: GetDistribution: AccessDenied: "
        "not authorized to cloudfront:GetDistribution"
    )
    assert any(r.check == "delivery role trust" and r.ok for r in results)


def test_credentials_of_another_account_stop_difusor_mode_at_the_first_line(
    difusor, institute_roles
):
    wrong = {"get_caller_identity": {"Account": INSTITUTE, "Arn": "arn:aws:iam::1:user/x"}}
    results = difusor_preflight(difusor, institute_roles, difusor_account(sts=wrong))
    assert [(r.check, r.ok) for r in results] == [("credentials", False)]


# --- institute mode -------------------------------------------------------------------


def test_the_institute_passes_every_check_with_the_difusors_report(
    outputs, difusor, institute_roles
):
    # Given the institute's account as deployed, and the difusor's own report
    session = institute_account(outputs)
    report = {"uabcs.json": difusor_preflight(difusor, institute_roles, difusor_account())}
    # When preflight runs in the institute's account
    results = institute_preflight(outputs, session, reports=report)
    # Then every line is ✓
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    checks = {r.check for r in results}
    assert checks == {
        "credentials",
        "registry",
        "window timer",
        "window timer started",
        "signing secret",
        "alarm topic",
        "origin notifications",
        "layer awscrt",
        "lambda concurrency",
        "sts region",
        "permission",
        "forbidden",
        "delivery role trust",
        "difusor preflight",
    }
    # And the simulator was asked about the timer's role, found in its description
    timer = [r for r in results if r.subject.startswith("window timer →")]
    assert {r.subject for r in timer} == {
        "window timer → ledger table",
        "window timer → sign queue",
    }
    assert all(call.split(".")[1].startswith(READ_ONLY) for call in session.calls)


def test_a_permission_the_simulator_refuses_is_one_failed_line(outputs):
    # Given a monitor role that lost s3:PutObjectRetention (its statement removed)
    template = without_statement(institute_template(), "RetainTheFinalPublication")
    session = institute_account(
        outputs, iam={"simulate_principal_policy": recorded_simulator(template)}
    )
    results = institute_preflight(outputs, session)
    failed = [r for r in results if not r.ok and r.check == "permission"]
    # Then one line per retained prefix it no longer reaches fails, naming the decision
    # (closing/ keeps it: CDK's grant_put on closing/* includes s3:PutObjectRetention)
    assert {r.subject for r in failed} == {
        "monitor → origin incoming/*",
        "monitor → origin manifests/*",
        "monitor → origin keys/prep.pub",
    }
    assert all("s3:PutObjectRetention: implicitDeny" in r.reason for r in failed)


def test_moto_like_simulator_failures_are_reported_per_line(outputs):
    broken = ClientError(
        {"Error": {"Code": "InternalFailure", "Message": "not implemented"}},
        "SimulatePrincipalPolicy",
    )
    results = institute_preflight(
        outputs, institute_account(outputs, iam={"simulate_principal_policy": broken})
    )
    permissions = [r for r in results if r.check in ("permission", "forbidden")]
    assert permissions and all(not r.ok for r in permissions)
    assert all("SimulatePrincipalPolicy: InternalFailure" in r.reason for r in permissions)


def test_only_the_difusor_asked_for_is_checked(outputs):
    results = institute_preflight(outputs, institute_account(outputs), difusor_id="canal-10")
    (registry,) = [r for r in results if r.check == "registry"]
    assert not registry.ok
    assert not [r for r in results if "uabcs" in r.subject]


def test_a_customer_managed_key_on_the_secret_is_asked_about(outputs):
    # Given the secret under the stack's customer-managed key, named by its alias
    secret = recorded("get_resource_policy.json")["ARN"]
    session = institute_account(
        outputs,
        secretsmanager={"describe_secret": {"ARN": secret, "KmsKeyId": "alias/prep-signing"}},
    )
    # When preflight runs
    results = institute_preflight(outputs, session)
    # Then the key's ARN (DescribeKey) is asked about, and the sign role's own statement
    # allows it through Secrets Manager
    (decrypt,) = [r for r in results if r.subject == "sign → signing secret's KMS key"]
    assert decrypt.ok and "kms:Decrypt" in decrypt.reason
    assert "PipelineSignRoleDefaultPolicy" in decrypt.reason


# --- the command line -----------------------------------------------------------------


@pytest.fixture
def recorded_aws(monkeypatch):
    def use(session: RecordedSession) -> RecordedSession:
        monkeypatch.setattr(command, "default_session", lambda: session)
        return session

    return use


def test_difusor_mode_prints_json_and_exits_0_when_all_pass(recorded_aws, capsys):
    recorded_aws(difusor_account())
    code = main(
        [
            "preflight",
            "--difusor-outputs",
            str(FIXTURES / "difusor-outputs.json"),
            "--institute-account",
            INSTITUTE,
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert all(set(item) == {"check", "subject", "ok", "reason"} for item in report)
    assert all(item["ok"] is True for item in report)


def test_institute_mode_prints_a_table_and_exits_1_on_any_failure(recorded_aws, outputs, capsys):
    # Given the institute's account, with no report from the difusor
    recorded_aws(institute_account(outputs))
    # When preflight runs
    code = main(["preflight", "--outputs", str(FIXTURES / "institute-outputs.json")])
    out = capsys.readouterr().out
    # Then it fails on the unchecked trust, and says so in the table
    assert code == 1
    assert "✓" in out and "✗" in out
    assert "delivery role trust" in out
    assert "1 ✗" in out


def test_a_difusors_json_report_closes_the_institutes_last_check(
    recorded_aws, outputs, tmp_path, capsys
):
    # Given the difusor's --json report, saved
    recorded_aws(difusor_account())
    args = ["preflight", "--difusor-outputs", str(FIXTURES / "difusor-outputs.json")]
    assert main([*args, "--outputs", str(FIXTURES / "institute-outputs.json"), "--json"]) == 0
    report = tmp_path / "uabcs.json"
    report.write_text(capsys.readouterr().out)
    # When the institute runs with it
    recorded_aws(institute_account(outputs))
    code = main(
        [
            "preflight",
            "--outputs",
            str(FIXTURES / "institute-outputs.json"),
            "--difusor-report",
            str(report),
            "--json",
        ]
    )
    # Then everything passes
    results = json.loads(capsys.readouterr().out)
    assert code == 0, [r for r in results if not r["ok"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "pass --outputs institute-outputs.json (institute mode) or --difusor-outputs"),
        (["--outputs", "/nonexistent.json"], "/nonexistent.json: no such file"),
        (
            ["--difusor-outputs", str(FIXTURES / "difusor-outputs.json")],
            "difusor mode needs the institute's account",
        ),
        (
            ["--outputs", str(FIXTURES / "institute-outputs.json"), "--election", "X"],
            "--institute-account and --election are for difusor mode",
        ),
        (
            [
                "--difusor-outputs",
                str(FIXTURES / "difusor-outputs.json"),
                "--institute-account",
                INSTITUTE,
                "--election",
                "SIMULACRO",
            ],
            "was deployed for DIP_LOC_BCS",
        ),
        (
            [
                "--difusor-outputs",
                str(FIXTURES / "difusor-outputs.json"),
                "--institute-account",
                "12345",
            ],
            "is not a 12-digit account id",
        ),
        (
            [
                "--outputs",
                str(FIXTURES / "institute-outputs.json"),
                "--difusor-report",
                str(FIXTURES / "get_bucket_policy.json"),
            ],
            "not a preflight report",
        ),
    ],
)
def test_usage_errors_exit_2_with_a_message_saying_what_to_fix(recorded_aws, args, message, capsys):
    recorded_aws(RecordedSession({}))
    assert main(["preflight", *args]) == 2
    assert message in capsys.readouterr().err


def test_an_outputs_file_lacking_outputs_exits_2_naming_them(recorded_aws, tmp_path, capsys):
    recorded_aws(RecordedSession({}))
    raw = recorded("institute-outputs.json")
    del raw["DifusionInstitute-dip-loc-bcs"]["AlarmTopicArn"]
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(raw))
    assert main(["preflight", "--outputs", str(path)]) == 2
    assert "lacks the output(s) AlarmTopicArn" in capsys.readouterr().err

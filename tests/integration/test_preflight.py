"""``difusion preflight`` against the emulator: the real boto3 calls on moto, for the calls
moto implements (sts:GetCallerIdentity, dynamodb:Scan, states:DescribeStateMachine and
ListExecutions, secretsmanager:GetResourcePolicy/DescribeSecret,
sns:ListSubscriptionsByTopic, cloudfront:GetDistribution, s3:GetPublicAccessBlock/
GetBucketOwnershipControls/GetBucketPolicy, iam:GetRole/ListRolePolicies/GetRolePolicy/
ListAttachedRolePolicies).

moto 5.2.5 does not implement iam:SimulatePrincipalPolicy (it answers 500): here the
simulator's answers are the recorded AWS response (tests/fixtures/preflight/
simulate_principal_policy_allowed.json) stamped with the action and resource asked, and
the tests assert on the questions preflight asked it. The decisions themselves are
tested on recorded responses in tests/unit/test_preflight_*.py.

The emulator's difusores are provisioned without origin access control, WAF or the TLS-only
statement (moto keeps neither OAC nor a web ACL on a distribution): difusor mode fails
exactly those lines, with their reasons, which is what it must do on such a deployment.

The edge as AWS runs it: moto 5.2.5 has no cloudfront:TestFunction, and its distributions
carry no function association, web ACL or standard logging, so "edge function runs",
"edge function code", "waf rules" and "log bucket ownership" fail here saying so (their
verdicts are tested on recorded responses in tests/unit/test_preflight_edge_recorded.py).
Two edge lines are answered for real: cloudfront:ListDistributions ("cloudfront account"),
and "site answers", whose HEAD goes to the difusor's registered address: the embedded
default's local sites server on 127.0.0.1, which runs edge/viewer_request.js itself.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from difusion.adapters.sessions import new_session
from difusion.cli import main
from difusion.local.emulator import ORIGIN_ACCOUNT, REGION
from difusion.local.provision import account_session
from difusion.models import Difusor
from difusion.preflight import command
from difusion.preflight.checks import CheckResult
from difusion.preflight.collect import difusor_preflight, institute_preflight
from difusion.preflight.outputs import DifusorOutputs, InstituteOutputs, InstituteRoles

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "preflight"
# What the emulator's difusores lack that the difusor stack deploys.
# moto keeps no WAF, OAC or function association on a distribution; the embedded default's
# bucket policy has no TLS condition nor OAC grant (the local sites server reads it).
NOT_ON_THE_EMULATOR = {
    "distribution waf",
    "distribution oac",
    "bucket tls only",
    "bucket readers",
    "edge function",
    "edge function runs",
    "edge function code",
    "waf rules",
    "log bucket ownership",
}


class RecordedSimulator:
    """The emulator's session, but for IAM's policy simulator, which answers every action
    ``allowed`` in the recorded response's shape (and, like the stacks' policies, the
    signing secret to the sign role only). Keeps every question asked."""

    def __init__(self, session: boto3.session.Session, sign_role_arn: str) -> None:
        self._session = session
        self._sign = sign_role_arn
        self._template = json.loads(
            (FIXTURES / "simulate_principal_policy_allowed.json").read_text()
        )["EvaluationResults"][0]
        self.asked: list[dict[str, Any]] = []

    def client(self, service: str, region_name: str | None = None, **options: Any) -> Any:
        client = self._session.client(service, region_name=region_name, **options)
        if service == "iam":
            client.simulate_principal_policy = self._simulate
        return client

    def resource(self, service: str, region_name: str | None = None, **options: Any) -> Any:
        return self._session.resource(service, region_name=region_name, **options)

    def _simulate(self, **request: Any) -> dict[str, Any]:
        self.asked.append(request)
        results = []
        for action in request["ActionNames"]:
            result = copy.deepcopy(self._template)
            secret = action == "secretsmanager:GetSecretValue"
            denied = secret and request["PolicySourceArn"] != self._sign
            result.update(
                EvalActionName=action,
                EvalResourceName=request["ResourceArns"][0],
                EvalDecision="implicitDeny" if denied else "allowed",
            )
            results.append(result)
        return {"EvaluationResults": results, "IsTruncated": False}


# Institute mode's lines that moto 5.2.5 cannot answer: GetBucketNotificationConfiguration
# leaves out the EventBridgeConfiguration it was given, the embedded default runs the
# handlers in-process (no Lambda function, so no layer), and Lambda's GetAccountSettings is
# not implemented. Their verdicts are tested on recorded responses
# (tests/unit/test_preflight_institute_recorded.py). account:GetRegionOptStatus is not
# implemented either: the line falls back to the documented default Regions.
INSTITUTE_NOT_ON_THE_EMULATOR = {"origin notifications", "layer awscrt", "lambda concurrency"}


def institute_outputs(pipeline, *, as_deployed: bool = True) -> dict:
    """The deployment's outputs, plus what the embedded default does not provision (its
    functions run with the emulator's credentials, its alarms are the tests'): the ingest
    and sign roles and the alarm topic. ``as_deployed`` also subscribes to the topic (moto
    confirms at once) and gives the signing secret the resource policy the stack writes."""
    deployment = pipeline.deployment
    session = new_session()
    iam = session.client("iam")
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    suffix = deployment.origin_bucket.rsplit("-", 1)[-1]
    roles = {
        name: iam.create_role(RoleName=f"difusion-{name}-{suffix}", AssumeRolePolicyDocument=trust)[
            "Role"
        ]["Arn"]
        for name in ("ingest", "sign")
    }
    topic = session.client("sns").create_topic(Name=f"difusion-alarms-{suffix}")["TopicArn"]
    outputs = deployment.outputs()
    (stack,) = outputs.values()
    stack.update(
        IngestRoleArn=roles["ingest"],
        SignRoleArn=roles["sign"],
        AlarmTopicArn=topic,
        IngestQueueUrl=deployment.ingest_queue_url,
        SignQueueUrl=deployment.sign_queue_url,
    )
    if as_deployed:
        complete_as_the_stack_deploys(pipeline, stack)
    return outputs


def complete_as_the_stack_deploys(pipeline, stack: dict[str, str]) -> None:
    """A confirmed subscription on the alarm topic; the signing secret's resource policy."""
    session = new_session()
    session.client("sns").subscribe(
        TopicArn=stack["AlarmTopicArn"], Protocol="email", Endpoint="ucsi@example.org"
    )
    session.client("secretsmanager").put_resource_policy(
        SecretId=pipeline.deployment.signing_secret_id,
        ResourcePolicy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "OnlyTheSignFunctionReadsTheKey",
                        "Effect": "Deny",
                        "Principal": {"AWS": "*"},
                        "Action": "secretsmanager:GetSecretValue",
                        "Resource": "*",
                        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": stack["SignRoleArn"]}},
                    }
                ],
            }
        ),
    )


def difusor_outputs(difusor: Difusor, election: str) -> dict:
    """What `cdk deploy --outputs-file` writes for a difusor's stack."""
    return {
        "DifusionDifusor": {
            "DifusorId": difusor.difusor_id,
            "DifusorName": difusor.name,
            "AccountId": difusor.account_id,
            "SiteBucketName": difusor.bucket,
            "DistributionId": difusor.distribution_id,
            "KeyValueStoreArn": difusor.kvs_arn,
            "CacheMode": "versioned",
            "DeliveryRoleArn": difusor.role_arn,
            "ExternalId": difusor.external_id,
            "ElectionId": election,
            "SiteRegion": REGION,
            "PublicUrl": difusor.public_url,
        }
    }


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def run_difusor_mode(pipeline, difusor: Difusor, tmp_path: Path) -> list[CheckResult]:
    outputs = DifusorOutputs.from_file(
        write(tmp_path / f"{difusor.difusor_id}.json", difusor_outputs(difusor, "DIP_LOC_BCS"))
    )
    roles = InstituteRoles(
        ORIGIN_ACCOUNT, pipeline.deployment.publisher_role_arn, pipeline.deployment.monitor_role_arn
    )
    return difusor_preflight(outputs, roles, account_session(difusor.account_id))


# --- institute mode -------------------------------------------------------------------


def test_institute_mode_reads_the_emulators_deployment_and_asks_iam_about_every_site(
    pipeline, tmp_path
):
    # Given the embedded default's deployment as provisioned: nobody subscribed to the
    # alarms, and the signing secret without its resource policy
    raw = institute_outputs(pipeline, as_deployed=False)
    outputs = InstituteOutputs.from_file(write(tmp_path / "outputs.json", raw))
    # When preflight runs in the institute's account
    session = RecordedSimulator(new_session(), outputs.sign_role_arn)
    lines = {r.check: r for r in institute_preflight(outputs, session)}
    # Then both fail, saying why
    assert "no resource policy" in lines["signing secret"].reason
    assert lines["alarm topic"].reason == "no subscription: nobody receives the alarms"
    assert not lines["signing secret"].ok and not lines["alarm topic"].ok

    # Given the subscription confirmed and the secret's policy as the stack writes it
    (stack,) = raw.values()
    complete_as_the_stack_deploys(pipeline, stack)
    # When preflight runs again
    session = RecordedSimulator(new_session(), outputs.sign_role_arn)
    results = institute_preflight(outputs, session)
    # Then every line read from the emulator passes; the difusores' trust waits, and what
    # moto lacks fails saying so (INSTITUTE_NOT_ON_THE_EMULATOR)
    failed = {r.check for r in results if not r.ok}
    assert failed == {"delivery role trust", *INSTITUTE_NOT_ON_THE_EMULATOR}, [
        r for r in results if not r.ok
    ]
    lines = {r.check: r for r in results}
    assert "EventBridge notifications are off" in lines["origin notifications"].reason
    assert "no function runs as its role" in lines["layer awscrt"].reason
    assert lines["lambda concurrency"].reason.startswith("could not read it")
    assert lines["sts region"].ok and "enabled by default" in lines["sts region"].reason
    assert "3 difusores" in lines["registry"].reason
    assert lines["window timer"].reason == "active, for DIP_LOC_BCS"
    assert lines["window timer started"].ok  # provisioning starts it
    assert "readable by the sign function only" in lines["signing secret"].reason
    assert lines["alarm topic"].reason == "1 confirmed (email)"
    # And IAM was asked, per difusor, about its site in its own account and its role
    for difusor in pipeline.deployment.difusores:
        site = [q for q in session.asked if difusor.bucket in q["ResourceArns"][0]]
        assert {q["PolicySourceArn"] for q in site} == {
            outputs.publisher_role_arn,
            outputs.monitor_role_arn,
        }
        for question in site:
            context = {
                e["ContextKeyName"]: e["ContextKeyValues"] for e in question["ContextEntries"]
            }
            assert context["aws:ResourceAccount"] == [difusor.account_id]
        assume = [q for q in session.asked if q["ResourceArns"] == [difusor.role_arn]]
        assert len(assume) == 2 and all(q["ActionNames"] == ["sts:AssumeRole"] for q in assume)
    # And about the timer's role, which only the state machine's description names
    timer = [r for r in results if r.subject.startswith("window timer →")]
    assert len(timer) == 2 and all(r.ok for r in timer)
    # And the delivery roles' trust waits for the difusores' own reports
    trust = [r for r in results if r.check == "delivery role trust"]
    assert len(trust) == 3 and all("--difusor-report" in r.reason for r in trust)


# --- difusor mode ---------------------------------------------------------------------


def test_difusor_mode_passes_what_the_emulator_provisions_and_fails_what_it_lacks(
    pipeline, packages, tmp_path
):
    # Given one of the emulator's difusores, and its own account's credentials
    difusor = pipeline.deployment.difusores[0]
    # When preflight runs there
    results = run_difusor_mode(pipeline, difusor, tmp_path)
    # Then the bucket's privacy, the institute's writes and the delivery role pass
    passed = {r.check for r in results if r.ok}
    assert {
        "credentials",
        "distribution deployed",
        "distribution https",
        "distribution origin",
        "bucket public access",
        "bucket ownership",
        "institute writes",
        "bucket writers",
        "delivery role trust",
        "delivery role policy",
        "version pointer",
    } <= passed
    # And what the emulator does not provision fails, each with its reason
    failed = {r.check: r.reason for r in results if not r.ok}
    assert set(failed) == NOT_ON_THE_EMULATOR
    assert "no WAF web ACL" in failed["distribution waf"]
    assert "has no origin access control" in failed["distribution oac"]
    assert "no Deny when aws:SecureTransport is false" in failed["bucket tls only"]
    assert "no OAC grant" in failed["bucket readers"]
    assert "behavior default has no viewer-request function" in failed["edge function"]
    assert "no viewer-request function to run" in failed["edge function runs"]
    assert "no viewer-request function to run" in failed["edge function code"]
    assert "no WAFv2 web ACL to read" in failed["waf rules"]
    assert "writes no standard logs" in failed["log bucket ownership"]
    lines = {r.check: r for r in results}
    assert "lists" in lines["cloudfront account"].reason
    # The pointer is read from the store's data plane as the edge function reads it
    pointer = lines["version pointer"]
    assert pointer.subject == difusor.kvs_arn
    assert "503 until the institute's first delivery" in pointer.reason
    # and the site (the function itself, on loopback) answers the manifest with its own 503
    site = lines["site answers"]
    assert site.subject == f"{difusor.public_url}/.well-known/prep/manifest.json"
    assert site.subject.startswith("http://127.0.0.1:")
    assert "503" in site.reason and "no pointer yet" in site.reason
    # and once a cut is delivered, it names the live version and cut
    pipeline.process(packages[0])
    lines = {r.check: r for r in run_difusor_mode(pipeline, difusor, tmp_path)}
    [version] = pipeline.versions_made(difusor.difusor_id)
    pointer = lines["version pointer"]
    assert pointer.ok and pointer.reason.startswith(f"version {version} live (cut 1, slot a)")
    # and the site redirects the manifest to that version
    site = lines["site answers"]
    assert site.ok and f"302 location /v/{version}/.well-known/prep/manifest.json" in site.reason


def test_the_difusores_reports_settle_their_trust_in_institute_mode(pipeline, tmp_path):
    # Given each difusor's own report, run in its account
    reports = {
        f"{d.difusor_id}.json": run_difusor_mode(pipeline, d, tmp_path)
        for d in pipeline.deployment.difusores
    }
    outputs = InstituteOutputs.from_file(
        write(tmp_path / "outputs.json", institute_outputs(pipeline))
    )
    # When the institute runs with them
    results = institute_preflight(
        outputs, RecordedSimulator(new_session(), outputs.sign_role_arn), reports=reports
    )
    # Then every delivery role's trust passes, and each report's own ✗ are summarized
    trust = [r for r in results if r.check == "delivery role trust"]
    assert len(trust) == 3 and all(r.ok for r in trust), trust
    summaries = [r for r in results if r.check == "difusor preflight"]
    assert len(summaries) == 3
    assert all(not r.ok and "distribution waf" in r.reason for r in summaries)


# --- the command line -----------------------------------------------------------------


def test_the_command_prints_json_and_exits_1_on_the_emulator(
    pipeline, tmp_path, monkeypatch, capsys
):
    # Given the outputs file and the emulator behind the standard AWS configuration
    raw = institute_outputs(pipeline)
    path = write(tmp_path / "institute-outputs.json", raw)
    (stack,) = raw.values()
    session = RecordedSimulator(new_session(), stack["SignRoleArn"])
    monkeypatch.setattr(command, "default_session", lambda: session)
    # When run for one difusor
    code = main(["preflight", "--outputs", str(path), "--difusor", "uabcs", "--json"])
    # Then the JSON names only that difusor's lines, and exits 1 on its unchecked trust
    # (and on what moto lacks)
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    failed = [item for item in report if not item["ok"]]
    assert {item["check"] for item in failed} == {
        "delivery role trust",
        *INSTITUTE_NOT_ON_THE_EMULATOR,
    }
    (trust,) = [item for item in failed if item["check"] == "delivery role trust"]
    assert trust["subject"].startswith("uabcs (")
    assert not [item for item in report if "diario-peninsular" in item["subject"]]


def test_difusor_mode_on_the_command_line_takes_the_roles_from_the_institutes_outputs(
    pipeline, tmp_path, monkeypatch, capsys
):
    # Given a difusor's outputs, the institute's, and a session in the difusor's account
    difusor = next(d for d in pipeline.deployment.difusores if d.difusor_id == "uabcs")
    mine = write(tmp_path / "difusor-outputs.json", difusor_outputs(difusor, "DIP_LOC_BCS"))
    theirs = write(tmp_path / "institute-outputs.json", institute_outputs(pipeline))
    monkeypatch.setattr(command, "default_session", lambda: account_session(difusor.account_id))
    # When run as the difusor
    code = main(["preflight", "--difusor-outputs", str(mine), "--outputs", str(theirs)])
    out = capsys.readouterr().out
    # Then the table shows its lines and the command fails on what the emulator lacks
    assert code == 1
    assert f"preflight: difusor uabcs, account {difusor.account_id}" in out
    assert f"{len(NOT_ON_THE_EMULATOR)} ✗" in out

"""IAM enforced: every AWS call a function makes runs as the role the stacks give it, and
is allowed or denied by the policies in the synthesized templates (moto checks none).

The institute's stack and one difusor stack per emulator difusor are synthesized once for
the module, for the emulator's accounts (in one xdist group: synthesis takes half a
minute); each test binds them to its fresh deployment (``difusion.local.iam.embedded``).
A call no function makes (this test's own, the provisioning's) is not checked.

Every decision the evaluator makes in a test is recorded (``DecisionRecorder``) and, at
the test's end, put to an independent evaluator in one Node process (``tests/iam_oracle``,
``docs/iam-oracle.md``): the test fails on any verdict the two do not share, except the
disagreements listed below, each with AWS's page, each of which must still occur.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from difusion.adapters.sessions import new_session
from difusion.cli import main
from difusion.local.emulator import ORIGIN_ACCOUNT, REGION
from difusion.local.iam import Decision, Policy, Principal, Request
from difusion.local.iam.embedded import deployment_literals, difusor_binding, institute_binding
from difusion.local.iam.enforce import Check, TemplateDenied, TemplateEnforcer
from difusion.local.iam.record import DecisionRecorder, read_decisions
from difusion.local.iam.templates import (
    PATH_METADATA_CONTEXT,
    StackPolicies,
    load_stack,
    without_statement,
)
from difusion.local.pipeline import LocalPipeline
from difusion.local.provision import LocalDeployment
from difusion.window import PublicationWindow
from tests.iam_oracle import (
    KnownDisagreement,
    OracleRequest,
    ask_oracle,
    disagreement,
    require_oracle,
    verdict_of,
)
from tests.integration.conftest import OPTIONS

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("iam_enforced")]

ROOT = Path(__file__).resolve().parents[2]


def template_external_id(difusor_id: str) -> str:
    """What each difusor's stack is synthesized with; the checks read it as the id the
    registry holds for that difusor (each provisioning draws a new one)."""
    return f"external-id-as-synthesized-for-{difusor_id}"


@dataclass(frozen=True)
class Synthesized:
    institute_stack: str
    institute: dict[str, Any]
    difusores: dict[str, tuple[str, dict[str, Any]]]  # difusor id -> (stack name, template)


def _synth(outdir: Path, kind: str, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """One stack of the CDK app, offline and in-process, with construct paths."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import aws_cdk as cdk

    from app import build_app

    outdir.mkdir(parents=True)
    config_path = outdir / f"{kind}.json"
    config_path.write_text(json.dumps(config))
    context = {
        **json.loads((ROOT / "cdk.json").read_text())["context"],
        **PATH_METADATA_CONTEXT,
        "stacks": kind,
        f"{kind}_config": str(config_path),
    }
    app = cdk.App(outdir=str(outdir / "cdk.out"), context=context)
    institute, difusor = build_app(app)
    stack = institute or difusor
    assert stack is not None
    template = app.synth().get_stack_by_name(stack.stack_name).template
    return stack.stack_name, template


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    from layers.build import build as build_layer

    build_layer(ROOT / "layers" / "build")
    out = tmp_path_factory.mktemp("iam-templates")
    institute_stack, institute = _synth(
        out / "institute",
        "institute",
        {
            "account": ORIGIN_ACCOUNT,
            "region": REGION,
            "election_id": OPTIONS.election,
            "time_zone": OPTIONS.time_zone,
            "official": False,
            "window": {"opening": "2024-06-02T20:00", "closing": "2024-06-03T20:00"},
            "difusores": [{"id": d.difusor_id, "account": d.account_id} for d in OPTIONS.difusores],
        },
    )
    difusores = {
        d.difusor_id: _synth(
            out / d.difusor_id,
            "difusor",
            {
                "id": d.difusor_id,
                "name": d.name,
                "account": d.account_id,
                "institute_account": ORIGIN_ACCOUNT,
                "election_id": OPTIONS.election,
                "external_id": template_external_id(d.difusor_id),
                "portal_origin": "https://prep.example.org",
            },
        )
        for d in OPTIONS.difusores
    }
    return Synthesized(institute_stack, institute, difusores)


# Where the oracle is wrong about AWS or does not model it, with AWS's page: none so far.
# Each entry must apply to some decision of this module's tests (``listed_and_used``).
KNOWN_DISAGREEMENTS: list[KnownDisagreement] = []


@pytest.fixture(scope="module")
def listed_and_used():
    """The names of the listed disagreements some decision needed; at the module's end,
    an entry none needed fails, so the list cannot outlive its reason."""
    used: set[str] = set()
    yield used
    unused = [k.name for k in KNOWN_DISAGREEMENTS if k.name not in used]
    assert not unused, f"listed disagreements no decision needed (remove them): {unused}"


@pytest.fixture
def enforce(synthesized: Synthesized, tmp_path: Path, listed_and_used: set[str]):
    """Installs a :class:`TemplateEnforcer` for a pipeline's deployment (optionally with a
    changed template), recording its decisions; at teardown, any denial the test did not
    take fails it, and so does any decision the independent evaluator does not share."""
    require_oracle()  # before the night, not after it
    installed: list[tuple[TemplateEnforcer, DecisionRecorder]] = []

    def install(
        pipeline: LocalPipeline,
        institute: dict[str, Any] | None = None,
        difusores: dict[str, dict[str, Any]] | None = None,
    ) -> TemplateEnforcer:
        stacks = _policies(synthesized, pipeline.deployment, institute, difusores or {})
        recorder = DecisionRecorder(tmp_path / f"iam-decisions-{len(installed)}.jsonl")
        enforcer = TemplateEnforcer(stacks, recorder=recorder)
        enforcer.install()
        installed.append((enforcer, recorder))
        return enforcer

    yield install
    for enforcer, recorder in installed:
        enforcer.uninstall()
        recorder.close()
    for enforcer, _ in installed:
        enforcer.assert_all_allowed()
    for _, recorder in installed:
        compared = assert_the_oracle_agrees(recorder.path, listed_and_used)
        assert compared == recorder.count > 0


def assert_the_oracle_agrees(decisions: Path, used: set[str]) -> int:
    """Puts every recorded decision to the oracle (each distinct request once, all in one
    Node process) and fails on a verdict they do not share, or on a listed disagreement
    that no longer occurs; adds the listed ones that applied to ``used``. Returns how many
    decisions were compared."""
    recorded = list(read_decisions(decisions))
    verdicts: dict[str, tuple[OracleRequest, set[str]]] = {}
    for entry in recorded:
        request = OracleRequest.of(entry.request, entry.identity_policies, entry.resource_policy)
        key = json.dumps(request.as_json(""), sort_keys=True)
        verdicts.setdefault(key, (request, set()))[1].add(verdict_of(entry.decision))
    answers = ask_oracle(request for request, _ in verdicts.values())
    wrong = []
    for (request, ours), answer in zip(verdicts.values(), answers, strict=True):
        used.update(k.name for k in KNOWN_DISAGREEMENTS if k.applies(request))
        for verdict in sorted(ours):
            problem = disagreement(request, verdict, answer, KNOWN_DISAGREEMENTS)
            if problem:
                wrong.append(
                    f"{request.principal} -> {request.action} on {request.resource}: {problem}"
                )
    print(f"iam-simulate: {len(recorded)} decisions ({len(verdicts)} distinct requests) compared")
    assert not wrong, f"{len(wrong)} verdict(s) the oracle does not share:\n  " + "\n  ".join(wrong)
    return len(recorded)


def _policies(
    synthesized: Synthesized,
    deployment: LocalDeployment,
    institute: dict[str, Any] | None,
    difusores: dict[str, dict[str, Any]],
) -> list[StackPolicies]:
    """The templates (or the changed ones given) bound to ``deployment``."""
    secrets = new_session().client("secretsmanager")
    secret_arn = secrets.describe_secret(SecretId=deployment.signing_secret_id)["ARN"]
    literals = deployment_literals(
        deployment, {d.difusor_id: template_external_id(d.difusor_id) for d in deployment.difusores}
    )
    template = institute or synthesized.institute
    binding = institute_binding(template, deployment, secret_arn, literals)
    stacks = [load_stack(template, binding, synthesized.institute_stack)]
    for difusor in deployment.difusores:
        name, template = synthesized.difusores[difusor.difusor_id]
        template = difusores.get(difusor.difusor_id, template)
        stacks.append(load_stack(template, difusor_binding(template, difusor, literals), name))
    return stacks


def run_monitor_period(pipeline: LocalPipeline) -> dict[str, Any]:
    """The schedule's invocation, as the monitor function (``run_monitor_period`` marks
    its calls as the monitor's)."""
    return pipeline.run_monitor_period()


def bucket_of(check: Check) -> str:
    return check.resource.split(":::", 1)[1].split("/", 1)[0]


@pytest.fixture
def night(_session_pipeline):
    """A pipeline whose window has a one-second grace, so a test can close it early and
    reach the monitor's closing period at once (it provisions anew)."""
    pipeline, state = _session_pipeline
    state["used"] = True
    opening = datetime.now().astimezone() - timedelta(seconds=1)
    window = PublicationWindow(opening, opening + timedelta(days=1), timedelta(seconds=1))
    pipeline.options = replace(OPTIONS, window=window, monitor_sample_size=8)
    pipeline.reset()
    pipeline.dispatcher.handler_errors.clear()
    yield pipeline
    pipeline.options = OPTIONS


def close_the_window(pipeline: LocalPipeline) -> dict[str, Any]:
    """UCSI's early close (RE art. 353.6), then the monitor's first period after the grace."""
    election = ["--table", pipeline.deployment.ledger_table, "--election", OPTIONS.election]
    assert main(["window", "close", *election, "--reason", "100% de actas registradas"]) == 0
    closed_at = pipeline.ledger.window().closed_at
    assert closed_at is not None
    after_grace = closed_at + pipeline.deployment.window.grace - datetime.now(closed_at.tzinfo)
    time.sleep(max(after_grace.total_seconds(), 0) + 0.2)
    return run_monitor_period(pipeline)


def test_a_whole_night_makes_only_calls_the_templates_allow(night, packages, enforce):
    # Given the templates' policies enforced on every call the functions make
    enforcer = enforce(night)
    deployment = night.deployment
    # When cuts are published, a site is down for three periods, and the window closes
    for package in packages[:2]:
        night.process(package)
    down = night.difusor("canal-10-los-cabos")
    night.sites[down.difusor_id].take_down()
    suspension = [run_monitor_period(night) for _ in range(3)][-1]
    closing = close_the_window(night)
    # Then every call was allowed, and the night went as it should
    print(enforcer.report())
    enforcer.assert_all_allowed()
    assert night.dispatcher.handler_errors == []
    assert {d["status"] for d in night.ledger.items("DELIVERY#")} == {"delivered"}
    assert f"{down.difusor_id}: suspend" in suspension["actions"]
    assert closing["finalized"]
    checks = enforcer.checks
    # And the calls include the cross-account server-side copies into every site
    copied_into = {
        bucket_of(c)
        for c in checks
        if c.call == "s3.CopyObject"
        and c.action == "s3:PutObject"
        and c.principal == deployment.publisher_role_arn
    }
    assert copied_into == {d.bucket for d in deployment.difusores}
    # And each delivery role assumed with its difusor's external id, then its site's version
    # switched in its own store (no invalidation any more)
    assumed = {
        (c.resource, c.context["sts:ExternalId"]) for c in checks if c.call == "sts.AssumeRole"
    }
    assert assumed == {(d.role_arn, d.external_id) for d in deployment.difusores}
    switched = {
        (c.principal, c.resource) for c in checks if c.action == "cloudfront-keyvaluestore:PutKey"
    }
    assert switched == {(d.role_arn, d.kvs_arn) for d in deployment.difusores}
    assert not any(c.call == "cloudfront.CreateInvalidation" for c in checks)
    # And the sign function's read of the key, with the decryption under the key's policy
    read_key = {(c.function, c.action) for c in checks if c.call == "secretsmanager.GetSecretValue"}
    assert read_key == {
        ("difusion-sign", "secretsmanager:GetSecretValue"),
        ("difusion-sign", "kms:Decrypt"),
    }
    # And the suspension notice, written into the site by the monitor's role
    monitor = [c for c in checks if c.principal == deployment.monitor_role_arn]
    assert any(c.action == "s3:PutObject" and bucket_of(c) == down.bucket for c in monitor)
    # And at the close the record and the retention of the final publication
    origin = f"arn:aws:s3:::{deployment.origin_bucket}/"
    retained = {c.resource for c in monitor if c.action == "s3:PutObjectRetention"}
    assert {r.removeprefix(origin).split("/")[0] for r in retained} == {
        "incoming",
        "manifests",
        "keys",
        "closing",
    }
    assert origin + closing["finalized"]["record_key"] in {
        c.resource for c in monitor if c.action == "s3:PutObject"
    }


# --- what the templates do not allow ----------------------------------------------------


def test_what_the_templates_do_not_allow_is_denied_naming_role_action_and_resource(
    pipeline, packages, enforce, synthesized
):
    # Given uabcs's site bucket policy without its TheInstitutePublishes statement
    site_policy = without_statement(
        synthesized.difusores["uabcs"][1], "TheInstitutePublishes", "Site/Site/Policy"
    )
    enforcer = enforce(pipeline, difusores={"uabcs": site_policy})
    # And diario-peninsular registered with an external id its delivery role does not know
    unbucketed = pipeline.difusor("uabcs")
    mistrusted = replace(
        pipeline.difusor("diario-peninsular"), external_id="not-the-id-it-was-given"
    )
    pipeline.registry.put(mistrusted)
    # When a cut is published
    pipeline.process(packages[0])
    # Then the publisher's copies into uabcs's bucket are denied by its bucket policy
    denied = enforcer.take_denials()
    publisher = pipeline.deployment.publisher_role_arn
    copies = [c for c in denied if c.call == "s3.CopyObject"]
    assert copies and {(c.principal, c.action, bucket_of(c)) for c in copies} == {
        (publisher, "s3:PutObject", unbucketed.bucket)
    }
    assert copies[0].message.startswith(
        f"role {publisher} (difusion-replicate) may not s3:PutObject on "
        f"arn:aws:s3:::{unbucketed.bucket}/"
    )
    assert "bucket policy Site/Site/Policy does not allow it" in copies[0].message
    # And assuming diario-peninsular's delivery role is denied by its trust policy
    assumptions = [c for c in denied if c.call == "sts.AssumeRole"]
    assert assumptions and {(c.principal, c.resource) for c in assumptions} == {
        (publisher, mistrusted.role_arn)
    }
    assert {c.context["sts:ExternalId"] for c in assumptions} == {mistrusted.external_id}
    assert assumptions[0].message.startswith(
        f"role {publisher} (difusion-replicate) may not sts:AssumeRole on {mistrusted.role_arn}"
    )
    assert "trust policy of Delivery/Role does not allow it" in assumptions[0].message
    assert len(copies) + len(assumptions) == len(denied)
    # And so uabcs gets nothing, diario-peninsular's version is not switched, the third is served
    statuses = {d["difusor_id"]: d["status"] for d in pipeline.ledger.items("DELIVERY#")}
    assert statuses["canal-10-los-cabos"] == "delivered"
    assert statuses["uabcs"] != "delivered" and pipeline.site_objects("uabcs") == {}
    assert statuses["diario-peninsular"] != "delivered"
    switched = {
        c.principal for c in enforcer.checks if c.action == "cloudfront-keyvaluestore:PutKey"
    }
    assert mistrusted.role_arn not in switched


def test_without_retain_the_final_publication_the_close_is_denied_its_retention(
    night, packages, enforce, synthesized
):
    # Given the monitor's RetainTheFinalPublication statement removed, and a cut published
    changed = without_statement(
        synthesized.institute, "RetainTheFinalPublication", "Pipeline/MonitorRole/DefaultPolicy"
    )
    enforcer = enforce(night, institute=changed)
    night.process(packages[0])
    # When the window closes, Then the monitor's period fails on the first retention it puts
    with pytest.raises(TemplateDenied) as raised:
        close_the_window(night)
    # And the denial names the monitor's role, the action and the final package
    [denied] = enforcer.take_denials()
    assert raised.value.check == denied
    monitor = night.deployment.monitor_role_arn
    package = f"arn:aws:s3:::{night.deployment.origin_bucket}/incoming/{packages[0].name}"
    assert (denied.principal, denied.action, denied.resource) == (
        monitor,
        "s3:PutObjectRetention",
        package,
    )
    assert f"role {monitor} (difusion-monitor) may not s3:PutObjectRetention on {package}" in str(
        raised.value
    )
    assert "implicit deny: no identity policy" in denied.reason


def test_a_recorded_decision_the_oracle_does_not_share_fails_the_night(tmp_path: Path) -> None:
    # Given a recording in which the evaluator allowed what no policy allows
    path = tmp_path / "decisions.jsonl"
    recorder = DecisionRecorder(path)
    role = Principal.role(f"arn:aws:iam::{ORIGIN_ACCOUNT}:role/PipelineSignRole", "difusion-sign")
    request = Request(role, "s3:GetObject", "arn:aws:s3:::origin/drafts/a.zip", ORIGIN_ACCOUNT)
    empty = Policy("identity policy Pipeline/SignRole/DefaultPolicy", {"Statement": []})
    recorder.record(request, [empty], None, Decision(True, "allowed by a misread statement"))
    recorder.close()

    # When its decisions are put to the oracle
    # Then the comparison fails, naming the request and both verdicts
    with pytest.raises(AssertionError, match="iam-simulate says ImplicitlyDenied, ours Allowed"):
        assert_the_oracle_agrees(path, set())

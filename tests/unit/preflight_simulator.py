"""IAM's policy simulator, answered from the institute's synthesized template.

``iam:SimulatePrincipalPolicy`` with a role as ``PolicySourceArn`` evaluates that role's own
(identity) policies: a resource policy only when one is passed, and then only with an IAM
user as ``CallerArn`` (IAM API reference, SimulatePrincipalPolicy). Preflight passes none, so
a grant that lives only in a key policy or a bucket policy is ``implicitDeny`` there. This
simulator does the same with the project's evaluator (difusion/local/iam): each answer comes
from the role's policies as the stack synthesizes them, never from a blanket "allowed".

The template is synthesized once per process (``stacks=institute``, ~8 s) from
tests/fixtures/preflight/institute-config.json, the world the recorded responses describe
(account 123456789012 in mx-central-1, the difusor ``uabcs`` in 210987654321), and bound to
the names in institute-outputs.json and the other recordings.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from difusion.local.iam.evaluate import Policy, Principal, Request, evaluate
from difusion.local.iam.operations import queue_arn
from difusion.local.iam.templates import (
    PATH_METADATA_CONTEXT,
    Binding,
    Physical,
    StackPolicies,
    Template,
    load_stack,
    logical_id_at,
    path_of,
    resources_of,
)
from difusion.preflight.outputs import InstituteOutputs

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "preflight"
Simulate = Callable[..., dict[str, Any]]


def _recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@lru_cache(maxsize=1)
def institute_template() -> dict[str, Any]:
    """The institute's stack for the recordings' world, synthesized once per process
    (offline, in-process, with construct paths). Callers get a copy to change."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import aws_cdk as cdk

    from app import build_app
    from layers.build import build as build_layer

    build_layer(ROOT / "layers" / "build")
    with tempfile.TemporaryDirectory(prefix="preflight-synth-") as out:
        context = {
            **json.loads((ROOT / "cdk.json").read_text())["context"],
            **PATH_METADATA_CONTEXT,
            "stacks": "institute",
            "institute_config": str(FIXTURES / "institute-config.json"),
        }
        app = cdk.App(outdir=str(Path(out) / "cdk.out"), context=context)
        institute, _ = build_app(app)
        assert institute is not None
        template: dict[str, Any] = app.synth().get_stack_by_name(institute.stack_name).template
    return template


def institute_binding(template: Template, outputs: InstituteOutputs) -> Binding:
    """The template's resources as the recordings name them: the outputs, the timer's role
    (DescribeStateMachine), the secret (GetResourcePolicy) and its key (DescribeKey). Log
    groups, dead-letter queues and EventBridge rules, which the recordings do not name, stand
    in under their logical ids."""
    at = lambda path: logical_id_at(template, path)  # noqa: E731
    account, region = outputs.account, outputs.region
    urls = {
        "Queues/Ingest": outputs.ingest_queue_url,
        "Queues/Sign": outputs.sign_queue_url,
        "Queues/Deliveries": outputs.delivery_queue_url,
    }
    resources: dict[str, Physical] = {
        at("Origin/Bucket"): Physical.bucket(outputs.origin_bucket),
        at("Tables/Ledger"): Physical.table(outputs.ledger_table, region, account),
        at("Tables/Registry"): Physical.table(outputs.registry_table, region, account),
        at("Tables/Idempotency"): Physical.table(outputs.idempotency_table, region, account),
        at("SigningKey/Secret"): Physical.secret(_recorded("get_resource_policy.json")["ARN"]),
        at("SigningKey/EncryptionKey"): Physical.key(
            _recorded("describe_key.json")["KeyMetadata"]["Arn"]
        ),
        at("Pipeline/IngestRole"): Physical.role(outputs.ingest_role_arn),
        at("Pipeline/SignRole"): Physical.role(outputs.sign_role_arn),
        at("Pipeline/PublisherRole"): Physical.role(outputs.publisher_role_arn),
        at("Pipeline/MonitorRole"): Physical.role(outputs.monitor_role_arn),
        at("WindowTimer/StateMachine/Role"): Physical.role(
            _recorded("describe_state_machine.json")["roleArn"]
        ),
        **{at(path): Physical.queue(url, queue_arn(url, region)) for path, url in urls.items()},
    }
    for lid, resource in resources_of(template).items():
        kind = resource.get("Type")
        if lid in resources:
            continue
        if kind == "AWS::Logs::LogGroup":
            resources[lid] = Physical.log_group(f"/stand-in/{lid}", region, account)
        elif kind == "AWS::SQS::Queue":
            url = f"https://sqs.{region}.amazonaws.com/{account}/{lid}"
            resources[lid] = Physical.queue(url, queue_arn(url, region))
        elif kind == "AWS::Events::Rule":
            resources[lid] = Physical(lid, {"Arn": f"arn:aws:events:{region}:{account}:rule/{lid}"})
    return Binding(account=account, region=region, resources=resources)


# Stands in for "no resource policy": it names only the caller's account, which delegates
# the decision to the caller's identity policies, as the simulator decides for a role.
def _delegating(account: str) -> Policy:
    return Policy(
        "no resource policy (the simulator evaluates the role's own policies)",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": "*",
                    "Resource": "*",
                }
            ],
        },
    )


_ALLOW_ALL = Policy(
    "allow everything (to tell an explicit deny)",
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
)


def _context(entries: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    return {str(e["ContextKeyName"]): [str(v) for v in e["ContextKeyValues"]] for e in entries}


def _resource_account(resource: str, context: Mapping[str, list[str]], caller: str) -> str:
    given = context.get("aws:ResourceAccount")
    if given:
        return given[0]
    parts = resource.split(":")
    if len(parts) >= 6 and parts[4]:
        return parts[4]
    return "" if resource == "*" else caller  # S3 ARNs carry no account: the caller's own


def decide(
    role_arn: str, identity: Sequence[Policy], action: str, resource: str, context: Any
) -> tuple[str, list[Policy]]:
    """The simulator's EvalDecision for one action, and the policies that decided it."""
    principal = Principal.role(role_arn)
    request = Request(
        principal,
        action,
        resource,
        _resource_account(resource, context, principal.account),
        context,
    )
    stand_in = _delegating(principal.account)
    denying = [p for p in identity if not evaluate(request, [p, _ALLOW_ALL], stand_in).allowed]
    if denying:
        return "explicitDeny", denying
    allowing = [p for p in identity if evaluate(request, [p], stand_in).allowed]
    return ("allowed", allowing) if allowing else ("implicitDeny", [])


def policy_names(template: Template) -> dict[str, str]:
    """``load_stack``'s name of each attached policy -> its PolicyName, which the simulator
    reports as ``SourcePolicyId`` for a role's inline policy."""
    return {
        f"identity policy {path_of(r)}": str(r["Properties"]["PolicyName"])
        for r in resources_of(template).values()
        if r.get("Type") == "AWS::IAM::Policy"
    }


def template_simulator(template: Template, outputs: InstituteOutputs) -> Simulate:
    """``iam.simulate_principal_policy`` answering from ``template``'s identity policies,
    in the API's response shape (EvaluationResults of EvaluationResult, MatchedStatements
    of Statement with SourcePolicyId and SourcePolicyType)."""
    stack: StackPolicies = load_stack(template, institute_binding(template, outputs))
    names = policy_names(template)

    def simulate(
        PolicySourceArn: str,
        ActionNames: Sequence[str],
        ResourceArns: Sequence[str] = ("*",),
        ContextEntries: Sequence[Mapping[str, Any]] = (),
        **_: Any,
    ) -> dict[str, Any]:
        role = stack.roles.get(PolicySourceArn)
        if role is None:
            raise ClientError(
                {
                    "Error": {
                        "Code": "NoSuchEntity",
                        "Message": f"The role with name {PolicySourceArn} cannot be found.",
                    }
                },
                "SimulatePrincipalPolicy",
            )
        context = _context(ContextEntries)
        results = []
        for resource in ResourceArns:
            for action in ActionNames:
                decision, policies = decide(
                    PolicySourceArn, role.identity, action, resource, context
                )
                matched = [
                    {"SourcePolicyId": names.get(p.name, p.name), "SourcePolicyType": "role"}
                    for p in policies
                ]
                detail = {
                    "EvalResourceName": resource,
                    "EvalResourceDecision": decision,
                    "MatchedStatements": matched,
                    "MissingContextValues": [],
                    "EvalDecisionDetails": {},
                }
                results.append(
                    {
                        "EvalActionName": action,
                        "EvalResourceName": resource,
                        "EvalDecision": decision,
                        "MatchedStatements": copy.deepcopy(matched),
                        "MissingContextValues": [],
                        "OrganizationsDecisionDetail": {"AllowedByOrganizations": True},
                        "EvalDecisionDetails": {},
                        "ResourceSpecificResults": [detail],
                    }
                )
        return {"EvaluationResults": results, "IsTruncated": False}

    return simulate

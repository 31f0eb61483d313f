"""Reading synthesized templates: resources, statements, actions."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Template


def resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return template.find_resources(kind)


def only(template: Template, kind: str, **properties: Any) -> dict[str, Any]:
    found = template.find_resources(kind, {"Properties": properties} if properties else None)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return next(iter(found.values()))


def statements_of(template: Template, role_logical_id: str) -> list[dict[str, Any]]:
    """Every statement of every policy attached to a role, inline or separate."""
    statements: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        roles = policy["Properties"].get("Roles", [])
        if {"Ref": role_logical_id} in roles:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    role = template.to_json()["Resources"][role_logical_id]
    for inline in role["Properties"].get("Policies", []):
        statements.extend(inline["PolicyDocument"]["Statement"])
    return statements


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        value = statement["Action"]
        actions.update([value] if isinstance(value, str) else value)
    return actions


def logical_id(template: Template, kind: str, **properties: Any) -> str:
    found = template.find_resources(kind, {"Properties": properties} if properties else None)
    assert len(found) == 1, f"expected one {kind} with {properties}, found {len(found)}"
    return next(iter(found))


def bucket_policy(template: Template, bucket_logical_id: str) -> dict[str, Any]:
    """The policy document attached to a bucket."""
    for policy in template.find_resources("AWS::S3::BucketPolicy").values():
        if policy["Properties"]["Bucket"] == {"Ref": bucket_logical_id}:
            document: dict[str, Any] = policy["Properties"]["PolicyDocument"]
            return document
    raise AssertionError(f"no bucket policy on {bucket_logical_id}")

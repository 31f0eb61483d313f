"""Read the policies of a synthesized CloudFormation template into the evaluator's inputs.

A template names its resources by logical id and builds ARNs with intrinsics; the checks
need the physical names the calls use. A :class:`Binding` says what each logical id is
(its ``Ref`` value and attributes), plus the pseudo parameters and any literals the
template spells differently from the deployment (a role name the embedded default gives a
suffix). Only the forms the stacks use are resolved (``Ref``, ``Fn::GetAtt``, ``Fn::Join``,
``Fn::Sub``); anything else, or a reference the binding lacks, raises naming the logical id,
so a policy is never checked half-read.

What is loaded: every bound role (its identity policies, inline and attached, and its trust
policy), every Lambda function whose role is bound, and the resource policies of bound
buckets, KMS keys, secrets and queues.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from difusion.local.iam.evaluate import Policy, PolicyError

Template = Mapping[str, Any]

# Synthesize with this context to get "aws:cdk:path" metadata on every resource (the CDK CLI
# sets it; an in-process synthesis does not).
PATH_METADATA_CONTEXT = {"aws:cdk:enable-path-metadata": True}


class UnresolvedReference(LookupError):
    """A template references something the binding does not name."""


@dataclass(frozen=True)
class Physical:
    """What one template resource is where the code runs: what ``Ref`` returns and the
    attributes ``Fn::GetAtt`` reads."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def bucket(cls, name: str) -> Physical:
        return cls(name, {"Arn": f"arn:aws:s3:::{name}"})

    @classmethod
    def table(cls, name: str, region: str, account: str) -> Physical:
        return cls(name, {"Arn": f"arn:aws:dynamodb:{region}:{account}:table/{name}"})

    @classmethod
    def queue(cls, url: str, arn: str) -> Physical:
        return cls(url, {"Arn": arn, "QueueName": arn.rsplit(":", 1)[-1], "QueueUrl": url})

    @classmethod
    def role(cls, arn: str) -> Physical:
        return cls(arn.rsplit("/", 1)[-1], {"Arn": arn})

    @classmethod
    def key(cls, arn: str) -> Physical:
        return cls(arn.rsplit("/", 1)[-1], {"Arn": arn, "KeyId": arn.rsplit("/", 1)[-1]})

    @classmethod
    def secret(cls, arn: str) -> Physical:
        return cls(arn, {"Id": arn})  # a secret's Ref is its ARN

    @classmethod
    def log_group(cls, name: str, region: str, account: str) -> Physical:
        return cls(name, {"Arn": f"arn:aws:logs:{region}:{account}:log-group:{name}:*"})


@dataclass(frozen=True)
class Binding:
    """Where a template is deployed and what its resources are there."""

    account: str
    region: str
    resources: Mapping[str, Physical]  # logical id -> the physical resource
    # Strings the template holds literally (resolved values, compared whole) and what they
    # are on the deployment: e.g. a configured role ARN and the suffixed one provisioned.
    literals: Mapping[str, str] = field(default_factory=dict)
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"


def resolve(value: Any, binding: Binding) -> Any:
    """``value`` with every intrinsic resolved and every literal translated."""
    return _translate(_resolve(value, binding), binding.literals)


def _translate(value: Any, literals: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return literals.get(value, value)
    if isinstance(value, list):
        return [_translate(v, literals) for v in value]
    if isinstance(value, Mapping):
        return {k: _translate(v, literals) for k, v in value.items()}
    return value


def _pseudo(name: str, binding: Binding) -> str | None:
    return {
        "AWS::Partition": binding.partition,
        "AWS::AccountId": binding.account,
        "AWS::Region": binding.region,
        "AWS::URLSuffix": binding.url_suffix,
    }.get(name)


def _ref(name: str, binding: Binding) -> str:
    pseudo = _pseudo(name, binding)
    if pseudo is not None:
        return pseudo
    if name not in binding.resources:
        raise UnresolvedReference(f"Ref {name}: the binding has no resource {name}")
    return binding.resources[name].ref


def _get_att(logical_id: str, attribute: str, binding: Binding) -> str:
    physical = binding.resources.get(logical_id)
    if physical is None:
        raise UnresolvedReference(
            f"Fn::GetAtt {logical_id}.{attribute}: the binding has no resource {logical_id}"
        )
    if attribute not in physical.attributes:
        raise UnresolvedReference(
            f"Fn::GetAtt {logical_id}.{attribute}: the binding gives {logical_id} no "
            f"{attribute} (it has {', '.join(sorted(physical.attributes)) or 'none'})"
        )
    return physical.attributes[attribute]


def _as_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise PolicyError(f"{where} resolves to {value!r}, not a string")
    return value


def _sub(argument: Any, binding: Binding) -> str:
    if isinstance(argument, list):
        text, variables = argument[0], {k: _resolve(v, binding) for k, v in argument[1].items()}
    else:
        text, variables = argument, {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"  # ${!Literal} is the literal ${Literal}
        if name in variables:
            return _as_text(variables[name], f"Fn::Sub ${{{name}}}")
        if "." in name and _pseudo(name, binding) is None:
            logical_id, attribute = name.split(".", 1)
            return _get_att(logical_id, attribute, binding)
        return _ref(name, binding)

    return re.sub(r"\$\{([^}]+)\}", replace, _as_text(text, "Fn::Sub"))


def _resolve(value: Any, binding: Binding) -> Any:
    if isinstance(value, list):
        return [_resolve(v, binding) for v in value]
    if not isinstance(value, Mapping):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            return _ref(argument, binding)
        if key == "Fn::GetAtt":
            logical_id, attribute = (
                argument.split(".", 1) if isinstance(argument, str) else argument
            )
            return _get_att(logical_id, attribute, binding)
        if key == "Fn::Join":
            separator, parts = argument
            resolved = [_as_text(_resolve(p, binding), "Fn::Join part") for p in parts]
            return separator.join(resolved)
        if key == "Fn::Sub":
            return _sub(argument, binding)
        if key.startswith("Fn::") or key == "Condition":
            raise PolicyError(f"intrinsic {key} is not supported: {value!r}")
    return {k: _resolve(v, binding) for k, v in value.items()}


# --- reading the template --------------------------------------------------------------


def resources_of(template: Template) -> Mapping[str, Mapping[str, Any]]:
    resources: Mapping[str, Mapping[str, Any]] = template.get("Resources", {})
    return resources


def path_of(resource: Mapping[str, Any]) -> str | None:
    """The construct path, without the stack's name and the trailing ``/Resource``
    (``Pipeline/PublisherRole/DefaultPolicy``), if the template carries path metadata."""
    path = resource.get("Metadata", {}).get("aws:cdk:path")
    if not isinstance(path, str):
        return None
    return path.split("/", 1)[-1].removesuffix("/Resource")


def logical_id_at(template: Template, path: str) -> str:
    """The logical id of the resource at a construct path (as :func:`path_of` gives it)."""
    found = [lid for lid, r in resources_of(template).items() if path_of(r) == path]
    if len(found) != 1:
        have_paths = any(path_of(r) for r in resources_of(template).values())
        hint = "" if have_paths else " (synthesize with PATH_METADATA_CONTEXT)"
        raise LookupError(f"expected one resource at {path}, found {len(found)}{hint}")
    return found[0]


def _name(template: Template, logical_id: str) -> str:
    return path_of(resources_of(template)[logical_id]) or logical_id


def _role_of_function(function: Mapping[str, Any], logical_id: str) -> str:
    role = function.get("Properties", {}).get("Role")
    if isinstance(role, Mapping) and "Fn::GetAtt" in role:
        target = role["Fn::GetAtt"]
        role_id, attribute = target.split(".", 1) if isinstance(target, str) else target
        if attribute == "Arn":
            return str(role_id)
    raise PolicyError(f"function {logical_id}: Role is not a GetAtt of a role's Arn: {role!r}")


def function_roles(template: Template) -> dict[str, str]:
    """Each Lambda function's logical id and its role's logical id."""
    return {
        lid: _role_of_function(r, lid)
        for lid, r in resources_of(template).items()
        if r.get("Type") == "AWS::Lambda::Function"
    }


def _refs(values: Any) -> list[str]:
    return [v["Ref"] for v in values or [] if isinstance(v, Mapping) and "Ref" in v]


# --- what the checks read --------------------------------------------------------------


@dataclass(frozen=True)
class RolePolicies:
    arn: str
    name: str  # the construct path, for messages
    identity: tuple[Policy, ...]
    trust: Policy


@dataclass(frozen=True)
class SecretPolicies:
    arn: str
    policy: Policy | None
    key_arn: str | None  # the customer-managed key that encrypts it, if any


@dataclass(frozen=True)
class StackPolicies:
    """One stack's policies, resolved to the deployment's names."""

    stack: str
    account: str
    region: str
    functions: Mapping[str, str]  # bound function name -> its role's ARN
    roles: Mapping[str, RolePolicies]  # role ARN ->
    buckets: Mapping[str, Policy | None]  # bucket name -> its bucket policy (owned here)
    keys: Mapping[str, Policy]  # key ARN -> key policy
    secrets: Mapping[str, SecretPolicies]  # secret ARN ->
    queues: Mapping[str, Policy]  # queue ARN -> queue policy


# A customer-managed key on a resource would make each call on it need a KMS permission
# too; only the secret's is modelled, so any other raises rather than pass unchecked.
_CMK_SETTINGS = {
    "AWS::S3::Bucket": lambda p: [
        rule.get("ServerSideEncryptionByDefault", {}).get("KMSMasterKeyID")
        for rule in p.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
    ],
    "AWS::SQS::Queue": lambda p: [p.get("KmsMasterKeyId")],
    "AWS::DynamoDB::Table": lambda p: [p.get("SSESpecification", {}).get("KMSMasterKeyId")],
}


def _check_no_customer_key(logical_id: str, resource: Mapping[str, Any]) -> None:
    reader = _CMK_SETTINGS.get(str(resource.get("Type")))
    if reader is None:
        return
    keys = [k for k in reader(resource.get("Properties", {})) if k and k != "alias/aws/sqs"]
    if keys:
        raise PolicyError(
            f"{logical_id} is encrypted with a customer-managed key ({keys[0]!r}): the checks "
            "model KMS only for the signing secret; extend difusion/local/iam/enforce.py"
        )


def load_stack(template: Template, binding: Binding, stack: str = "") -> StackPolicies:
    """The policies of ``template`` for the resources ``binding`` names."""
    resources = resources_of(template)
    bound = {lid: r for lid, r in resources.items() if lid in binding.resources}
    for lid, resource in bound.items():
        _check_no_customer_key(lid, resource)

    def of_type(kind: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        return ((lid, r) for lid, r in resources.items() if r.get("Type") == kind)

    def policy(name: str, document: Any) -> Policy:
        return Policy(name, resolve(document, binding))

    roles: dict[str, RolePolicies] = {}
    for lid, role in of_type("AWS::IAM::Role"):
        if lid not in binding.resources:
            continue
        properties = role.get("Properties", {})
        if properties.get("ManagedPolicyArns"):
            raise PolicyError(f"role {lid} has managed policies, which are not modelled")
        arn = _get_att(lid, "Arn", binding)
        where = _name(template, lid)
        identity = [
            policy(f"inline policy {p['PolicyName']} of {where}", p["PolicyDocument"])
            for p in properties.get("Policies", [])
        ]
        for policy_id, attached in of_type("AWS::IAM::Policy"):
            if lid in _refs(attached["Properties"].get("Roles")):
                identity.append(
                    policy(
                        f"identity policy {_name(template, policy_id)}",
                        attached["Properties"]["PolicyDocument"],
                    )
                )
        trust = policy(f"trust policy of {where}", properties["AssumeRolePolicyDocument"])
        roles[arn] = RolePolicies(arn, where, tuple(identity), trust)

    functions: dict[str, str] = {}
    for lid, role_id in function_roles(template).items():
        if lid in binding.resources:
            functions[binding.resources[lid].ref] = _get_att(role_id, "Arn", binding)

    buckets: dict[str, Policy | None] = {
        binding.resources[lid].ref: None for lid, _ in of_type("AWS::S3::Bucket") if lid in bound
    }
    for lid, bucket_policy in of_type("AWS::S3::BucketPolicy"):
        properties = bucket_policy["Properties"]
        target = properties["Bucket"]
        if isinstance(target, Mapping) and target.get("Ref") in bound:
            name = binding.resources[target["Ref"]].ref
            buckets[name] = policy(
                f"bucket policy {_name(template, lid)}", properties["PolicyDocument"]
            )

    keys = {
        _get_att(lid, "Arn", binding): policy(
            f"key policy of {_name(template, lid)}", key["Properties"]["KeyPolicy"]
        )
        for lid, key in of_type("AWS::KMS::Key")
        if lid in bound
    }

    secret_policies: dict[str, Policy] = {}
    for lid, secret_policy in of_type("AWS::SecretsManager::ResourcePolicy"):
        properties = secret_policy["Properties"]
        target = properties["SecretId"]
        if isinstance(target, Mapping) and target.get("Ref") in bound:
            secret_policies[binding.resources[target["Ref"]].ref] = policy(
                f"resource policy {_name(template, lid)}", properties["ResourcePolicy"]
            )
    secrets = {}
    for lid, secret in of_type("AWS::SecretsManager::Secret"):
        if lid not in bound:
            continue
        arn = binding.resources[lid].ref
        key = secret.get("Properties", {}).get("KmsKeyId")
        secrets[arn] = SecretPolicies(
            arn, secret_policies.get(arn), resolve(key, binding) if key else None
        )

    queues: dict[str, Policy] = {}
    for lid, queue_policy in of_type("AWS::SQS::QueuePolicy"):
        properties = queue_policy["Properties"]
        for queue_id in _refs(properties.get("Queues")):
            if queue_id in bound:
                queues[_get_att(queue_id, "Arn", binding)] = policy(
                    f"queue policy {_name(template, lid)}", properties["PolicyDocument"]
                )

    return StackPolicies(
        stack=stack,
        account=binding.account,
        region=binding.region,
        functions=functions,
        roles=roles,
        buckets=buckets,
        keys=keys,
        secrets=secrets,
        queues=queues,
    )


def without_statement(template: Template, sid: str, path: str | None = None) -> dict[str, Any]:
    """A copy of ``template`` without the statements whose Sid is ``sid`` (only in the
    resource at construct ``path``, if given): for proving a check fails when it should."""
    changed = copy.deepcopy(dict(template))
    removed = 0
    for resource in resources_of(changed).values():
        if path is not None and path_of(resource) != path:
            continue
        for document in _documents(resource.get("Properties", {})):
            statements = document.get("Statement", [])
            kept = [s for s in statements if s.get("Sid") != sid]
            removed += len(statements) - len(kept)
            document["Statement"] = kept
    if not removed:
        raise LookupError(f"no statement {sid!r}" + (f" in {path}" if path else ""))
    return changed


def _documents(properties: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("PolicyDocument", "KeyPolicy", "ResourcePolicy", "AssumeRolePolicyDocument"):
        if isinstance(properties.get(key), dict):
            yield properties[key]
    for inline in properties.get("Policies", []):
        yield inline["PolicyDocument"]

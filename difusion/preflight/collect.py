"""The read-only calls preflight makes, and the checks it hands their answers to.

Clients come from the session given (boto3's defaults: profile, region, credentials, and
``AWS_ENDPOINT_URL`` on the emulator). Every call is a read: ``sts:GetCallerIdentity``,
``iam:SimulatePrincipalPolicy``, ``dynamodb:Scan`` of the registry, Describe/Get/List calls.
A call that fails becomes a ✗ line saying so, and the rest still run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from difusion.adapters.pointer_store import KeyValueStorePointer
from difusion.adapters.registry import DifusorRegistry
from difusion.errors import DeliveryError
from difusion.preflight.checks import (
    CheckResult,
    check_alarm_subscriptions,
    check_credentials,
    check_difusor_report,
    check_permission,
    check_secret_policy,
    check_window_timer,
    check_window_timer_started,
    select_difusores,
    timer_election,
    unreadable,
)
from difusion.preflight.difusor_checks import (
    check_bucket_policy,
    check_delivery_permissions,
    check_delivery_trust,
    check_distribution,
    check_edge_function,
    check_ownership,
    check_public_access_block,
    check_version_pointer,
    function_name,
    viewer_request_functions,
)
from difusion.preflight.outputs import DifusorOutputs, InstituteOutputs, InstituteRoles
from difusion.preflight.requirements import Deployment, Requirement, expand
from difusion.versions import PointerError

T = TypeVar("T")

# Answers that mean "there is none", which the checks judge, rather than a failed call.
_ABSENT = {
    "NoSuchPublicAccessBlockConfiguration",
    "NoSuchBucketPolicy",
    "OwnershipControlsNotFoundError",
}
SIMULATION_WORKERS = 8
# IAM's policy simulator is rate-limited per account: back off and retry rather than fail.
_CLIENT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})


class _Failed(Exception):
    """A call that failed; the message says which and why."""


def _ask(call: Callable[..., T], **kwargs: Any) -> T | None:
    """``call(**kwargs)``'s answer; None when AWS answers that there is none; _Failed
    otherwise."""
    try:
        return call(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _ABSENT:
            return None
        raise _Failed(f"{exc.operation_name}: {code}: {error.get('Message', '')}") from exc
    except BotoCoreError as exc:
        raise _Failed(str(exc)) from exc


def _required(call: Callable[..., T], **kwargs: Any) -> T:
    answer = _ask(call, **kwargs)
    if answer is None:
        raise _Failed("no answer")
    return answer


# --- institute mode -------------------------------------------------------------------


def institute_preflight(
    outputs: InstituteOutputs,
    session: Any,
    *,
    difusor_id: str | None = None,
    reports: Mapping[str, Sequence[CheckResult]] | None = None,
) -> list[CheckResult]:
    """Every check in the institute's account; ``difusor_id`` limits the difusores to one,
    ``reports`` holds difusor mode's reports (by file name) for the delivery roles."""

    def client(service: str, region: str | None = outputs.region) -> Any:
        return session.client(service, region_name=region, config=_CLIENT_CONFIG)

    try:
        identity = _required(client("sts").get_caller_identity)
    except _Failed as exc:
        return [unreadable("credentials", f"account {outputs.account}", str(exc))]
    credentials = check_credentials(identity, outputs.account, "the institute's")
    if not credentials.ok:
        return [credentials]
    results = [credentials]

    registry = DifusorRegistry(
        session.resource("dynamodb", region_name=outputs.region, config=_CLIENT_CONFIG),
        outputs.registry_table,
    )
    try:
        listed, difusores = select_difusores(
            _required(registry.all), outputs.registry_table, difusor_id
        )
        results.append(listed)
    except _Failed as exc:
        results.append(unreadable("registry", outputs.registry_table, str(exc)))
        difusores = ()

    timer_role, election = "", ""
    try:
        timer = _required(
            client("stepfunctions").describe_state_machine,
            stateMachineArn=outputs.window_timer_arn,
        )
        results.append(check_window_timer(timer))
        timer_role, election = str(timer.get("roleArn", "")), timer_election(timer)
        running = _required(
            client("stepfunctions").list_executions,
            stateMachineArn=outputs.window_timer_arn,
            statusFilter="RUNNING",
        )
        results.append(
            check_window_timer_started(outputs.window_timer_arn, running.get("executions", []))
        )
    except _Failed as exc:
        results.append(unreadable("window timer", outputs.window_timer_arn, str(exc)))

    secret_arn, key_arn = outputs.signing_secret_name, ""
    secrets = client("secretsmanager")
    try:
        policy = _required(secrets.get_resource_policy, SecretId=outputs.signing_secret_name)
        secret_arn = str(policy.get("ARN") or secret_arn)
        results.append(check_secret_policy(policy, outputs.function_roles(), outputs.account))
        described = _required(secrets.describe_secret, SecretId=secret_arn)
        if described.get("KmsKeyId"):
            key = _required(client("kms").describe_key, KeyId=str(described["KmsKeyId"]))
            key_arn = str(key["KeyMetadata"]["Arn"])
    except _Failed as exc:
        results.append(unreadable("signing secret", outputs.signing_secret_name, str(exc)))

    topic_region = outputs.alarm_topic_arn.split(":")[3]
    try:
        results.append(
            check_alarm_subscriptions(
                outputs.alarm_topic_arn,
                _subscriptions(client("sns", topic_region), outputs.alarm_topic_arn),
            )
        )
    except _Failed as exc:
        results.append(unreadable("alarm topic", outputs.alarm_topic_arn, str(exc)))

    deployment = Deployment(
        outputs=outputs,
        difusores=difusores,
        secret_arn=secret_arn,
        secret_key_arn=key_arn,
        timer_role_arn=timer_role,
        election=election,
    )
    results.extend(simulate_all(client("iam", None), expand(deployment)))
    for difusor in difusores:
        results.extend(check_difusor_report(difusor, reports or {}))
    return results


def _subscriptions(sns: Any, topic_arn: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        paging = {"NextToken": token} if token else {}
        page = _required(sns.list_subscriptions_by_topic, TopicArn=topic_arn, **paging)
        found.extend(page.get("Subscriptions", []))
        token = page.get("NextToken")
        if not token:
            return found


def simulate_all(iam: Any, requirements: Sequence[Requirement]) -> list[CheckResult]:
    """Ask IAM's policy simulator about every requirement, a few at a time, in order."""

    def one(requirement: Requirement) -> CheckResult:
        check = "permission" if requirement.allowed else "forbidden"
        try:
            return check_permission(requirement, simulate(iam, requirement))
        except _Failed as exc:
            return unreadable(check, requirement.subject, str(exc))

    with ThreadPoolExecutor(max_workers=SIMULATION_WORKERS) as pool:
        return list(pool.map(one, requirements))


def simulate(iam: Any, requirement: Requirement) -> list[dict[str, Any]]:
    """iam:SimulatePrincipalPolicy's EvaluationResults for one requirement, every page."""
    request: dict[str, Any] = {
        "PolicySourceArn": requirement.role_arn,
        "ActionNames": list(requirement.actions),
        "ResourceArns": [requirement.resource],
        "ContextEntries": context_entries(requirement.context),
    }
    found: list[dict[str, Any]] = []
    while True:
        page = _required(iam.simulate_principal_policy, **request)
        found.extend(page.get("EvaluationResults", []))
        if not page.get("IsTruncated"):
            return found
        request["Marker"] = page["Marker"]


def context_entries(context: Mapping[str, str | tuple[str, ...]]) -> list[dict[str, Any]]:
    """Condition keys as the simulator takes them."""
    entries = []
    for key, value in context.items():
        if isinstance(value, tuple):
            kind, values = "stringList", list(value)
        elif key.lower() == "aws:securetransport":
            kind, values = "boolean", [value]
        else:
            kind, values = "string", [value]
        entries.append({"ContextKeyName": key, "ContextKeyValues": values, "ContextKeyType": kind})
    return entries


# --- difusor mode ---------------------------------------------------------------------


def difusor_preflight(
    outputs: DifusorOutputs, roles: InstituteRoles, session: Any
) -> list[CheckResult]:
    """Every check in one difusor's account, with its own read-only credentials."""

    def client(service: str, region: str | None = outputs.region) -> Any:
        return session.client(service, region_name=region, config=_CLIENT_CONFIG)

    try:
        identity = _required(client("sts").get_caller_identity)
    except _Failed as exc:
        return [unreadable("credentials", f"account {outputs.account_id}", str(exc))]
    credentials = check_credentials(identity, outputs.account_id, "the difusor's")
    if not credentials.ok:
        return [credentials]
    results = [credentials]

    distribution_arn = outputs.distribution_arn
    cloudfront = client("cloudfront")
    try:
        distribution = _required(cloudfront.get_distribution, Id=outputs.distribution_id)
        distribution_arn = str(distribution.get("Distribution", {}).get("ARN") or distribution_arn)
        results.extend(check_distribution(distribution, outputs.bucket))
    except _Failed as exc:
        distribution = None
        results.append(unreadable("distribution", outputs.distribution_id, str(exc)))
    if distribution is not None:
        behaviors = viewer_request_functions(distribution)
        try:
            described = {
                arn: _required(cloudfront.describe_function, Name=function_name(arn), Stage="LIVE")
                for arn in sorted({a for a in behaviors.values() if a})
            }
            results.append(check_edge_function(behaviors, described, outputs.kvs_arn))
        except _Failed as exc:
            results.append(unreadable("edge function", outputs.distribution_id, str(exc)))
    results.append(_version_pointer(client("cloudfront-keyvaluestore"), outputs.kvs_arn))

    s3 = client("s3")
    bucket = outputs.bucket
    for check, read, judge in (
        ("bucket public access", s3.get_public_access_block, check_public_access_block),
        ("bucket ownership", s3.get_bucket_ownership_controls, check_ownership),
    ):
        try:
            results.append(judge(_ask(read, Bucket=bucket), bucket))
        except _Failed as exc:
            results.append(unreadable(check, bucket, str(exc)))
    try:
        policy = _ask(s3.get_bucket_policy, Bucket=bucket)
        text = None if policy is None else str(policy["Policy"])
        results.extend(check_bucket_policy(text, outputs, roles, distribution_arn))
    except _Failed as exc:
        results.append(unreadable("bucket policy", bucket, str(exc)))

    iam = client("iam", None)
    role_name = outputs.role_arn.rsplit("/", 1)[-1]
    try:
        role = _required(iam.get_role, RoleName=role_name)
        results.append(check_delivery_trust(role, outputs, roles))
    except _Failed as exc:
        results.append(unreadable("delivery role trust", outputs.role_arn, str(exc)))
    try:
        policies = _role_policies(iam, role_name)
        results.append(
            check_delivery_permissions(
                outputs.role_arn, outputs.account_id, policies, outputs.kvs_arn
            )
        )
    except _Failed as exc:
        results.append(unreadable("delivery role policy", outputs.role_arn, str(exc)))
    return results


def _version_pointer(kvs: Any, kvs_arn: str) -> CheckResult:
    """The store's pointer as the edge function reads it (DescribeKeyValueStore and GetKey:
    the data plane, signed with SigV4A)."""
    try:
        stored = KeyValueStorePointer(kvs, kvs_arn).read()
    except PointerError as exc:
        return check_version_pointer(None, kvs_arn, error=str(exc))
    except (ClientError, BotoCoreError, DeliveryError) as exc:
        return unreadable(
            "version pointer",
            kvs_arn,
            f"{type(exc).__name__}: {exc} (the store's data plane is signed with SigV4A: it "
            "needs awscrt, and session tokens of version 2, which regional STS endpoints "
            "issue)",
        )
    return check_version_pointer(stored.pointer, kvs_arn)


def _role_policies(iam: Any, role_name: str) -> dict[str, Any]:
    """Every policy of the role, inline (by name) and attached (by ARN), as documents."""
    policies: dict[str, Any] = {}
    for name in _pages(iam.list_role_policies, "PolicyNames", RoleName=role_name):
        inline = _required(iam.get_role_policy, RoleName=role_name, PolicyName=name)
        policies[f"inline policy {name}"] = inline["PolicyDocument"]
    for attached in _pages(iam.list_attached_role_policies, "AttachedPolicies", RoleName=role_name):
        arn = str(attached["PolicyArn"])
        meta = _required(iam.get_policy, PolicyArn=arn)
        version = _required(
            iam.get_policy_version, PolicyArn=arn, VersionId=meta["Policy"]["DefaultVersionId"]
        )
        policies[f"attached policy {arn}"] = version["PolicyVersion"]["Document"]
    return policies


def _pages(call: Callable[..., Any], key: str, **kwargs: Any) -> list[Any]:
    items: list[Any] = []
    while True:
        page = _required(call, **kwargs)
        items.extend(page.get(key, []))
        if not page.get("IsTruncated"):
            return items
        kwargs["Marker"] = page["Marker"]

"""The read-only calls preflight makes, and the checks it hands their answers to.

Clients come from the session given (boto3's defaults: profile, region, credentials, and
``AWS_ENDPOINT_URL`` on the emulator). Every call is a read: ``sts:GetCallerIdentity``,
``iam:SimulatePrincipalPolicy``, ``dynamodb:Scan`` of the registry, Describe/Get/List calls;
in difusor mode also ``cloudfront:TestFunction`` (runs the function, changes nothing) and a
``HEAD`` of the site.
A call that fails becomes a ✗ line saying so, and the rest still run.
"""

from __future__ import annotations

import http.client
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from difusion.adapters.pointer_store import KeyValueStorePointer
from difusion.adapters.registry import DifusorRegistry
from difusion.errors import DeliveryError
from difusion.models import DifusorStatus
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
from difusion.preflight.deployment_checks import (
    check_concurrency,
    check_layer_awscrt,
    check_origin_notifications,
    check_region_opt_in,
    layer_listing,
    layer_version_arns,
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
from difusion.preflight.edge_checks import (
    EDGE_FUNCTION_FILE,
    SiteAnswer,
    check_distributions_listed,
    check_function_code,
    check_function_runs,
    check_log_bucket_ownership,
    check_site_answer,
    check_web_acl,
    edge_cases,
    event_object,
    log_bucket_name,
    manifest_url,
    web_acl_parts,
)
from difusion.preflight.outputs import DifusorOutputs, InstituteOutputs, InstituteRoles
from difusion.preflight.requirements import Deployment, Requirement, expand
from difusion.versions import Pointer, PointerError

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


def _ask[T](call: Callable[..., T], **kwargs: Any) -> T | None:
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


def _required[T](call: Callable[..., T], **kwargs: Any) -> T:
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
    download: LayerDownloader | None = None,
) -> list[CheckResult]:
    """Every check in the institute's account; ``difusor_id`` limits the difusores to one,
    ``reports`` holds difusor mode's reports (by file name) for the delivery roles,
    ``download`` fetches the layer's zip (default :func:`download_layer`)."""

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
    registered: int | None = None  # every current difusor, for the concurrency they need
    try:
        everyone = _required(registry.all)
        listed, difusores = select_difusores(everyone, outputs.registry_table, difusor_id)
        results.append(listed)
        registered = sum(1 for d in everyone if d.status is not DifusorStatus.RETIRED)
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
    results.extend(deployment_preflight(outputs, client, registered, download or download_layer))

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


# --- institute mode: the deployment as AWS runs it (difusion.preflight.deployment_checks) --

LayerDownloader = Callable[[str], bytes]
LAYER_DOWNLOAD_TIMEOUT_SECONDS = 60


def download_layer(url: str) -> bytes:
    """The layer's zip from GetLayerVersion's ``Content.Location`` (a presigned S3 URL,
    valid for 10 minutes)."""
    with urllib.request.urlopen(url, timeout=LAYER_DOWNLOAD_TIMEOUT_SECONDS) as answer:
        body: bytes = answer.read()
        return body


def deployment_preflight(
    outputs: InstituteOutputs,
    client: Callable[..., Any],
    registered: int | None,
    download: LayerDownloader,
) -> list[CheckResult]:
    """The origin bucket's EventBridge notifications, the functions' layer (awscrt), the
    account's Lambda concurrency for ``registered`` difusores, and the Region's opt-in
    status."""
    results: list[CheckResult] = []
    bucket = outputs.origin_bucket
    try:
        notifications = _required(client("s3").get_bucket_notification_configuration, Bucket=bucket)
        results.append(check_origin_notifications(notifications, bucket))
    except _Failed as exc:
        results.append(unreadable("origin notifications", bucket, str(exc)))
    sigv4a = {outputs.publisher_role_arn: "replicate", outputs.monitor_role_arn: "monitor"}
    results.append(_layer_awscrt(client("lambda"), sigv4a, download))
    subject = f"lambda in {outputs.region}"
    try:
        settings = _required(client("lambda").get_account_settings)
        if registered is None:
            results.append(
                unreadable("lambda concurrency", subject, "the registry could not be read")
            )
        else:
            results.append(check_concurrency(settings, registered, outputs.region))
    except _Failed as exc:
        results.append(unreadable("lambda concurrency", subject, str(exc)))
    try:
        status = _required(client("account").get_region_opt_status, RegionName=outputs.region)
        results.append(check_region_opt_in(outputs.region, status))
    except _Failed as exc:
        results.append(check_region_opt_in(outputs.region, None, str(exc)))
    return results


def _layer_awscrt(lambda_: Any, roles: Mapping[str, str], download: LayerDownloader) -> CheckResult:
    """The layers of the functions that run as ``roles`` (role ARN -> function), from
    ListFunctions; each one's GetLayerVersionByArn and its zip's listing."""
    function = " and ".join(roles.values())
    try:
        configurations = [
            f for f in _listed(lambda_.list_functions, "Functions") if f.get("Role") in roles
        ]
        if not configurations:
            return check_layer_awscrt(function, {}, "no function runs as its role")
        function = ", ".join(str(f.get("FunctionName")) for f in configurations)
        arns = dict.fromkeys(a for f in configurations for a in layer_version_arns(f))
        listings: dict[str, list[str] | None] = {}
        for arn in arns:
            layer = _required(lambda_.get_layer_version_by_arn, Arn=arn)
            location = str(layer.get("Content", {}).get("Location", ""))
            listings[arn] = layer_listing(download(location)) if location else None
    except _Failed as exc:
        return check_layer_awscrt(function, {}, str(exc))
    except (OSError, ValueError) as exc:  # the download, or a zip that is not one
        return check_layer_awscrt(function, {}, f"{type(exc).__name__}: {exc}")
    return check_layer_awscrt(function, listings)


def _listed(call: Callable[..., Any], key: str) -> list[Any]:
    """Every page of a Lambda listing (``Marker`` / ``NextMarker``)."""
    items: list[Any] = []
    paging: dict[str, str] = {}
    while True:
        page = _required(call, **paging)
        items.extend(page.get(key, []))
        if not page.get("NextMarker"):
            return items
        paging = {"Marker": str(page["NextMarker"])}


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
    outputs: DifusorOutputs,
    roles: InstituteRoles,
    session: Any,
    fetch: SiteFetcher | None = None,
) -> list[CheckResult]:
    """Every check in one difusor's account, with its own read-only credentials (and
    ``cloudfront:TestFunction``); ``fetch`` makes the site's HEAD (default
    :func:`head_request`)."""

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
    described: dict[str, Any] = {}
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
    pointer_line, pointer, pointer_read = _version_pointer(
        client("cloudfront-keyvaluestore"), outputs.kvs_arn
    )
    results.append(pointer_line)
    results.extend(
        edge_preflight(outputs, session, distribution, described, pointer, pointer_read, fetch)
    )

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


def _version_pointer(kvs: Any, kvs_arn: str) -> tuple[CheckResult, Pointer | None, bool]:
    """The store's pointer as the edge function reads it (DescribeKeyValueStore and GetKey:
    the data plane, signed with SigV4A): its line, the pointer (None: empty), and whether
    it was read at all (the edge's expected answers follow from it)."""
    try:
        stored = KeyValueStorePointer(kvs, kvs_arn).read()
    except PointerError as exc:
        return check_version_pointer(None, kvs_arn, error=str(exc)), None, False
    except (ClientError, BotoCoreError, DeliveryError) as exc:
        line = unreadable(
            "version pointer",
            kvs_arn,
            f"{type(exc).__name__}: {exc} (the store's data plane is signed with SigV4A: it "
            "needs awscrt, and session tokens of version 2, which regional STS endpoints "
            "issue)",
        )
        return line, None, False
    return check_version_pointer(stored.pointer, kvs_arn), stored.pointer, True


# --- difusor mode: the edge as AWS runs it (difusion.preflight.edge_checks) ---------------

SiteFetcher = Callable[[str], SiteAnswer]
HEAD_TIMEOUT_SECONDS = 10
WEB_ACL_REGION = "us-east-1"  # WAF's CLOUDFRONT scope is served in us-east-1 only


def head_request(url: str) -> SiteAnswer:
    """``HEAD url``, redirects not followed: the site's own answer, as a viewer gets it."""
    parts = urllib.parse.urlsplit(url)
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(parts.netloc, timeout=HEAD_TIMEOUT_SECONDS)
    try:
        connection.request("HEAD", parts.path or "/", headers={"User-Agent": "difusion-preflight"})
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return SiteAnswer(response.status, headers)
    finally:
        connection.close()


def edge_preflight(
    outputs: DifusorOutputs,
    session: Any,
    distribution: Mapping[str, Any] | None,
    described: Mapping[str, Mapping[str, Any]],
    pointer: Pointer | None,
    pointer_read: bool,
    fetch: SiteFetcher | None = None,
) -> list[CheckResult]:
    """The function run on CloudFront's runtime, its deployed bytes, the site's answer, the
    web ACL's rules, the log bucket's ownership and the account's distributions."""
    cloudfront = session.client("cloudfront", region_name=outputs.region, config=_CLIENT_CONFIG)
    results: list[CheckResult] = []
    if not described:
        reason = "no viewer-request function to run (see the edge function line)"
        results += [
            CheckResult("edge function runs", outputs.distribution_id, False, reason),
            CheckResult("edge function code", outputs.distribution_id, False, reason),
        ]
    for arn, description in described.items():
        results += _run_function(cloudfront, function_name(arn), description, pointer, pointer_read)
    site = outputs.public_url or _distribution_url(distribution)
    url = manifest_url(site) if site else outputs.distribution_id
    try:
        answer, error = (fetch or head_request)(url), ""
    except (OSError, http.client.HTTPException, ValueError) as exc:
        answer, error = None, f"{type(exc).__name__}: {exc}"
    results.append(check_site_answer(url, answer, pointer, pointer_read, error))
    if distribution is not None:
        results.append(_web_acl(session, distribution))
        results.append(_log_bucket(session, outputs, distribution))
    try:
        listed = _required(cloudfront.list_distributions, MaxItems="100")
        results.append(check_distributions_listed(listed, outputs.distribution_id))
    except _Failed as exc:
        results.append(check_distributions_listed(None, outputs.distribution_id, str(exc)))
    return results


def _run_function(
    cloudfront: Any,
    name: str,
    description: Mapping[str, Any],
    pointer: Pointer | None,
    pointer_read: bool,
) -> list[CheckResult]:
    """TestFunction on LIVE for each case the pointer calls for (with DescribeFunction's
    ETag), and GetFunction LIVE against the repository's file."""
    results = []
    cases = edge_cases(pointer, pointer_read)
    try:
        etag = str(description.get("ETag", ""))
        tested = [
            _required(
                cloudfront.test_function,
                Name=name,
                IfMatch=etag,
                Stage="LIVE",
                EventObject=event_object(case),
            ).get("TestResult", {})
            for case in cases.cases
        ]
        results.append(check_function_runs(name, cases, tested))
    except _Failed as exc:
        results.append(
            unreadable(
                "edge function runs",
                name,
                f"{exc}"
                + (
                    " (TestFunction is not in a Describe/Get/List read-only policy: grant "
                    "cloudfront:TestFunction on this function)"
                    if "AccessDenied" in str(exc)
                    else ""
                ),
            )
        )
    try:
        live = _required(cloudfront.get_function, Name=name, Stage="LIVE")["FunctionCode"]
        code = live.read() if hasattr(live, "read") else bytes(live)
        try:
            repository: bytes | None = EDGE_FUNCTION_FILE.read_bytes()
        except OSError:
            repository = None
        results.append(check_function_code(name, code, repository, EDGE_FUNCTION_FILE))
    except _Failed as exc:
        results.append(unreadable("edge function code", name, str(exc)))
    return results


def _distribution_url(distribution: Mapping[str, Any] | None) -> str:
    domain = (distribution or {}).get("Distribution", {}).get("DomainName")
    return f"https://{domain}" if domain else ""


def _web_acl(session: Any, distribution: Mapping[str, Any]) -> CheckResult:
    config = distribution.get("Distribution", {}).get("DistributionConfig", {})
    arn = str(config.get("WebACLId", ""))
    parts = web_acl_parts(arn)
    if parts is None:
        return CheckResult(
            "waf rules", arn or "the distribution", False, "no WAFv2 web ACL to read"
        )
    waf = session.client("wafv2", region_name=WEB_ACL_REGION, config=_CLIENT_CONFIG)
    try:
        acl = _required(waf.get_web_acl, Name=parts[0], Scope="CLOUDFRONT", Id=parts[1])
    except _Failed as exc:
        return unreadable("waf rules", arn, str(exc))
    return check_web_acl(acl, arn)


def _log_bucket(
    session: Any, outputs: DifusorOutputs, distribution: Mapping[str, Any]
) -> CheckResult:
    bucket = log_bucket_name(distribution) or outputs.log_bucket
    if not bucket:
        return CheckResult(
            "log bucket ownership",
            outputs.distribution_id,
            False,
            "the distribution writes no standard logs (the stack turns them on)",
        )
    s3 = session.client("s3", region_name=outputs.region, config=_CLIENT_CONFIG)
    try:
        controls = _ask(s3.get_bucket_ownership_controls, Bucket=bucket)
    except _Failed as exc:
        return unreadable("log bucket ownership", bucket, str(exc))
    return check_log_bucket_ownership(controls, bucket)


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

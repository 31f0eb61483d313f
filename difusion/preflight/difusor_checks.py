"""Preflight's verdicts in a difusor's account: pure functions over AWS's responses.

The bucket policy and the delivery role's trust and permissions are decided with the
project's IAM evaluator (``difusion.local.iam.evaluate``), with the institute's side of
each cross-account request assumed to allow: institute mode asks IAM about that side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from difusion.local.iam.evaluate import Policy, PolicyError, Principal, Request, evaluate
from difusion.preflight.checks import (
    DELIVERY_ROLE_TRUST,
    CheckResult,
    assumed_identity,
    external_id_tag,
    policy_document,
)
from difusion.preflight.outputs import DifusorOutputs, InstituteRoles
from difusion.versions import Pointer

HTTPS_ONLY = ("redirect-to-https", "https-only")
# What the delivery role may do: read and write the site's version pointer (Service
# Authorization Reference, CloudFront KeyValueStore), and nothing else.
POINTER_ACTIONS = (
    "cloudfront-keyvaluestore:DescribeKeyValueStore",
    "cloudfront-keyvaluestore:GetKey",
    "cloudfront-keyvaluestore:PutKey",
)
_S3_REST_ENDPOINT = re.compile(r"\.s3(\.dualstack)?([.-][a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")
_PUBLIC_ACCESS_FLAGS = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)


# --- the distribution -----------------------------------------------------------------


def check_distribution(response: Mapping[str, Any], bucket: str) -> list[CheckResult]:
    """cloudfront:GetDistribution: deployed and enabled, HTTPS-only in every behavior,
    its WAF web ACL attached, and reading the site bucket through origin access control."""
    distribution = response.get("Distribution", {})
    config = distribution.get("DistributionConfig", {})
    subject = str(distribution.get("Id", "?"))
    status = str(distribution.get("Status", ""))
    enabled = bool(config.get("Enabled"))
    results = [
        CheckResult(
            "distribution deployed",
            subject,
            status == "Deployed" and enabled,
            f"status {status or 'unknown'}, {'enabled' if enabled else 'DISABLED'}"
            + ("" if status == "Deployed" else " (wait until it is Deployed)"),
        )
    ]
    behaviors = _behaviors(config)
    plain = [
        f"{path}: {b.get('ViewerProtocolPolicy', 'unset')}"
        for path, b in behaviors
        if b.get("ViewerProtocolPolicy") not in HTTPS_ONLY
    ]
    results.append(
        CheckResult(
            "distribution https",
            subject,
            not plain,
            "viewers are served HTTP: " + ", ".join(plain)
            if plain
            else f"every behavior ({len(behaviors)}) redirects to or requires HTTPS",
        )
    )
    web_acl = str(config.get("WebACLId", ""))
    results.append(
        CheckResult(
            "distribution waf",
            subject,
            bool(web_acl),
            f"web ACL {_web_acl_name(web_acl)}"
            if web_acl
            else "no WAF web ACL is attached (the stack attaches one: redeploy it)",
        )
    )
    results.extend(_origins(subject, config.get("Origins", {}).get("Items", []) or [], bucket))
    return results


def _behaviors(config: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """A distribution config's cache behaviors: ``default`` and each by its path pattern."""
    return [("default", config.get("DefaultCacheBehavior", {}))] + [
        (str(b.get("PathPattern", "?")), b)
        for b in config.get("CacheBehaviors", {}).get("Items", []) or []
    ]


def _web_acl_name(web_acl: str) -> str:
    # arn:aws:wafv2:us-east-1:ACCOUNT:global/webacl/NAME/ID
    parts = web_acl.split("/")
    return parts[-2] if len(parts) >= 3 else web_acl


def _origins(subject: str, origins: Sequence[Mapping[str, Any]], bucket: str) -> list[CheckResult]:
    s3_origins = [
        o
        for o in origins
        if "S3OriginConfig" in o or _S3_REST_ENDPOINT.search(str(o.get("DomainName", "")))
    ]
    domains = ", ".join(str(o.get("DomainName", "?")) for o in origins) or "no origin"
    serves = [o for o in s3_origins if str(o.get("DomainName", "")).startswith(f"{bucket}.s3.")]
    results = [
        CheckResult(
            "distribution origin",
            subject,
            bool(serves),
            f"reads bucket {bucket}" if serves else f"reads {domains}, not bucket {bucket}",
        )
    ]
    problems = []
    for origin in s3_origins:
        name = str(origin.get("Id", origin.get("DomainName", "?")))
        identity = str(origin.get("S3OriginConfig", {}).get("OriginAccessIdentity", ""))
        if identity:
            problems.append(f"{name} uses a legacy origin access identity ({identity})")
        if not origin.get("OriginAccessControlId"):
            problems.append(f"{name} has no origin access control")
    if not s3_origins:
        problems.append(f"no S3 origin ({domains})")
    results.append(
        CheckResult(
            "distribution oac",
            subject,
            not problems,
            "; ".join(problems)
            if problems
            else "every S3 origin signs its requests with origin access control "
            + ", ".join(str(o.get("OriginAccessControlId")) for o in s3_origins),
        )
    )
    return results


# --- the site bucket ------------------------------------------------------------------


def check_public_access_block(response: Mapping[str, Any] | None, bucket: str) -> CheckResult:
    """s3:GetPublicAccessBlock (None: the bucket has none): all four settings on."""
    if response is None:
        return CheckResult(
            "bucket public access", bucket, False, "no public access block on the bucket"
        )
    config = response.get("PublicAccessBlockConfiguration", {})
    off = [flag for flag in _PUBLIC_ACCESS_FLAGS if config.get(flag) is not True]
    if off:
        return CheckResult("bucket public access", bucket, False, "off: " + ", ".join(off))
    return CheckResult("bucket public access", bucket, True, "all four public access blocks on")


def check_ownership(response: Mapping[str, Any] | None, bucket: str) -> CheckResult:
    """s3:GetBucketOwnershipControls (None: none set): BucketOwnerEnforced, ACLs off."""
    rules = (response or {}).get("OwnershipControls", {}).get("Rules", [])
    owned = [str(r.get("ObjectOwnership")) for r in rules]
    if owned == ["BucketOwnerEnforced"]:
        return CheckResult("bucket ownership", bucket, True, "BucketOwnerEnforced: ACLs disabled")
    found = ", ".join(owned) or "no ownership controls"
    return CheckResult(
        "bucket ownership",
        bucket,
        False,
        f"{found}: ACLs still apply, so an object's ACL could make it public",
    )


def check_bucket_policy(
    policy_text: str | None,
    outputs: DifusorOutputs,
    roles: InstituteRoles,
    distribution_arn: str = "",
) -> list[CheckResult]:
    """s3:GetBucketPolicy (None: the bucket has none): TLS only; read by this distribution
    only (origin access control) and by no one anonymously; written by the institute's
    publisher and monitor, and by no other role of the institute's account."""
    bucket = outputs.bucket
    checks = ("bucket tls only", "bucket readers", "institute writes", "bucket writers")
    if policy_text is None:
        return [CheckResult(c, bucket, False, "the bucket has no policy") for c in checks]
    try:
        policy = Policy(f"bucket policy of {bucket}", policy_document(policy_text))
        return [
            _tls_only(policy, outputs),
            _readers(policy, outputs, distribution_arn or outputs.distribution_arn),
            *_institute_writes(policy, outputs, roles),
        ]
    except (PolicyError, ValueError) as exc:
        return [CheckResult(c, bucket, False, f"cannot evaluate its policy: {exc}") for c in checks]


def _object(outputs: DifusorOutputs, key: str = "index.html") -> str:
    return f"arn:{outputs.partition}:s3:::{outputs.bucket}/{key}"


def _bucket(outputs: DifusorOutputs) -> str:
    return f"arn:{outputs.partition}:s3:::{outputs.bucket}"


def _site_requests(outputs: DifusorOutputs) -> list[tuple[str, str]]:
    return [
        ("s3:PutObject", _object(outputs)),
        ("s3:DeleteObject", _object(outputs)),
        ("s3:AbortMultipartUpload", _object(outputs)),
        ("s3:ListBucket", _bucket(outputs)),
    ]


def _tls_only(policy: Policy, outputs: DifusorOutputs) -> CheckResult:
    # An administrator of the bucket's own account, allowed everything by its identity
    # policies: only an explicit Deny refuses it, and over plain HTTP one must.
    admin = Principal.role(f"arn:{outputs.partition}:iam::{outputs.account_id}:role/Administrator")
    everyone = assumed_identity("an administrator")
    over_http = [
        ("s3:GetObject", _object(outputs)),
        ("s3:PutObject", _object(outputs)),
        ("s3:ListBucket", _bucket(outputs)),
    ]
    served = [
        action
        for action, resource in over_http
        if evaluate(
            Request(admin, action, resource, outputs.account_id, {"aws:SecureTransport": False}),
            [everyone],
            policy,
        ).allowed
    ]
    if served:
        return CheckResult(
            "bucket tls only",
            outputs.bucket,
            False,
            "no Deny when aws:SecureTransport is false: " + ", ".join(served) + " over HTTP",
        )
    return CheckResult(
        "bucket tls only", outputs.bucket, True, "every request over plain HTTP is denied"
    )


def _readers(policy: Policy, outputs: DifusorOutputs, distribution_arn: str) -> CheckResult:
    problems = []
    for statement in _statements(policy):
        principal = statement.get("Principal")
        everyone = principal == "*" or (
            isinstance(principal, Mapping) and "*" in _as_list(principal.get("AWS", []))
        )
        if statement.get("Effect") == "Allow" and everyone and not statement.get("Condition"):
            problems.append(f"statement {statement.get('Sid', '(no Sid)')} allows anyone")
    cloudfront = Principal.service("cloudfront.amazonaws.com")

    def reads(source_arn: str) -> bool:
        context: dict[str, str | bool] = {"aws:SecureTransport": True, "aws:SourceArn": source_arn}
        request = Request(cloudfront, "s3:GetObject", _object(outputs), "", context)
        return evaluate(request, [], policy).allowed

    if not reads(distribution_arn):
        problems.append(f"CloudFront may not read it for {distribution_arn} (no OAC grant)")
    other = distribution_arn.rsplit("/", 1)[0] + "/EPREFLIGHTOTHER"
    if reads(other):
        problems.append("CloudFront may read it for any distribution (no aws:SourceArn)")
    if problems:
        return CheckResult("bucket readers", outputs.bucket, False, "; ".join(problems))
    return CheckResult(
        "bucket readers",
        outputs.bucket,
        True,
        f"read by distribution {outputs.distribution_id} only (origin access control)",
    )


def _institute_writes(
    policy: Policy, outputs: DifusorOutputs, roles: InstituteRoles
) -> list[CheckResult]:
    results = []
    for name, arn in roles.by_name().items():
        refused = _refused(policy, outputs, arn, roles.account)
        results.append(
            CheckResult(
                "institute writes",
                f"{outputs.bucket} ← {name}",
                not refused,
                f"{arn} may not " + ", ".join(refused)
                if refused
                else f"{arn} may put, delete and list",
            )
        )
    stranger = f"arn:{outputs.partition}:iam::{roles.account}:role/difusion-preflight-stranger"
    allowed = [
        a
        for a, _ in _site_requests(outputs)
        if a not in _refused(policy, outputs, stranger, roles.account)
    ]
    results.append(
        CheckResult(
            "bucket writers",
            outputs.bucket,
            not allowed,
            "any role of the institute's account may " + ", ".join(allowed)
            if allowed
            else "no other role of the institute's account may write it",
        )
    )
    return results


def _refused(policy: Policy, outputs: DifusorOutputs, role_arn: str, account: str) -> list[str]:
    institute_side = assumed_identity(f"account {account}")
    context = {"aws:SecureTransport": True}
    return [
        action
        for action, resource in _site_requests(outputs)
        if not evaluate(
            Request(Principal.role(role_arn), action, resource, outputs.account_id, context),
            [institute_side],
            policy,
        ).allowed
    ]


def _statements(policy: Policy) -> list[Mapping[str, Any]]:
    raw = policy.document.get("Statement", [])
    return list(raw) if isinstance(raw, list) else [raw]


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


# --- the delivery role ----------------------------------------------------------------


def check_delivery_trust(
    role: Mapping[str, Any], outputs: DifusorOutputs, roles: InstituteRoles
) -> CheckResult:
    """iam:GetRole's AssumeRolePolicyDocument (URL-encoded JSON): the institute's publisher
    and monitor may assume the role with the external id, and not without it; no other
    role of the institute's account may, even with it."""
    subject = outputs.role_arn
    tag = external_id_tag(outputs.external_id)
    try:
        trust = Policy(
            f"trust policy of {outputs.role_arn.rsplit('/', 1)[-1]}",
            policy_document(role.get("Role", role)["AssumeRolePolicyDocument"]),
        )

        def assumes(arn: str, external_id: str | None) -> bool:
            context: dict[str, str | bool] = {"aws:SecureTransport": True}
            if external_id is not None:
                context["sts:ExternalId"] = external_id
            request = Request(
                Principal.role(arn), "sts:AssumeRole", outputs.role_arn, outputs.account_id, context
            )
            return evaluate(request, [assumed_identity("the institute")], trust).allowed

        problems = [
            f"{name} may not assume it with the {tag}"
            for name, arn in roles.by_name().items()
            if not assumes(arn, outputs.external_id)
        ]
        if assumes(roles.publisher_role_arn, None):
            problems.append("the publisher may assume it without an external id")
        if assumes(roles.publisher_role_arn, outputs.external_id + "-not-it"):
            problems.append("the publisher may assume it with another external id")
        stranger = f"arn:{outputs.partition}:iam::{roles.account}:role/difusion-preflight-stranger"
        if assumes(stranger, outputs.external_id):
            problems.append("any role of the institute's account may assume it")
    except (KeyError, PolicyError, ValueError) as exc:
        return CheckResult(
            DELIVERY_ROLE_TRUST, subject, False, f"cannot evaluate it: {exc} ({tag})"
        )
    if problems:
        return CheckResult(DELIVERY_ROLE_TRUST, subject, False, "; ".join(problems) + f" ({tag})")
    return CheckResult(
        DELIVERY_ROLE_TRUST,
        subject,
        True,
        f"the institute's publisher and monitor with the {tag}; not without it, nor others",
    )


def check_delivery_permissions(
    role_arn: str,
    account: str,
    policies: Mapping[str, str | Mapping[str, Any]],
    kvs_arn: str,
) -> CheckResult:
    """The delivery role's inline and attached policies (name -> document): they allow
    reading and writing the site's version pointer in its KeyValueStore, and nothing else."""
    subject = role_arn
    try:
        documents = [Policy(name, policy_document(doc)) for name, doc in policies.items()]
        missing = [
            action
            for action in POINTER_ACTIONS
            if not evaluate(
                Request(Principal.role(role_arn), action, kvs_arn, account), documents
            ).allowed
        ]
    except (PolicyError, ValueError) as exc:
        return CheckResult("delivery role policy", subject, False, f"cannot evaluate it: {exc}")
    wanted_actions = {a.lower() for a in POINTER_ACTIONS}
    broader = []
    for policy in documents:
        for statement in _statements(policy):
            if statement.get("Effect") != "Allow":
                continue
            sid = f"{policy.name} {statement.get('Sid') or 'statement'}"
            if "NotAction" in statement or "NotResource" in statement:
                broader.append(f"{sid} uses NotAction/NotResource")
                continue
            extra_actions = [
                a for a in _as_list(statement.get("Action", [])) if a.lower() not in wanted_actions
            ]
            extra_resources = [r for r in _as_list(statement.get("Resource", [])) if r != kvs_arn]
            if extra_actions:
                broader.append(f"{sid} allows {', '.join(extra_actions)}")
            if extra_resources:
                broader.append(f"{sid} names {', '.join(extra_resources)}")
    problems = [f"does not allow {a} on {kvs_arn}" for a in missing] + broader
    if problems:
        return CheckResult("delivery role policy", subject, False, "; ".join(problems))
    return CheckResult(
        "delivery role policy",
        subject,
        True,
        f"only {' and '.join(POINTER_ACTIONS)} on {kvs_arn}",
    )


# --- whole-site versions: the function, its store, the pointer ---------------------------

VERSIONS_RUNTIME = "cloudfront-js-2.0"


def viewer_request_functions(response: Mapping[str, Any]) -> dict[str, str | None]:
    """Each cache behavior of a GetDistribution answer (``default`` or its path pattern)
    and the ARN of its viewer-request CloudFront Function (``None``: it has none)."""
    config = response.get("Distribution", {}).get("DistributionConfig", {})
    behaviors = _behaviors(config)
    found: dict[str, str | None] = {}
    for path, behavior in behaviors:
        items = behavior.get("FunctionAssociations", {}).get("Items", []) or []
        arns = [str(i["FunctionARN"]) for i in items if i.get("EventType") == "viewer-request"]
        found[path] = arns[0] if arns else None
    return found


def function_name(arn: str) -> str:
    """``arn:aws:cloudfront::ACCOUNT:function/NAME`` → ``NAME`` (what DescribeFunction takes)."""
    return arn.rsplit("/", 1)[-1]


def check_edge_function(
    behaviors: Mapping[str, str | None],
    described: Mapping[str, Mapping[str, Any]],
    kvs_arn: str,
) -> CheckResult:
    """Every cache behavior routes viewers by the version pointer: a viewer-request
    function (``cloudfront-js-2.0``) associated with the store the institute switches
    (``kvs_arn``, the stack's ``KeyValueStoreArn`` output). ``described``: each function's
    DescribeFunction answer at stage LIVE, by ARN. A function reading another store leaves
    every switch unseen: the site stays on what that store says (503 when nothing)."""
    subject = ", ".join(sorted({a for a in behaviors.values() if a})) or "the distribution"
    problems = [
        f"behavior {path} has no viewer-request function (versions are never routed there)"
        for path, arn in behaviors.items()
        if arn is None
    ]
    for arn in sorted({a for a in behaviors.values() if a}):
        summary = described.get(arn, {}).get("FunctionSummary", {})
        config = summary.get("FunctionConfig", {})
        stores = [
            str(s.get("KeyValueStoreARN"))
            for s in config.get("KeyValueStoreAssociations", {}).get("Items", []) or []
        ]
        name = function_name(arn)
        if config.get("Runtime") != VERSIONS_RUNTIME:
            problems.append(
                f"{name} runs {config.get('Runtime') or 'an unknown runtime'}, not "
                f"{VERSIONS_RUNTIME} (KeyValueStore needs it)"
            )
        if kvs_arn not in stores:
            reads = ", ".join(stores) if stores else "no KeyValueStore"
            problems.append(
                f"{name} reads {reads}, not {kvs_arn}, the store the institute switches "
                "(send UCSI the KeyValueStoreArn the function reads, or redeploy the stack)"
            )
    if problems:
        return CheckResult("edge function", subject, False, "; ".join(problems))
    return CheckResult(
        "edge function",
        subject,
        True,
        f"every behavior ({len(behaviors)}) routes by the pointer in {kvs_arn}",
    )


def check_version_pointer(
    pointer: Pointer | None, kvs_arn: str, error: str | None = None
) -> CheckResult:
    """The store's ``live`` key as the function reads it: empty before the institute's
    first delivery (the site answers 503: expected), a live version, or the suspension
    notice; a value the function refuses (``error``) is a site answering 503 to everyone."""
    if error is not None:
        return CheckResult(
            "version pointer",
            kvs_arn,
            False,
            f"the stored pointer is not one the edge function serves, so the site answers "
            f"503: {error} (only the institute writes it: tell UCSI)",
        )
    if pointer is None:
        return CheckResult(
            "version pointer",
            kvs_arn,
            True,
            "empty: the site answers 503 until the institute's first delivery (expected before it)",
        )
    if pointer.live is None:
        return CheckResult(
            "version pointer", kvs_arn, True, f"suspended: the notice {pointer.notice} is served"
        )
    live = pointer.live
    previous = (
        "" if pointer.previous is None else f"; version {pointer.previous.version} still routable"
    )
    return CheckResult(
        "version pointer",
        kvs_arn,
        True,
        f"version {live.version} live (cut {live.held.sequence}, slot {live.slot}){previous}",
    )

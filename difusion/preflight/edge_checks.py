"""Preflight's verdicts on a difusor's edge as AWS runs it: pure functions over AWS's answers.

``difusor_checks`` proves the function is associated with the right store; this module proves
it *runs*. A ``cloudfront-js-2.0`` function that CloudFront accepts can still fail at request
time, and then CloudFront answers 503 to every viewer (CloudFront developer guide, "HTTP 503
status code (Service Unavailable)": "Lambda@Edge or CloudFront Function execution error").
So preflight asks CloudFront itself:

- ``cloudfront:TestFunction`` on the LIVE stage, with viewer-request events whose right
  answers follow from the pointer the store holds now (TestFunction reads the live store);
- ``cloudfront:GetFunction`` LIVE: the deployed bytes are ``edge/viewer_request.js``;
- an HTTPS ``HEAD`` of the site's signed manifest, answered by the function's own redirect;
- the web ACL's rules, the access-log bucket's ownership, and that CloudFront lists the
  account's distributions.

Sources are cited in ``tests/fixtures/preflight/README.md`` and README's preflight section.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difusion.preflight.checks import CheckResult
from difusion.publication import MANIFEST_PATH
from difusion.versions import Pointer, SiteState

# The file the difusor stack deploys byte for byte (stacks/difusor/site_versions.py).
EDGE_FUNCTION_FILE = Path(__file__).resolve().parents[2] / "edge" / "viewer_request.js"
# TestResult.ComputeUtilization is the run time "as a percentage of the maximum allowed time"
# (API reference, TestResult); a function over that time is throttled and its viewers get
# 503 (developer guide, "Restrictions on CloudFront Functions: Compute utilization"). AWS
# publishes no warning level: 70 is ours. One test event on one edge at one moment is a
# sample, and real requests carry longer paths and query strings than the samples, so a
# third of the budget is kept as margin.
UTILIZATION_WARNING = 70
# The AWS managed rule groups the difusor stack puts in its web ACL
# (stacks/difusor/web_acl.py; a test holds the two lists equal).
STACK_MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)
RATE_LIMITED_STATUS = 429
# CloudFront's x-cache values for a function that failed or was throttled (what viewers see
# with the 503; standard log field x-edge-detailed-result-type has the same names).
FUNCTION_FAILURES = ("FunctionExecutionError", "FunctionThrottledError")
# Object ownership settings that keep ACLs enabled: CloudFront's standard logs (legacy) are
# delivered by the awslogsdelivery account through the bucket's ACL.
ACL_OWNERSHIPS = ("ObjectWriter", "BucketOwnerPreferred")
_MANIFEST_URI = "/" + MANIFEST_PATH
_S3_LOG_BUCKET = re.compile(r"^(?P<name>.+?)\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?$")


# --- TestFunction: the function run by CloudFront on sample events ----------------------


@dataclass(frozen=True)
class EdgeCase:
    """One viewer request and what the function must answer to it, given the pointer:
    ``status`` for an answer of its own (with ``location`` for a redirect), or ``None`` for a
    request passed to the origin as ``origin_uri`` with the query string ``v=version_query``."""

    name: str
    uri: str
    status: int | None = None
    location: str | None = None
    origin_uri: str | None = None
    version_query: str | None = None


@dataclass(frozen=True)
class EdgeCases:
    """The cases asked for the pointer found, and what could not be asked and why."""

    cases: tuple[EdgeCase, ...]
    unasked: str = ""


def edge_cases(pointer: Pointer | None, pointer_read: bool = True) -> EdgeCases:
    """The events to test, from the pointer the store holds (TestFunction runs against the
    live store, so the right answer depends on it). A traversal is refused (400) whatever the
    pointer; ``pointer_read`` False (the store could not be read): nothing else is known."""
    traversal = EdgeCase("traversal path", "/v/1/../../_v/a/index.html", status=400)
    if not pointer_read:
        return EdgeCases((traversal,), "the pointer could not be read, so only a traversal")
    if pointer is None:
        return EdgeCases(
            (EdgeCase("empty pointer", _MANIFEST_URI, status=503), traversal),
            "no pointer yet (before the first delivery): only the 503 and a traversal",
        )
    if pointer.state == SiteState.SUSPENDED or pointer.live is None:
        notice = str(pointer.notice)
        return EdgeCases(
            (
                EdgeCase(
                    "suspended, home page",
                    "/",
                    origin_uri=f"/_aviso/{notice}/index.html",
                    version_query=f"aviso-{notice}",
                ),
                EdgeCase("suspended, manifest", _MANIFEST_URI, status=302, location="/"),
                traversal,
            ),
            "suspended: the notice is asked, not the versions",
        )
    live = pointer.live
    return EdgeCases(
        (
            EdgeCase(
                "unversioned path",
                _MANIFEST_URI,
                status=302,
                location=f"/v/{live.version}{_MANIFEST_URI}",
            ),
            EdgeCase(
                "live version",
                f"/v/{live.version}/index.html",
                origin_uri=f"/_v/{live.slot}/index.html",
                version_query=str(live.version),
            ),
            traversal,
        )
    )


def viewer_request_event(uri: str) -> dict[str, Any]:
    """A viewer-request event (developer guide, "CloudFront Functions event structure")."""
    return {
        "version": "1.0",
        "context": {"eventType": "viewer-request"},
        "viewer": {"ip": "198.51.100.10"},
        "request": {
            "method": "GET",
            "uri": uri,
            "querystring": {},
            "headers": {"host": {"value": "preflight.invalid"}},
            "cookies": {},
        },
    }


def event_object(case: EdgeCase) -> bytes:
    """TestFunction's EventObject: the event as JSON bytes (boto3 base64-encodes the blob)."""
    return json.dumps(viewer_request_event(case.uri)).encode()


def _function_output(text: str) -> tuple[str, Mapping[str, Any]]:
    """``("response" | "request", object)`` from TestResult.FunctionOutput (a JSON string:
    the event object the function returned, under ``response`` or ``request``)."""
    output = json.loads(text)
    if not isinstance(output, dict):
        raise ValueError("FunctionOutput is not a JSON object")
    for kind in ("response", "request"):
        if isinstance(output.get(kind), dict):
            return kind, output[kind]
    return ("response" if "statusCode" in output else "request"), output


def judge_case(case: EdgeCase, result: Mapping[str, Any]) -> str | None:
    """What is wrong with the function's answer to ``case`` (None: nothing)."""
    error = str(result.get("FunctionErrorMessage") or "")
    if error:
        return f"{case.name} ({case.uri}): the function failed: {error}"
    try:
        kind, answer = _function_output(str(result.get("FunctionOutput") or ""))
    except ValueError as exc:
        return f"{case.name} ({case.uri}): no event object in FunctionOutput ({exc})"
    if case.status is not None:
        status = answer.get("statusCode") if kind == "response" else None
        if status != case.status:
            got = (
                f"status {status}" if kind == "response" else f"the request to {answer.get('uri')}"
            )
            return f"{case.name} ({case.uri}): expected {case.status}, got {got}"
        headers = answer.get("headers", {}) or {}
        if case.location is not None:
            location = str(headers.get("location", {}).get("value", ""))
            if location != case.location:
                return f"{case.name}: expected location {case.location}, got {location or 'none'}"
        cache = str(headers.get("cache-control", {}).get("value", ""))
        if cache != "no-store":
            return f"{case.name}: its {case.status} is cacheable (cache-control {cache or 'none'})"
        return None
    if kind != "request":
        return (
            f"{case.name} ({case.uri}): expected the request, got status {answer.get('statusCode')}"
        )
    uri = answer.get("uri")
    version = (answer.get("querystring", {}) or {}).get("v", {}).get("value")
    if uri != case.origin_uri or version != case.version_query:
        return (
            f"{case.name} ({case.uri}): expected {case.origin_uri}?v={case.version_query}, "
            f"got {uri}?v={version}"
        )
    return None


def check_function_runs(
    function: str,
    cases: EdgeCases,
    results: Sequence[Mapping[str, Any]],
) -> CheckResult:
    """``cloudfront:TestFunction``'s TestResult for each case, in order: no error, the
    answer the pointer calls for, and the highest ComputeUtilization (a warning, not a
    failure, from :data:`UTILIZATION_WARNING`)."""
    problems = [p for c, r in zip(cases.cases, results, strict=True) if (p := judge_case(c, r))]
    utilizations = [_utilization(r) for r in results]
    known = [u for u in utilizations if u is not None]
    peak = max(known) if known else None
    usage = "compute utilization unknown" if peak is None else f"compute utilization ≤ {peak}"
    asked = f"{len(cases.cases)} events on LIVE" + (f" ({cases.unasked})" if cases.unasked else "")
    if problems:
        return CheckResult(
            "edge function runs", function, False, "; ".join(problems) + f"; {usage}"
        )
    warning = ""
    if peak is not None and peak > UTILIZATION_WARNING:
        warning = (
            f"; warning: above {UTILIZATION_WARNING}, close to the time at which CloudFront "
            "throttles the function (503)"
        )
    return CheckResult(
        "edge function runs",
        function,
        True,
        f"answers as the pointer says to {asked}; {usage}{warning}",
    )


def _utilization(result: Mapping[str, Any]) -> int | None:
    try:
        return int(str(result.get("ComputeUtilization", "")))
    except ValueError:
        return None


# --- GetFunction: the deployed bytes --------------------------------------------------


def check_function_code(
    function: str, live_code: bytes, repository_code: bytes | None, path: Path
) -> CheckResult:
    """``cloudfront:GetFunction`` (Stage LIVE) returns the bytes the repository's
    ``edge/viewer_request.js`` holds (``None``: the file is not here to compare)."""
    live = hashlib.sha256(live_code).hexdigest()
    if repository_code is None:
        return CheckResult(
            "edge function code",
            function,
            False,
            f"LIVE is sha256:{live}; {path} is not here to compare (run from the repository)",
        )
    repository = hashlib.sha256(repository_code).hexdigest()
    if live != repository:
        return CheckResult(
            "edge function code",
            function,
            False,
            f"LIVE is sha256:{live}, {path.name} is sha256:{repository}: the deployed function "
            "is not the repository's (redeploy the difusor stack from this checkout)",
        )
    return CheckResult(
        "edge function code", function, True, f"LIVE is {path.name} (sha256:{live[:16]}…)"
    )


# --- HEAD of the signed manifest ------------------------------------------------------


@dataclass(frozen=True)
class SiteAnswer:
    """An HTTP answer: its status and headers (names in lower case)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


def manifest_url(site_url: str) -> str:
    """The signed manifest's unversioned URL on the site."""
    return site_url.rstrip("/") + _MANIFEST_URI


def check_site_answer(
    url: str,
    answer: SiteAnswer | None,
    pointer: Pointer | None,
    pointer_read: bool = True,
    error: str = "",
) -> CheckResult:
    """A ``HEAD`` of the manifest's unversioned URL is answered by the function itself: the
    redirect to the live version (``302``, ``location: /v/N/…``, ``cache-control: no-store``),
    to ``/`` when suspended, or its own ``503`` (with ``retry-after``) before the first
    delivery; never by CloudFront's function-error 503 (``x-cache: FunctionExecutionError``)."""
    check = "site answers"
    if answer is None:
        return CheckResult(check, url, False, f"no answer: {error}")
    headers = {k.lower(): v for k, v in answer.headers.items()}
    cache, location = headers.get("cache-control", ""), headers.get("location", "")
    x_cache = headers.get("x-cache", "")
    failed = next((f for f in FUNCTION_FAILURES if f in x_cache), None)
    if failed:
        return CheckResult(
            check,
            url,
            False,
            f"{answer.status} with x-cache {x_cache!r}: the edge function does not run, every "
            "viewer gets this (run `difusion preflight` again after redeploying the stack)",
        )
    seen = f"{answer.status}" + (f" location {location}" if location else "")
    if answer.status == 503 and not ("retry-after" in headers and cache == "no-store"):
        return CheckResult(
            check, url, False, "503 without the function's retry-after/no-store: not its own"
        )
    if not pointer_read:
        return CheckResult(
            check, url, answer.status in (302, 503), f"{seen} (the pointer could not be read)"
        )
    if pointer is None:
        expected, where = 503, ""
    elif pointer.live is None:
        expected, where = 302, "/"
    else:
        expected, where = 302, f"/v/{pointer.live.version}{_MANIFEST_URI}"
    wrong = []
    if answer.status != expected:
        wrong.append(f"expected {expected}")
    if where and _path_of(location) != where:
        wrong.append(f"expected location {where}")
    if cache != "no-store":
        wrong.append(f"cache-control {cache or 'none'}, not no-store")
    if wrong:
        return CheckResult(check, url, False, f"{seen}: " + "; ".join(wrong))
    by = "the function's own" + (
        " 503 (no pointer yet: expected)" if expected == 503 else " redirect"
    )
    return CheckResult(check, url, True, f"{seen}, no-store: {by}")


def _path_of(location: str) -> str:
    match = re.match(r"^[a-z]+://[^/]+(/.*)?$", location)
    return (match.group(1) or "/") if match else location


# --- the web ACL ----------------------------------------------------------------------


def web_acl_parts(web_acl_arn: str) -> tuple[str, str] | None:
    """``(name, id)`` of ``arn:aws:wafv2:us-east-1:ACCOUNT:global/webacl/NAME/ID``."""
    parts = web_acl_arn.split("/")
    if len(parts) < 4 or ":wafv2:" not in web_acl_arn or parts[-3] != "webacl":
        return None
    return parts[-2], parts[-1]


def check_web_acl(response: Mapping[str, Any], web_acl_arn: str) -> CheckResult:
    """``wafv2:GetWebACL`` (scope CLOUDFRONT): the rate-based rule blocks with 429, and each
    AWS managed rule group the stack deploys is there and enforcing (not overridden to
    Count)."""
    acl = response.get("WebACL", {})
    subject = str(acl.get("Name") or web_acl_arn)
    rules = list(acl.get("Rules", []) or [])
    problems, rate = [], None
    for rule in rules:
        statement = rule.get("Statement", {})
        if "RateBasedStatement" in statement:
            code = (
                rule.get("Action", {})
                .get("Block", {})
                .get("CustomResponse", {})
                .get("ResponseCode")
            )
            if code == RATE_LIMITED_STATUS:
                rate = statement["RateBasedStatement"].get("Limit")
    if rate is None:
        problems.append(
            f"no rate-based rule blocking with {RATE_LIMITED_STATUS} (a verifier cut short "
            "would read the site's answers as missing files)"
        )
    groups = {
        str(r["Statement"]["ManagedRuleGroupStatement"].get("Name")): r
        for r in rules
        if r.get("Statement", {}).get("ManagedRuleGroupStatement", {}).get("VendorName") == "AWS"
    }
    for name in STACK_MANAGED_RULE_GROUPS:
        if name not in groups:
            problems.append(f"no {name}")
        elif "Count" in (groups[name].get("OverrideAction", {}) or {}):
            problems.append(f"{name} only counts (OverrideAction Count)")
    if problems:
        return CheckResult("waf rules", subject, False, "; ".join(problems))
    return CheckResult(
        "waf rules",
        subject,
        True,
        f"rate limit {rate} per IP answers {RATE_LIMITED_STATUS}; "
        f"{len(STACK_MANAGED_RULE_GROUPS)} AWS managed rule groups enforced",
    )


# --- the access-log bucket ------------------------------------------------------------


def log_bucket_name(distribution: Mapping[str, Any]) -> str | None:
    """The bucket of the distribution's standard logs (``Logging.Bucket`` is
    ``NAME.s3.amazonaws.com``); None when logging is off."""
    config = distribution.get("Distribution", {}).get("DistributionConfig", {})
    logging = config.get("Logging", {}) or {}
    if not logging.get("Enabled") or not logging.get("Bucket"):
        return None
    match = _S3_LOG_BUCKET.match(str(logging["Bucket"]))
    return match.group("name") if match else str(logging["Bucket"])


def check_log_bucket_ownership(response: Mapping[str, Any] | None, bucket: str) -> CheckResult:
    """``s3:GetBucketOwnershipControls`` of the log bucket (None: none set, which S3 treats
    as ObjectWriter): ACLs enabled, as CloudFront's standard logs need."""
    rules = (response or {}).get("OwnershipControls", {}).get("Rules", [])
    owned = [str(r.get("ObjectOwnership")) for r in rules] or ["none set (ObjectWriter)"]
    if all(o in ACL_OWNERSHIPS or o.startswith("none set") for o in owned):
        return CheckResult(
            "log bucket ownership",
            bucket,
            True,
            f"{', '.join(owned)}: ACLs enabled, CloudFront can deliver its standard logs",
        )
    return CheckResult(
        "log bucket ownership",
        bucket,
        False,
        f"{', '.join(owned)}: ACLs disabled, so CloudFront cannot deliver its standard logs "
        "(the stack sets ObjectWriter on this bucket: redeploy it)",
    )


# --- the account ----------------------------------------------------------------------


def check_distributions_listed(
    response: Mapping[str, Any] | None, distribution_id: str, error: str = ""
) -> CheckResult:
    """``cloudfront:ListDistributions``: CloudFront answers for this account, and lists the
    site's distribution. A new account may have to be verified by AWS Support before it
    can create distributions (AccessDenied "Your account must be verified…")."""
    check = "cloudfront account"
    if response is None:
        hint = (
            ": the account must be verified before it can have distributions; open a case "
            "with AWS Support quoting this message, before the drills"
            if "verif" in error.lower()
            else ""
        )
        return CheckResult(
            check, distribution_id, False, f"cannot list distributions: {error}{hint}"
        )
    listing = response.get("DistributionList", {})
    ids = [str(d.get("Id")) for d in listing.get("Items", []) or []]
    if distribution_id in ids:
        return CheckResult(
            check, distribution_id, True, f"lists {len(ids)} distribution(s), this one among them"
        )
    more = " (more pages not read)" if listing.get("IsTruncated") else ""
    return CheckResult(
        check,
        distribution_id,
        bool(listing.get("IsTruncated")),
        f"lists {len(ids)} distribution(s), not {distribution_id}{more}",
    )

"""Preflight's verdicts on the institute's deployment as AWS runs it: what the functions
need from the account beyond their own permissions. Pure functions over AWS's responses
(as boto3 returns them, or as the API reference shows them); none makes a call.

- the origin bucket sends its events to EventBridge (ingest hears of a package no other way);
- the deployed layer holds ``awscrt`` (SigV4A, which the KeyValueStore's data plane needs);
- the account's Lambda concurrency fits one delivery per difusor plus ingest, sign, monitor;
- the Region's opt-in status, and what it means for STS and the difusores.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from typing import Any

from difusion.preflight.checks import CheckResult
from difusion.topology import DIFUSOR_REGION, concurrency_needed

# Lambda's default "Concurrent executions" quota per Region, which new accounts start below
# (Lambda quotas page).
DEFAULT_CONCURRENCY = 1000
# Regions launched before 20 March 2019, enabled by default in every account; any later one
# is an opt-in Region (Account Management reference, "Enable or disable AWS Regions in your
# account"). The list is closed: new Regions are all opt-in.
DEFAULT_REGIONS = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "sa-east-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-central-1",
        "eu-north-1",
        "ap-south-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-southeast-1",
        "ap-southeast-2",
    }
)
AWSCRT_PACKAGE = "python/awscrt/__init__.py"
AWSCRT_EXTENSION = "python/_awscrt"


def check_origin_notifications(response: Mapping[str, Any], bucket: str) -> CheckResult:
    """s3:GetBucketNotificationConfiguration: ``EventBridgeConfiguration`` present (an empty
    object when on; absent when off)."""
    if "EventBridgeConfiguration" in response:
        return CheckResult(
            "origin notifications", bucket, True, "events go to EventBridge (feeds ingest)"
        )
    return CheckResult(
        "origin notifications",
        bucket,
        False,
        "EventBridge notifications are off: no package dropped in incoming/ reaches ingest. "
        "The stack turns them on (event_bridge_enabled); redeploy it, or turn them on in the "
        "bucket's Properties → Event notifications",
    )


def layer_version_arns(configuration: Mapping[str, Any]) -> list[str]:
    """A FunctionConfiguration's (ListFunctions, GetFunction's ``Configuration``)
    ``Layers[].Arn``: the layer versions it runs."""
    layers = configuration.get("Layers", [])
    return [str(layer["Arn"]) for layer in layers if layer.get("Arn")]


def layer_listing(archive: bytes) -> list[str]:
    """The names in a layer's zip (GetLayerVersion's ``Content.Location``); ValueError if
    what was downloaded is not a zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as layer:
            return layer.namelist()
    except zipfile.BadZipFile as exc:
        raise ValueError(f"the layer's download is not a zip archive: {exc}") from exc


def check_layer_awscrt(
    function_name: str, layers: Mapping[str, list[str] | None], error: str = ""
) -> CheckResult:
    """Whether one of the function's layers (``layer version ARN -> listing``, None when it
    could not be read) ships ``awscrt`` and its compiled extension under ``python/``."""
    subject = function_name
    if error:
        return CheckResult("layer awscrt", subject, False, f"could not read it: {error}")
    if not layers:
        return CheckResult(
            "layer awscrt", subject, False, "the function has no layer: it cannot import difusion"
        )
    for arn, names in layers.items():
        if names is None:
            continue
        package = AWSCRT_PACKAGE in names
        extension = any(n.startswith(AWSCRT_EXTENSION) and n.endswith(".so") for n in names)
        if package and extension:
            version = _dist_version(names)
            return CheckResult(
                "layer awscrt", subject, True, f"{arn} ships awscrt{version} (SigV4A)"
            )
    listed = ", ".join(layers)
    return CheckResult(
        "layer awscrt",
        subject,
        False,
        f"no layer ({listed}) ships awscrt with its compiled extension: the functions cannot "
        "sign with SigV4A, so every switch of a site's version pointer (KeyValueStore) fails. "
        "Rebuild the layer (`make layer`, pinned awscrt for the functions' platform) and redeploy",
    )


def _dist_version(names: list[str]) -> str:
    for name in names:
        top = name.split("/")[1] if name.count("/") >= 1 else ""
        if top.startswith("awscrt-") and top.endswith(".dist-info"):
            return " " + top.removeprefix("awscrt-").removesuffix(".dist-info")
    return ""


def check_concurrency(settings: Mapping[str, Any], difusores: int, region: str) -> CheckResult:
    """lambda:GetAccountSettings: the unreserved concurrency (what functions without reserved
    concurrency share) covers what a night can ask for at once
    (:func:`difusion.topology.concurrency_needed`: a replicate per delivery group, two per
    difusor, plus ingest, sign and the monitor). New accounts start with reduced quotas
    (Lambda quotas page)."""
    limit = settings.get("AccountLimit", {})
    total = int(limit.get("ConcurrentExecutions", 0))
    unreserved = int(limit.get("UnreservedConcurrentExecutions", total))
    needed = concurrency_needed(difusores)
    subject = f"lambda in {region}"
    counts = f"{unreserved} unreserved of {total} concurrent executions"
    if unreserved >= needed:
        return CheckResult(
            "lambda concurrency",
            subject,
            True,
            f"{counts}; {needed} needed (2 delivery groups × {difusores} difusores + ingest, "
            "sign, monitor)",
        )
    return CheckResult(
        "lambda concurrency",
        subject,
        False,
        f"{counts}, but {needed} are needed (2 delivery groups × {difusores} difusores + "
        "ingest, sign, monitor): "
        "deliveries would be throttled. New accounts start with reduced quotas: in Service "
        f"Quotas → AWS Lambda, request 'Concurrent executions' in {region} of at least "
        f"{needed} (the default is {DEFAULT_CONCURRENCY}), or release reserved concurrency",
    )


def check_region_opt_in(
    region: str, response: Mapping[str, Any] | None, error: str = ""
) -> CheckResult:
    """account:GetRegionOptStatus for the institute's Region (or, when it cannot be read,
    the documented default Regions): in an opt-in Region, temporary credentials work only
    where the accounts involved enabled it ("Manage AWS STS in an AWS Region")."""
    status = str((response or {}).get("RegionOptStatus", ""))
    subject = f"region {region}"
    if not status:
        # The institute's stack answered preflight from this Region, so it is enabled here.
        status = "ENABLED_BY_DEFAULT" if region in DEFAULT_REGIONS else "ENABLED"
        source = (
            " (from the documented default Regions, and the stack answering from it; "
            f"GetRegionOptStatus: {error})"
        )
    else:
        source = ""
    if status == "ENABLED_BY_DEFAULT":
        return CheckResult(
            "sts region",
            subject,
            True,
            f"enabled by default in every account{source}: difusores need do nothing for STS",
        )
    if status != "ENABLED":
        return CheckResult(
            "sts region",
            subject,
            False,
            f"{region} is {status} in this account: the functions cannot run until it is "
            "ENABLED (Account → AWS Regions, or account:EnableRegion)",
        )
    return CheckResult(
        "sts region",
        subject,
        True,
        f"an opt-in Region, enabled here{source}. The functions assume the difusores' "
        f"delivery roles at the {DIFUSOR_REGION} regional STS endpoint, which every account "
        f"has, so no difusor needs to enable {region}; credentials for a difusor's role issued "
        f"by STS in {region} would need {region} enabled in the difusor's account too",
    )

"""The one place where AWS clients and adapters are built, once per execution environment.

Endpoints and credentials come from the standard AWS configuration chain: on AWS the
function's role; on the embedded default ``AWS_ENDPOINT_URL`` names the local emulator. The
code is the same either way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from botocore.config import Config

from difusion.adapters.difusor_site import DifusorSites
from difusion.adapters.keystore import SecretsManagerKeyStore
from difusion.adapters.ledger import Ledger
from difusion.adapters.origin import OriginStore
from difusion.adapters.public_site import HttpSiteReader
from difusion.adapters.queues import DeliveryQueue, FailedMessages, SignQueue, StepInvocation
from difusion.adapters.registry import DifusorRegistry
from difusion.adapters.sessions import new_session
from difusion.services.continuity import ContinuityService, MonitorPolicy
from difusion.services.ingest import IngestService
from difusion.services.replicate import ReplicateService
from difusion.services.sign import SignService
from difusion.settings import (
    CommonSettings,
    IngestSettings,
    MonitorSettings,
    ReplicateSettings,
    SignSettings,
)
from difusion.topology import DIFUSOR_REGION, STEP_TIMEOUT_SHARE


def wall_clock() -> datetime:
    return datetime.now(UTC)


_clock: Callable[[], datetime] = wall_clock


def utc_now() -> datetime:
    """The time every service reads. On AWS, the wall clock; the embedded default may
    drive it instead (:func:`use_clock`), so a test moves the night's time rather than
    waiting for it. Services hold this function, not the clock it reads."""
    return _clock()


def use_clock(clock: Callable[[], datetime]) -> None:
    """Make every service (built already or not) read ``clock``. Only the embedded default
    calls this; nothing deployed does."""
    global _clock
    _clock = clock


def client(service: str, max_pool: int = 10) -> Any:
    config = Config(max_pool_connections=max_pool, retries={"mode": "standard"})
    return new_session().client(service, config=config)


def delivery_sts() -> Any:
    """The STS client that assumes the difusores' delivery roles: the regional endpoint of
    the sites' Region (us-east-1), not the institute's. Every account has that Region enabled,
    so AssumeRole works for every difusor even when the institute runs in an opt-in Region
    (mx-central-1): STS in an opt-in Region answers only for accounts that enabled it. A
    regional endpoint's session tokens are valid in every Region (version 2), the kind SigV4A
    to the KeyValueStore needs ("Manage AWS STS in an AWS Region", IAM user guide). The
    regional endpoint is asked for here, whatever ``AWS_STS_REGIONAL_ENDPOINTS`` says: in
    ``legacy`` mode us-east-1 would mean the global endpoint and its version 1 tokens."""
    session = new_session()
    session._session.set_config_variable("sts_regional_endpoints", "regional")
    config = Config(max_pool_connections=10, retries={"mode": "standard"})
    return session.client("sts", region_name=DIFUSOR_REGION, config=config)


def dynamodb() -> Any:
    return new_session().resource("dynamodb")


@lru_cache(maxsize=8)
def failed_messages(settings: CommonSettings) -> FailedMessages:
    """Brings a function's failed messages back after the retry schedule's delay."""
    return FailedMessages(client("sqs"), settings.retry)


def step_invocation(settings: CommonSettings, context: Any) -> StepInvocation:
    """One invocation of a queue-driven step: its failures recorded, its messages returned,
    what it holds renewed while it works. Another attempt's in-progress record lasts one
    hold past its last renewal; the step's own timeout is a share of the function's."""
    remaining = context.get_remaining_time_in_millis() / 1000
    return StepInvocation(
        failed_messages(settings),
        settings.max_attempts,
        in_progress_seconds=min(remaining, settings.hold.hold_seconds),
        hold=settings.hold,
        timeout_seconds=remaining * STEP_TIMEOUT_SHARE,
    )


@lru_cache(maxsize=4)
def ingest_service(settings: IngestSettings) -> IngestService:
    return IngestService(
        settings,
        OriginStore(client("s3", settings.staging_concurrency + 2), settings.origin_bucket),
        Ledger(dynamodb(), settings.ledger_table, settings.election),
        SignQueue(client("sqs"), settings.sign_queue_url),
        clock=utc_now,
    )


@lru_cache(maxsize=4)
def sign_service(settings: SignSettings) -> SignService:
    return SignService(
        OriginStore(client("s3"), settings.origin_bucket),
        Ledger(dynamodb(), settings.ledger_table, settings.election),
        DifusorRegistry(dynamodb(), settings.registry_table),
        SecretsManagerKeyStore(client("secretsmanager"), settings.signing_secret_id),
        DeliveryQueue(client("sqs"), settings.delivery_queue_url),
        window=settings.window,
        clock=utc_now,
    )


@lru_cache(maxsize=4)
def replicate_service(settings: ReplicateSettings) -> ReplicateService:
    return ReplicateService(
        OriginStore(client("s3"), settings.origin_bucket),
        Ledger(dynamodb(), settings.ledger_table, settings.election),
        DifusorRegistry(dynamodb(), settings.registry_table),
        DifusorSites(
            delivery_sts(),
            f"difusion-{settings.election}",
            settings.copy_concurrency + 2,
            clock=utc_now,
        ),
        window=settings.window,
        copy_concurrency=settings.copy_concurrency,
        lease_seconds=settings.lease_seconds,
        retire_wait_seconds=settings.retire_wait_seconds,
        shards=settings.shards,
        pinned_key=settings.public_key,
        clock=utc_now,
    )


@lru_cache(maxsize=4)
def continuity_service(settings: MonitorSettings) -> ContinuityService:
    return ContinuityService(
        OriginStore(client("s3"), settings.origin_bucket),
        Ledger(dynamodb(), settings.ledger_table, settings.election),
        DifusorRegistry(dynamodb(), settings.registry_table),
        DifusorSites(delivery_sts(), f"difusion-monitor-{settings.election}", 4, clock=utc_now),
        HttpSiteReader(settings.http_timeout_seconds),
        DeliveryQueue(client("sqs"), settings.delivery_queue_url),
        window=settings.window,
        policy=MonitorPolicy(
            period=timedelta(seconds=settings.period_seconds),
            sample_size=settings.sample_size,
            suspend_after=settings.suspend_after,
            upstream_stall=timedelta(seconds=settings.upstream_stall_seconds),
            retention=timedelta(days=settings.retention_days),
            institute=settings.institute_name,
            time_zone=settings.time_zone,
            list_url=settings.difusores_list_url,
            pinned_key=settings.public_key,
            catch_up_after=timedelta(seconds=settings.catch_up_after_seconds),
        ),
        clock=utc_now,
    )

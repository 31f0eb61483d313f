"""Typed configuration of each function, read once from its environment at cold start.

Handlers build these from ``os.environ``; everything below them receives the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from difusion.adapters.heartbeat import HoldTimes
from difusion.archive import ArchiveLimits
from difusion.errors import KeyFormatError
from difusion.signing import PublicKey
from difusion.times import parse_iso
from difusion.topology import (
    DEFAULT_MAX_ATTEMPTS,
    HEARTBEAT_SECONDS,
    REPLICATE,
    RETRY,
    STEP_HOLD_SECONDS,
    RetrySchedule,
)
from difusion.window import PublicationWindow


class SettingsError(ValueError):
    """A missing or invalid configuration value, named so an operator can fix it."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required")
    return value


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 1, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 <= value <= 43_200:  # SQS's maximum visibility timeout: 12 hours
        raise SettingsError(f"{name} must be 0..43200 seconds, got {raw!r}")
    return value


def _retry(env: Mapping[str, str]) -> RetrySchedule:
    """``RETRY_BASE_SECONDS``/``RETRY_CAP_SECONDS``: when a failed message returns. The
    stacks leave them at ``topology.RETRY``; the accelerated demo scales them."""
    return RetrySchedule(
        base_seconds=_seconds(env, "RETRY_BASE_SECONDS", RETRY.base_seconds),
        cap_seconds=_seconds(env, "RETRY_CAP_SECONDS", RETRY.cap_seconds),
    )


def _hold(env: Mapping[str, str]) -> HoldTimes:
    """``STEP_HOLD_SECONDS``/``STEP_HEARTBEAT_SECONDS``: how long a step holds its message,
    idempotency record and lease at a time, and how often it renews them. The stacks leave
    them at the topology's; the accelerated embedded default scales them."""
    try:
        return HoldTimes(
            hold_seconds=_int(env, "STEP_HOLD_SECONDS", STEP_HOLD_SECONDS, maximum=43_200),
            every_seconds=_seconds(env, "STEP_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS),
        )
    except ValueError as exc:
        raise SettingsError(f"STEP_HOLD_SECONDS/STEP_HEARTBEAT_SECONDS: {exc}") from None


def _pinned_key(env: Mapping[str, str]) -> PublicKey | None:
    """``PREP_PUBLIC_KEY``: the institute's key (minisign key string). When set, nothing is
    published or accepted as verified under any other key, whatever ``keys/prep.pub`` in
    the origin says."""
    raw = env.get("PREP_PUBLIC_KEY", "").strip()
    if not raw:
        return None
    try:
        return PublicKey.from_text(raw)
    except KeyFormatError as exc:
        raise SettingsError(f"PREP_PUBLIC_KEY: {exc}") from None


def _window(env: Mapping[str, str]) -> PublicationWindow:
    moments = {}
    for name in ("WINDOW_OPENING", "WINDOW_CLOSING"):
        raw = _required(env, name)
        try:
            moment = parse_iso(raw)
        except ValueError:
            raise SettingsError(f"{name} must be an ISO date-time, got {raw!r}") from None
        if moment.tzinfo is None:
            raise SettingsError(f"{name} must carry its UTC offset, got {raw!r}")
        moments[name] = moment
    grace = timedelta(seconds=_int(env, "WINDOW_GRACE_SECONDS", 900, minimum=0))
    try:
        return PublicationWindow(moments["WINDOW_OPENING"], moments["WINDOW_CLOSING"], grace)
    except ValueError as exc:
        raise SettingsError(f"WINDOW_OPENING/WINDOW_CLOSING: {exc}") from None


# The functions that read the window, and those that trust only the pinned key.
_WINDOWED = frozenset({"sign", "replicate", "monitor"})
_PINNED = frozenset({"replicate", "monitor"})


def policy_environment(
    function: str | None,
    *,
    election_id: str,
    time_zone: str,
    opening: datetime,
    closing: datetime,
    grace_seconds: int,
    max_attempts: int,
    public_key: str | None = None,
    retire_wait_seconds: int | None = None,
) -> dict[str, str]:
    """The election's policy as ``function`` reads it (the ``*Settings.from_env`` below):
    the election, its time zone, the window and its grace, the receive count, the pinned
    key, replicate's wait for a retired version. One place for the stacks and the CLI
    (``InstituteConfig.environment``, per function) and the embedded default (``function``
    ``None``: every function's, as it gives them one environment)."""
    env = {
        "ELECTION_ID": election_id,
        "ELECTION_TIME_ZONE": time_zone,
        # Each step's queue lets a message be received this often: the last attempt is
        # recorded as failed in the ledger when it fails too.
        "MAX_RECEIVE_COUNT": str(max_attempts),
    }
    if function is None or function in _WINDOWED:
        env |= {
            "WINDOW_OPENING": opening.isoformat(),
            "WINDOW_CLOSING": closing.isoformat(),
            "WINDOW_GRACE_SECONDS": str(grace_seconds),
        }
    if public_key and (function is None or function in _PINNED):
        env["PREP_PUBLIC_KEY"] = public_key
    if retire_wait_seconds is not None and function in (None, "replicate"):
        env["RETIRE_WAIT_SECONDS"] = str(retire_wait_seconds)
    return env


@dataclass(frozen=True)
class CommonSettings:
    election: str
    time_zone: str
    origin_bucket: str
    ledger_table: str
    idempotency_table: str
    retry: RetrySchedule
    # The step's queue's maxReceiveCount: its last attempt is recorded as final.
    max_attempts: int
    # What the step holds while it works, how long at a time and how often renewed.
    hold: HoldTimes

    @staticmethod
    def common_from_env(env: Mapping[str, str]) -> dict[str, Any]:
        time_zone = env.get("ELECTION_TIME_ZONE", "America/Mazatlan")
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"ELECTION_TIME_ZONE {time_zone!r} is not a time zone") from None
        return {
            "election": _required(env, "ELECTION_ID"),
            "time_zone": time_zone,
            "origin_bucket": _required(env, "ORIGIN_BUCKET"),
            "ledger_table": _required(env, "LEDGER_TABLE"),
            "idempotency_table": _required(env, "IDEMPOTENCY_TABLE"),
            "retry": _retry(env),
            "max_attempts": _int(env, "MAX_RECEIVE_COUNT", DEFAULT_MAX_ATTEMPTS),
            "hold": _hold(env),
        }


@dataclass(frozen=True)
class IngestSettings(CommonSettings):
    sign_queue_url: str
    limits: ArchiveLimits
    staging_concurrency: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IngestSettings:
        defaults = ArchiveLimits()
        limits = ArchiveLimits(
            max_total_bytes=_int(env, "ARCHIVE_MAX_TOTAL_BYTES", defaults.max_total_bytes),
            max_file_bytes=_int(env, "ARCHIVE_MAX_FILE_BYTES", defaults.max_file_bytes),
            max_entries=_int(env, "ARCHIVE_MAX_ENTRIES", defaults.max_entries),
            max_ratio=float(_int(env, "ARCHIVE_MAX_RATIO", int(defaults.max_ratio))),
            ratio_floor_bytes=_int(env, "ARCHIVE_RATIO_FLOOR_BYTES", defaults.ratio_floor_bytes),
        )
        return cls(
            **cls.common_from_env(env),
            sign_queue_url=_required(env, "SIGN_QUEUE_URL"),
            limits=limits,
            staging_concurrency=_int(env, "STAGING_CONCURRENCY", 16),
        )


@dataclass(frozen=True)
class SignSettings(CommonSettings):
    registry_table: str
    delivery_queue_url: str
    signing_secret_id: str
    window: PublicationWindow

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SignSettings:
        return cls(
            **cls.common_from_env(env),
            registry_table=_required(env, "REGISTRY_TABLE"),
            delivery_queue_url=_required(env, "DELIVERY_QUEUE_URL"),
            signing_secret_id=_required(env, "SIGNING_SECRET_ID"),
            window=_window(env),
        )


# A margin for the KeyValueStore's undocumented propagation (docs/serving.md 5.1); at most
# a third of replicate's timeout, as the wait happens inside the invocation before copying.
RETIRE_WAIT_SECONDS = 60
RETIRE_WAIT_MAX_SECONDS = REPLICATE.timeout_seconds // 3


@dataclass(frozen=True)
class ReplicateSettings(CommonSettings):
    registry_table: str
    lease_seconds: int
    copy_concurrency: int
    shards: int
    window: PublicationWindow
    public_key: PublicKey | None
    retire_wait_seconds: int = RETIRE_WAIT_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReplicateSettings:
        return cls(
            **cls.common_from_env(env),
            registry_table=_required(env, "REGISTRY_TABLE"),
            # A delivery's lease lasts one hold and its heartbeat renews it while it works:
            # a worker that died holds it no longer than that (a retry of the same delivery
            # takes it over at once anyway), a live one never loses it.
            lease_seconds=_int(env, "DELIVERY_LEASE_SECONDS", STEP_HOLD_SECONDS),
            copy_concurrency=_int(env, "COPY_CONCURRENCY", 16),
            shards=_int(env, "REPLICATE_SHARDS", 1),
            window=_window(env),
            public_key=_pinned_key(env),
            # How long a retired version stays out of use before its slot is rewritten:
            # the KeyValueStore's propagation to every edge is not documented
            # (docs/serving.md 1.3, 2.4); the embedded default's is immediate.
            retire_wait_seconds=_int(
                env,
                "RETIRE_WAIT_SECONDS",
                RETIRE_WAIT_SECONDS,
                minimum=0,
                maximum=RETIRE_WAIT_MAX_SECONDS,
            ),
        )


@dataclass(frozen=True)
class MonitorSettings(CommonSettings):
    registry_table: str
    delivery_queue_url: str
    window: PublicationWindow
    period_seconds: int
    sample_size: int
    suspend_after: int
    upstream_stall_seconds: int
    retention_days: int
    institute_name: str
    difusores_list_url: str
    http_timeout_seconds: int
    public_key: PublicKey | None
    catch_up_after_seconds: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MonitorSettings:
        return cls(
            **cls.common_from_env(env),
            registry_table=_required(env, "REGISTRY_TABLE"),
            delivery_queue_url=_required(env, "DELIVERY_QUEUE_URL"),
            window=_window(env),
            period_seconds=_int(env, "MONITOR_PERIOD_SECONDS", 900),
            sample_size=_int(env, "MONITOR_SAMPLE_SIZE", 32, minimum=0),
            suspend_after=_int(env, "MONITOR_SUSPEND_AFTER", 3),
            upstream_stall_seconds=_int(env, "UPSTREAM_STALL_SECONDS", 1200),
            retention_days=_int(env, "RETENTION_DAYS", 3650),
            institute_name=env.get(
                "INSTITUTE_NAME", "Instituto Estatal Electoral de Baja California Sur"
            ),
            difusores_list_url=_required(env, "DIFUSORES_LIST_URL"),
            http_timeout_seconds=_int(env, "MONITOR_HTTP_TIMEOUT_SECONDS", 10),
            public_key=_pinned_key(env),
            # A delivery's time: the replicate function's timeout (its lease, renewed while
            # it works, says whether one still runs).
            catch_up_after_seconds=_int(
                env, "CATCH_UP_AFTER_SECONDS", REPLICATE.timeout_seconds, minimum=1
            ),
        )

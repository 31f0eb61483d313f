"""Typed deployment configuration, read from one JSON file and validated at synth.

The institute's file (``config/institute.json``) describes the election and the registered
difusores; a difusor's file (``config/difusor.json``) describes its site and what the
institute sent it. ``cdk synth -c institute_config=PATH -c difusor_config=PATH`` picks
others. Every error names the field and what is wrong with it.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from difusion.settings import RETIRE_WAIT_MAX_SECONDS, RETIRE_WAIT_SECONDS, policy_environment
from difusion.topology import (
    DIFUSOR_REGION,
    delivery_role_name,
    monitor_role_name,
    publisher_role_name,
    role_arn,
)
from difusion.viewer_headers import OriginInvalid, ViewerHeaders, portal_origin

_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_ELECTION = re.compile(r"^[A-Z0-9]+(_[A-Z0-9]+)*$")
_DIFUSOR_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9+=,.@:/-]{16,1224}$")
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
# Role names carry the election (topology.election_slug), so a drill (its own election
# id) deploys beside the election in the same accounts; 40 characters keep them under
# IAM's 64.
_ELECTION_MAX = 40


class ConfigError(ValueError):
    """A configuration value that cannot be deployed, named with its field."""


def _get(raw: dict[str, Any], key: str, where: str) -> Any:
    if key not in raw or raw[key] in (None, ""):
        raise ConfigError(f"{where}.{key} is required")
    return raw[key]


def _field(raw: dict[str, Any], key: str, where: str, pattern: re.Pattern[str], what: str) -> str:
    """A required string field that must match ``pattern`` (``what`` says how)."""
    return _match(str(_get(raw, key, where)), pattern, f"{where}.{key}", what)


def _match(value: Any, pattern: re.Pattern[str], where: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ConfigError(f"{where} must be {what}, got {value!r}")
    return value


@dataclass(frozen=True)
class RegisteredDifusor:
    """A difusor the institute delivers to: its id and the delivery role in its account."""

    difusor_id: str
    account: str
    election_id: str

    @property
    def role_arn(self) -> str:
        return role_arn(self.account, delivery_role_name(self.election_id))


@dataclass(frozen=True)
class PublicationWindow:
    """When publication opens and closes, in the election's time zone."""

    opening: datetime
    closing: datetime


@dataclass(frozen=True)
class MonitorConfig:
    """The continuity monitor and the close: how often, how much, for how long."""

    institute_name: str = "Instituto Estatal Electoral de Baja California Sur"
    difusores_list_url: str = "https://prep.example.org/difusores.html"
    period_minutes: int = 15
    sample_size: int = 32
    suspend_after_periods: int = 3
    upstream_stall_minutes: int = 20
    retention_days: int = 3650

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MonitorConfig:
        where = "institute.monitor"
        defaults = cls()
        ranges = {
            "period_minutes": (1, 60),
            "sample_size": (0, 10_000),
            "suspend_after_periods": (1, 10),
            "upstream_stall_minutes": (5, 120),
            "retention_days": (1, 36_500),
        }
        values: dict[str, Any] = {}
        for key, (low, high) in ranges.items():
            value = raw.get(key, getattr(defaults, key))
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"{where}.{key} must be an integer {low}..{high}, got {value!r}")
            values[key] = value
        url = str(raw.get("difusores_list_url", defaults.difusores_list_url))
        if not url.startswith("https://"):
            raise ConfigError(f"{where}.difusores_list_url must be an https URL, got {url!r}")
        unknown = set(raw) - set(ranges) - {"difusores_list_url", "institute_name"}
        if unknown:
            raise ConfigError(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
        return cls(
            institute_name=str(raw.get("institute_name", defaults.institute_name)),
            difusores_list_url=url,
            **values,
        )

    def environment(self) -> dict[str, str]:
        """The monitor function's settings (``difusion.settings.MonitorSettings``)."""
        return {
            "INSTITUTE_NAME": self.institute_name,
            "DIFUSORES_LIST_URL": self.difusores_list_url,
            "MONITOR_PERIOD_SECONDS": str(self.period_minutes * 60),
            "MONITOR_SAMPLE_SIZE": str(self.sample_size),
            "MONITOR_SUSPEND_AFTER": str(self.suspend_after_periods),
            "UPSTREAM_STALL_SECONDS": str(self.upstream_stall_minutes * 60),
            "RETENTION_DAYS": str(self.retention_days),
        }


@dataclass(frozen=True)
class InstituteConfig:
    account: str
    region: str
    election_id: str
    time_zone: str
    official: bool
    window: PublicationWindow
    difusores: tuple[RegisteredDifusor, ...]
    alarm_email: str | None = None
    grace_seconds: int = 900
    delivery_max_attempts: int = 5
    archive_limits: dict[str, int] = field(default_factory=dict)
    monitor: MonitorConfig = field(default_factory=lambda: MonitorConfig())
    # The institute's minisign key string (prep.pub's second line). When set, replicate and
    # the monitor trust only it, not whatever keys/prep.pub in the origin says.
    public_key: str | None = None
    # How long replicate keeps a retired version out of use before rewriting its slot: a
    # margin for the KeyValueStore's propagation (docs/serving.md 2.4, 5.1).
    retire_wait_seconds: int = RETIRE_WAIT_SECONDS

    def environment(self, function: str) -> dict[str, str]:
        """What this config says to ``function`` (ingest, sign, replicate, monitor): the
        election, the window, the receive count, the pinned key, the monitor's policy. The
        stacks add the deployed resources' names; the CLI adds them from the stack's
        outputs: one place, so a function run by the CLI reads the settings it has on AWS."""
        env = policy_environment(
            function,
            election_id=self.election_id,
            time_zone=self.time_zone,
            opening=self.window.opening,
            closing=self.window.closing,
            grace_seconds=self.grace_seconds,
            max_attempts=self.delivery_max_attempts,
            public_key=self.public_key,
            retire_wait_seconds=self.retire_wait_seconds,
        )
        if function == "monitor":
            env |= self.monitor.environment()
        return env

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> InstituteConfig:
        where = "institute"
        election_id = _election(raw, where)
        time_zone = str(_get(raw, "time_zone", where))
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{where}.time_zone {time_zone!r} is not an IANA time zone") from None
        window = _window(_get(raw, "window", where), zone, bool(raw.get("official", True)))
        difusores = []
        seen: set[str] = set()
        for index, entry in enumerate(raw.get("difusores", [])):
            at = f"{where}.difusores[{index}]"
            difusor_id = _match(
                _get(entry, "id", at),
                _DIFUSOR_ID,
                f"{at}.id",
                "lower-case letters, digits and hyphens (at most 40)",
            )
            if difusor_id in seen:
                raise ConfigError(f"{at}.id {difusor_id!r} appears twice")
            seen.add(difusor_id)
            account = _match(
                str(_get(entry, "account", at)),
                _ACCOUNT,
                f"{at}.account",
                "a 12-digit AWS account id",
            )
            difusores.append(RegisteredDifusor(difusor_id, account, election_id))
        grace = raw.get("window", {}).get("grace_minutes", 15)
        if not isinstance(grace, int) or not 0 <= grace <= 120:
            raise ConfigError(f"{where}.window.grace_minutes must be 0..120, got {grace!r}")
        attempts = raw.get("delivery_max_attempts", 5)
        if not isinstance(attempts, int) or not 1 <= attempts <= 20:
            raise ConfigError(f"{where}.delivery_max_attempts must be 1..20, got {attempts!r}")
        retire_wait = raw.get("retire_wait_seconds", RETIRE_WAIT_SECONDS)
        if (
            not isinstance(retire_wait, int)
            or isinstance(retire_wait, bool)
            or not 0 <= retire_wait <= RETIRE_WAIT_MAX_SECONDS
        ):
            raise ConfigError(
                f"{where}.retire_wait_seconds must be 0..{RETIRE_WAIT_MAX_SECONDS} (the wait "
                f"runs inside replicate's invocation), got {retire_wait!r}"
            )
        limits = raw.get("archive_limits", {})
        allowed = {
            "max_total_bytes",
            "max_file_bytes",
            "max_entries",
            "max_ratio",
            "ratio_floor_bytes",
        }
        for key, value in limits.items():
            if key not in allowed:
                raise ConfigError(
                    f"{where}.archive_limits.{key} is not a limit ({', '.join(sorted(allowed))})"
                )
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}.archive_limits.{key} must be a positive integer")
        return cls(
            account=_field(raw, "account", where, _ACCOUNT, "a 12-digit AWS account id"),
            region=_field(raw, "region", where, _REGION, "an AWS region such as us-west-2"),
            election_id=election_id,
            time_zone=time_zone,
            official=bool(raw.get("official", True)),
            window=window,
            difusores=tuple(difusores),
            alarm_email=raw.get("alarm_email") or None,
            grace_seconds=grace * 60,
            delivery_max_attempts=attempts,
            archive_limits=dict(limits),
            monitor=MonitorConfig.from_json(raw.get("monitor", {})),
            public_key=_public_key(raw.get("public_key"), f"{where}.public_key"),
            retire_wait_seconds=retire_wait,
        )

    @property
    def publisher_role_arn(self) -> str:
        return role_arn(self.account, publisher_role_name(self.election_id))

    @property
    def monitor_role_arn(self) -> str:
        return role_arn(self.account, monitor_role_name(self.election_id))


def _election(raw: dict[str, Any], where: str) -> str:
    election = _field(raw, "election_id", where, _ELECTION, "upper-case words joined by _")
    if len(election) > _ELECTION_MAX:
        raise ConfigError(
            f"{where}.election_id must be at most {_ELECTION_MAX} characters (it is part "
            f"of IAM role names), got {len(election)}"
        )
    return election


def _public_key(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        raw = base64.b64decode(str(value).strip(), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 42 or raw[:2] != b"Ed":
        raise ConfigError(
            f"{where} must be a minisign public key string (the second line of prep.pub)"
        )
    return str(value).strip()


def _window(raw: dict[str, Any], zone: ZoneInfo, official: bool) -> PublicationWindow:
    where = "institute.window"
    parsed = {}
    for key in ("opening", "closing"):
        value = _get(raw, key, where)
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(f"{where}.{key} must be an ISO date-time, got {value!r}") from None
        parsed[key] = moment.replace(tzinfo=zone) if moment.tzinfo is None else moment
    opening, closing = parsed["opening"], parsed["closing"]
    if closing <= opening:
        raise ConfigError(f"{where}.closing must be after the opening")
    if official:
        local = opening.astimezone(zone)
        # RE art. 353.4 b): local elections open between 18:00 and 20:00 local time and
        # close at most 24 hours later. Drills (official: false) are free of this rule.
        if not (18 <= local.hour < 20 or (local.hour, local.minute) == (20, 0)):
            raise ConfigError(
                f"{where}.opening {local:%H:%M} is outside 18:00–20:00 local time "
                "(Reglamento de Elecciones art. 353.4 b)"
            )
        if closing - opening > timedelta(hours=24):
            raise ConfigError(f"{where} is longer than 24 hours (art. 353.4 b)")
    return PublicationWindow(opening, closing)


CACHE_MODES = ("versioned", "revalidate")


@dataclass(frozen=True)
class DifusorConfig:
    """What a difusor deploys: its site, and what the institute sent it to trust."""

    difusor_id: str
    name: str
    account: str
    institute_account: str
    election_id: str
    external_id: str
    domain_name: str | None = None
    certificate_arn: str | None = None
    shield_advanced: bool = False
    # Per IP over 5 minutes. The institute's verifier reads every file of the site from one
    # address (a BCS-size site is ~3,300 requests): keep it well above the site's files.
    rate_limit_per_5_minutes: int = 20_000
    # "versioned": CloudFront keeps each (immutable) version; "revalidate": every request
    # is revalidated with the bucket (docs/serving.md, part 3).
    cache_mode: str = "versioned"
    # The institute's portal (https://host): the only origin whose pages may read the site
    # (its verifier, verificador.html). The institute sends it with the external id.
    portal_origin: str = ""

    @property
    def viewer_headers(self) -> ViewerHeaders:
        """The distribution's response headers policy (the embedded default applies it too)."""
        return ViewerHeaders(cors_origins=(self.portal_origin,))

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> DifusorConfig:
        where = "difusor"
        domain = raw.get("domain_name") or None
        certificate = raw.get("certificate_arn") or None
        if bool(domain) != bool(certificate):
            raise ConfigError(f"{where}.domain_name and {where}.certificate_arn go together")
        if certificate and ":us-east-1:" not in certificate:
            raise ConfigError(
                f"{where}.certificate_arn must be an ACM certificate in "
                "us-east-1 (CloudFront only uses those)"
            )
        rate = raw.get("rate_limit_per_5_minutes", cls.rate_limit_per_5_minutes)
        if not isinstance(rate, int) or rate < 100:
            raise ConfigError(f"{where}.rate_limit_per_5_minutes must be an integer ≥ 100")
        # The site, its CDN, WAF web ACL and Shield protection all live in us-east-1.
        region = raw.get("region") or DIFUSOR_REGION
        if region != DIFUSOR_REGION:
            raise ConfigError(
                f"{where}.region must be {DIFUSOR_REGION} (CloudFront's WAF web ACLs and "
                f"Shield protections live there), got {region!r}"
            )
        cache_mode = raw.get("cache_mode", "versioned")
        if cache_mode not in CACHE_MODES:
            raise ConfigError(
                f"{where}.cache_mode must be one of {', '.join(CACHE_MODES)}, got {cache_mode!r}"
            )
        if "origin_bucket" in raw:
            raise ConfigError(
                f"{where}.origin_bucket is no longer used: the institute writes into the "
                "site and the difusor reads nothing of the institute's; remove it and set "
                "election_id"
            )
        try:
            portal = portal_origin(_get(raw, "portal_origin", where))
        except OriginInvalid as exc:
            raise ConfigError(f"{where}.portal_origin: {exc}") from None
        return cls(
            difusor_id=_field(
                raw, "id", where, _DIFUSOR_ID, "lower-case letters, digits and hyphens (at most 40)"
            ),
            name=str(_get(raw, "name", where)),
            account=_field(raw, "account", where, _ACCOUNT, "a 12-digit AWS account id"),
            institute_account=_field(
                raw, "institute_account", where, _ACCOUNT, "a 12-digit AWS account id"
            ),
            election_id=_election(raw, where),
            external_id=_field(
                raw, "external_id", where, _EXTERNAL_ID, "16+ characters the institute sent"
            ),
            domain_name=domain,
            certificate_arn=certificate,
            shield_advanced=bool(raw.get("shield_advanced", False)),
            rate_limit_per_5_minutes=rate,
            cache_mode=cache_mode,
            portal_origin=portal,
        )

    @property
    def publisher_role_arn(self) -> str:
        return role_arn(self.institute_account, publisher_role_name(self.election_id))

    @property
    def monitor_role_arn(self) -> str:
        return role_arn(self.institute_account, monitor_role_name(self.election_id))

    @property
    def delivery_role_name(self) -> str:
        return delivery_role_name(self.election_id)


def load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data

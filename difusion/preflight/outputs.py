"""The deployed stacks' outputs (``cdk deploy --outputs-file``), as preflight reads them.

A file that lacks an output, or holds one preflight cannot use, is a usage error that
names the file and the outputs at fault: nothing is checked against half a deployment.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difusion import topology
from difusion.topology import DIFUSOR_REGION

_ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):role/(?:.*/)?[\w+=,.@-]+")
_KVS_ARN = re.compile(r"arn:aws[a-z-]*:cloudfront::(\d{12}):key-value-store/[0-9a-fA-F-]{36}")
_STATES_ARN = re.compile(r"arn:aws[a-z-]*:states:([a-z0-9-]+):(\d{12}):stateMachine:.+")
_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:([a-z0-9-]+):(\d{12}):.+")
_ACCOUNT = re.compile(r"\d{12}")


class OutputsError(ValueError):
    """An outputs file (or report) preflight cannot use; the message says what to fix."""


# Output name -> field, for the institute's stack.
INSTITUTE_OUTPUTS = {
    "OriginBucketName": "origin_bucket",
    "PublisherRoleArn": "publisher_role_arn",
    "MonitorRoleArn": "monitor_role_arn",
    "IngestRoleArn": "ingest_role_arn",
    "SignRoleArn": "sign_role_arn",
    "AlarmTopicArn": "alarm_topic_arn",
    "LedgerTableName": "ledger_table",
    "RegistryTableName": "registry_table",
    "IdempotencyTableName": "idempotency_table",
    "IngestQueueUrl": "ingest_queue_url",
    "SignQueueUrl": "sign_queue_url",
    "DeliveryQueueUrl": "delivery_queue_url",
    "SigningSecretName": "signing_secret_name",
    "WindowTimerArn": "window_timer_arn",
}
# Output name -> field, for a difusor's stack; ElectionId, SiteRegion, PublicUrl and
# LogBucketName are optional.
DIFUSOR_OUTPUTS = {
    "DifusorId": "difusor_id",
    "AccountId": "account_id",
    "SiteBucketName": "bucket",
    "DistributionId": "distribution_id",
    "KeyValueStoreArn": "kvs_arn",
    "DeliveryRoleArn": "role_arn",
    "ExternalId": "external_id",
}


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputsError(f"{path}: no such file ({what})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputsError(f"{path}: not a JSON {what}: {exc}") from None


def stack_outputs(raw: Any, path: Path, marker: str) -> dict[str, str]:
    """The outputs of the one stack in ``raw`` that has ``marker``. ``cdk deploy
    --outputs-file`` nests them under the stack's name; a flat mapping is accepted too."""
    if not isinstance(raw, dict):
        raise OutputsError(f"{path}: expected a JSON object of stack outputs")
    stacks = {name: v for name, v in raw.items() if isinstance(v, dict) and marker in v}
    if marker in raw:
        stacks = {"(top level)": raw}
    if not stacks:
        raise OutputsError(f"{path}: no stack with a {marker} output")
    if len(stacks) > 1:
        raise OutputsError(
            f"{path}: {len(stacks)} stacks have a {marker} output ({', '.join(sorted(stacks))});"
            " pass a file with one deployment"
        )
    (outputs,) = stacks.values()
    return {str(k): str(v) for k, v in outputs.items()}


def _require(outputs: dict[str, str], names: dict[str, str], path: Path) -> dict[str, str]:
    missing = [name for name in names if not outputs.get(name)]
    if missing:
        raise OutputsError(f"{path}: lacks the output(s) {', '.join(missing)}")
    return {field: outputs[name] for name, field in names.items()}


@dataclass(frozen=True)
class InstituteOutputs:
    """What the institute's stack deployed, by its outputs."""

    origin_bucket: str
    publisher_role_arn: str
    monitor_role_arn: str
    ingest_role_arn: str
    sign_role_arn: str
    alarm_topic_arn: str
    ledger_table: str
    registry_table: str
    idempotency_table: str
    ingest_queue_url: str
    sign_queue_url: str
    delivery_queue_url: str
    signing_secret_name: str
    window_timer_arn: str

    @classmethod
    def from_file(cls, path: Path) -> InstituteOutputs:
        raw = read_json(path, "outputs file (cdk deploy --outputs-file)")
        return cls.from_outputs(stack_outputs(raw, path, "OriginBucketName"), path)

    @classmethod
    def from_outputs(cls, outputs: dict[str, str], path: Path) -> InstituteOutputs:
        found = cls(**_require(outputs, INSTITUTE_OUTPUTS, path))
        roles = {
            "PublisherRoleArn": found.publisher_role_arn,
            "MonitorRoleArn": found.monitor_role_arn,
            "IngestRoleArn": found.ingest_role_arn,
            "SignRoleArn": found.sign_role_arn,
        }
        accounts = set()
        for name, arn in roles.items():
            match = _ROLE_ARN.fullmatch(arn)
            if not match:
                raise OutputsError(f"{path}: {name} {arn!r} is not an IAM role ARN")
            accounts.add(match.group(2))
        if len(accounts) > 1:
            raise OutputsError(f"{path}: the role ARNs name several accounts: {sorted(accounts)}")
        if not _STATES_ARN.fullmatch(found.window_timer_arn):
            raise OutputsError(f"{path}: WindowTimerArn is not a state machine ARN")
        if not _TOPIC_ARN.fullmatch(found.alarm_topic_arn):
            raise OutputsError(f"{path}: AlarmTopicArn is not an SNS topic ARN")
        return found

    @property
    def account(self) -> str:
        return self.publisher_role_arn.split(":")[4]

    @property
    def partition(self) -> str:
        return self.publisher_role_arn.split(":")[1]

    @property
    def region(self) -> str:
        """The institute's region: its state machine's."""
        return self.window_timer_arn.split(":")[3]

    def function_roles(self) -> dict[str, str]:
        """Each function's role ARN, by function name (``topology``'s)."""
        return {
            "ingest": self.ingest_role_arn,
            "sign": self.sign_role_arn,
            "replicate": self.publisher_role_arn,
            "monitor": self.monitor_role_arn,
        }


@dataclass(frozen=True)
class DifusorOutputs:
    """What one difusor's stack deployed, by its outputs."""

    difusor_id: str
    account_id: str
    bucket: str
    distribution_id: str
    kvs_arn: str
    role_arn: str
    external_id: str
    election_id: str = ""
    region: str = DIFUSOR_REGION
    # Optional: the site's address (preflight HEADs its manifest; default: the distribution's
    # domain) and the standard logs' bucket (default: the distribution's Logging.Bucket).
    public_url: str = ""
    log_bucket: str = ""

    @classmethod
    def from_file(cls, path: Path) -> DifusorOutputs:
        raw = read_json(path, "outputs file (cdk deploy --outputs-file)")
        outputs = stack_outputs(raw, path, "DifusorId")
        found = cls(
            **_require(outputs, DIFUSOR_OUTPUTS, path),
            election_id=outputs.get("ElectionId", ""),
            region=outputs.get("SiteRegion") or DIFUSOR_REGION,
            public_url=outputs.get("PublicUrl", ""),
            log_bucket=outputs.get("LogBucketName", ""),
        )
        if not _ACCOUNT.fullmatch(found.account_id):
            raise OutputsError(f"{path}: AccountId {found.account_id!r} is not an account id")
        match = _ROLE_ARN.fullmatch(found.role_arn)
        if not match:
            raise OutputsError(f"{path}: DeliveryRoleArn is not an IAM role ARN")
        if match.group(2) != found.account_id:
            raise OutputsError(
                f"{path}: DeliveryRoleArn is in account {match.group(2)}, "
                f"AccountId says {found.account_id}"
            )
        store = _KVS_ARN.fullmatch(found.kvs_arn)
        if not store or store.group(1) != found.account_id:
            raise OutputsError(
                f"{path}: KeyValueStoreArn is not a key value store of account "
                f"{found.account_id}: {found.kvs_arn!r}"
            )
        return found

    @property
    def partition(self) -> str:
        return self.role_arn.split(":")[1]

    @property
    def distribution_arn(self) -> str:
        distribution = f"distribution/{self.distribution_id}"
        return f"arn:{self.partition}:cloudfront::{self.account_id}:{distribution}"


@dataclass(frozen=True)
class InstituteRoles:
    """The institute's two roles a difusor's account lets in: the publisher (deliveries)
    and the continuity monitor (the suspension notice)."""

    account: str
    publisher_role_arn: str
    monitor_role_arn: str

    @classmethod
    def named(cls, account: str, election: str) -> InstituteRoles:
        """The roles the institute's stack creates for ``election`` (``topology``'s names)."""
        if not _ACCOUNT.fullmatch(account):
            raise OutputsError(f"--institute-account {account!r} is not a 12-digit account id")
        return cls(
            account,
            topology.role_arn(account, topology.publisher_role_name(election)),
            topology.role_arn(account, topology.monitor_role_name(election)),
        )

    @classmethod
    def from_file(cls, path: Path) -> InstituteRoles:
        """The two roles, from the institute stack's outputs file (only those two outputs
        are needed: a difusor may be sent just them)."""
        raw = read_json(path, "outputs file (cdk deploy --outputs-file)")
        outputs = stack_outputs(raw, path, "PublisherRoleArn")
        arns = _require(
            outputs, {"PublisherRoleArn": "publisher", "MonitorRoleArn": "monitor"}, path
        )
        matches = {name: _ROLE_ARN.fullmatch(arn) for name, arn in arns.items()}
        accounts = {m.group(2) for m in matches.values() if m}
        if not all(matches.values()) or len(accounts) != 1:
            raise OutputsError(
                f"{path}: PublisherRoleArn and MonitorRoleArn must be role ARNs in one account"
            )
        return cls(accounts.pop(), arns["publisher"], arns["monitor"])

    def by_name(self) -> dict[str, str]:
        return {"publisher": self.publisher_role_arn, "monitor": self.monitor_role_arn}

"""Provision the embedded default: the institute's account and three difusor accounts.

Mirrors what the CDK stacks create on AWS, on the local emulator, with the settings the
stacks use (``difusion.topology``): the origin bucket with EventBridge notifications, the
queues (with dead-letter queues), the ledger, registry and idempotency tables, the signing
key in Secrets Manager, the publisher and monitor roles; and per difusor, in its own
account, a bucket whose policy lets those two roles write, a CloudFront distribution and a
delivery role they may assume with an external id to invalidate it. A create whose answer
was lost and that botocore retried finds its own resource and goes on
(:mod:`difusion.local.idempotent`).

Accelerated time (the demo, the tests) is one named factor, ``time_scale``, applied to the
queues' visibility timeouts and to the retry schedule; 1 is election night.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import boto3

from difusion import topology
from difusion.adapters.keystore import SecretsManagerKeyStore
from difusion.adapters.registry import DifusorRegistry
from difusion.adapters.sessions import new_session
from difusion.local import idempotent
from difusion.local.emulator import ORIGIN_ACCOUNT, REGION
from difusion.models import Difusor
from difusion.settings import policy_environment
from difusion.signing import SecretKey
from difusion.window import PublicationWindow, WindowState
from difusion.window_timer import (
    DEFINITION_PATH,
    execution_input,
    execution_name,
    render_definition,
)


@dataclass(frozen=True)
class DifusorAccount:
    difusor_id: str
    name: str
    account_id: str


DEMO_DIFUSORES = (
    DifusorAccount("diario-peninsular", "Diario Peninsular de Baja California Sur", "111111111111"),
    DifusorAccount("uabcs", "Universidad Autónoma de Baja California Sur", "222222222222"),
    DifusorAccount("canal-10-los-cabos", "Canal 10 Los Cabos", "333333333333"),
)


@dataclass(frozen=True)
class LocalDeployment:
    """Names and addresses of everything provisioned; the functions' environment."""

    election: str
    time_zone: str
    origin_bucket: str
    ledger_table: str
    registry_table: str
    idempotency_table: str
    signing_secret_id: str
    publisher_role_arn: str
    monitor_role_arn: str
    ingest_queue_url: str
    sign_queue_url: str
    delivery_queue_url: str
    dead_letter_queue_urls: dict[str, str]
    max_attempts: int
    time_scale: float
    window: PublicationWindow
    timer_arn: str
    timer_execution_arn: str
    difusores: tuple[Difusor, ...] = field(default_factory=tuple)
    # The institute's key string, pinned as the config's ``public_key`` pins it on AWS.
    public_key: str = ""

    def outputs(self) -> dict[str, dict[str, str]]:
        """What ``cdk deploy --outputs-file`` writes for the institute stack."""
        return {
            "DifusionInstitute": {
                "OriginBucketName": self.origin_bucket,
                "PublisherRoleArn": self.publisher_role_arn,
                "MonitorRoleArn": self.monitor_role_arn,
                "LedgerTableName": self.ledger_table,
                "RegistryTableName": self.registry_table,
                "IdempotencyTableName": self.idempotency_table,
                "DeliveryQueueUrl": self.delivery_queue_url,
                "IngestQueueUrl": self.ingest_queue_url,
                "SignQueueUrl": self.sign_queue_url,
                "SigningSecretName": self.signing_secret_id,
                "WindowTimerArn": self.timer_arn,
            }
        }

    def function_environment(self) -> dict[str, str]:
        retry = topology.RETRY.scaled(self.time_scale)
        return {
            "RETRY_BASE_SECONDS": str(retry.base_seconds),
            "RETRY_CAP_SECONDS": str(retry.cap_seconds),
            "ORIGIN_BUCKET": self.origin_bucket,
            "LEDGER_TABLE": self.ledger_table,
            "REGISTRY_TABLE": self.registry_table,
            "IDEMPOTENCY_TABLE": self.idempotency_table,
            "SIGNING_SECRET_ID": self.signing_secret_id,
            "SIGN_QUEUE_URL": self.sign_queue_url,
            "DELIVERY_QUEUE_URL": self.delivery_queue_url,
            # The stacks leave these at their defaults (settings.py), the topology's values.
            "CATCH_UP_AFTER_SECONDS": str(
                max(1, round(topology.REPLICATE.timeout_seconds * self.time_scale))
            ),
            "DELIVERY_LEASE_SECONDS": str(scaled_hold(self.time_scale)),
            "STEP_HOLD_SECONDS": str(scaled_hold(self.time_scale)),
            "STEP_HEARTBEAT_SECONDS": str(
                scaled_hold(self.time_scale)
                * topology.HEARTBEAT_SECONDS
                / topology.STEP_HOLD_SECONDS
            ),
            "POWERTOOLS_SERVICE_NAME": "difusion",
            "POWERTOOLS_METRICS_NAMESPACE": "Difusion",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        } | policy_environment(
            None,
            election_id=self.election,
            time_zone=self.time_zone,
            opening=self.window.opening,
            closing=self.window.closing,
            grace_seconds=int(self.window.grace.total_seconds()),
            max_attempts=self.max_attempts,
            public_key=self.public_key,
            # The local sites server reads the pointer on every request: no propagation.
            retire_wait_seconds=0,
        )


def provision(
    *,
    election: str,
    time_zone: str = "America/Mazatlan",
    difusores: tuple[DifusorAccount, ...] = DEMO_DIFUSORES,
    secret_key: SecretKey,
    window: PublicationWindow | None = None,
    time_scale: float = 1.0,
    max_attempts: int = topology.DEFAULT_MAX_ATTEMPTS,
    start_timer: bool = True,
) -> LocalDeployment:
    """Create the institute's resources and each difusor's, register the difusores and
    start the window timer (on the emulator's wall clock; with ``start_timer`` false the
    caller executes its definition on a clock of its own: ``timer_execution_arn`` is empty).

    Every name carries a fresh suffix, so nothing left running by an earlier deployment on
    the same emulator (a timer still waiting, say) can touch this one.
    """
    session = new_session()
    suffix = secrets.token_hex(3)
    slug = election.lower().replace("_", "-")
    origin_bucket = f"difusion-origin-{slug}-{suffix}"
    if window is None:  # already open: publish as soon as a snapshot is accepted
        now = datetime.now().astimezone()
        window = PublicationWindow(now - timedelta(seconds=1), now + timedelta(days=1))
    s3 = session.client("s3")
    # Object Lock (and so versioning) from creation, as the stack creates it: the final
    # publication and the closing record are put under retention at the close.
    idempotent.create_bucket(s3, Bucket=origin_bucket, ObjectLockEnabledForBucket=True)
    s3.put_bucket_versioning(Bucket=origin_bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=origin_bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )

    sqs = session.client("sqs")

    def queue(shape: topology.QueueShape) -> tuple[str, str]:
        name = f"difusion-{shape.name}-{suffix}"
        fifo_suffix = ".fifo" if shape.fifo else ""
        base = {"FifoQueue": "true"} if shape.fifo else {}
        dlq_url = sqs.create_queue(
            QueueName=f"{name}-dlq{fifo_suffix}",
            Attributes={
                **base,
                "MessageRetentionPeriod": str(topology.DEAD_LETTER_RETENTION_SECONDS),
            },
        )["QueueUrl"]
        dlq_arn = _queue_arn(sqs, dlq_url)
        attributes = {
            **base,
            "VisibilityTimeout": str(scaled_visibility(shape, time_scale)),
            "MessageRetentionPeriod": str(topology.QUEUE_RETENTION_SECONDS),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_attempts}
            ),
        }
        if shape.fifo:
            attributes["ContentBasedDeduplication"] = "false"
        url = sqs.create_queue(QueueName=f"{name}{fifo_suffix}", Attributes=attributes)["QueueUrl"]
        return url, dlq_url

    ingest_url, ingest_dlq = queue(topology.QUEUES["ingest"])
    sign_url, sign_dlq = queue(topology.QUEUES["sign"])
    delivery_url, delivery_dlq = queue(topology.QUEUES["deliveries"])

    events = session.client("events")
    events.put_rule(
        Name=f"difusion-incoming-package-{suffix}",
        EventPattern=json.dumps(
            {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [origin_bucket]},
                    "object": {"key": [{"prefix": "incoming/"}]},
                },
            }
        ),
    )
    events.put_targets(
        Rule=f"difusion-incoming-package-{suffix}",
        Targets=[{"Id": "ingest-queue", "Arn": _queue_arn(sqs, ingest_url)}],
    )

    dynamodb = session.client("dynamodb")
    tables = {name: (f"difusion-{name}-{suffix}", keys) for name, keys in topology.TABLES.items()}
    for table_name, keys in tables.values():
        idempotent.create_table(
            dynamodb,
            TableName=table_name,
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
            BillingMode="PAY_PER_REQUEST",
            SSESpecification={"Enabled": True},
        )
    idempotent.enable_time_to_live(
        dynamodb, tables["idempotency"][0], topology.IDEMPOTENCY_TTL_ATTRIBUTE
    )

    secret_id = f"difusion/prep-signing-key-{suffix}"
    SecretsManagerKeyStore(session.client("secretsmanager"), secret_id).store(secret_key)

    iam = session.client("iam")
    lambda_trust = _trust({"Service": "lambda.amazonaws.com"})
    publisher = idempotent.create_role(
        iam, f"{topology.publisher_role_name(election)}-{suffix}", lambda_trust
    )
    monitor = idempotent.create_role(
        iam, f"{topology.monitor_role_name(election)}-{suffix}", lambda_trust
    )

    registry = DifusorRegistry(session.resource("dynamodb"), tables["registry"][0])
    registered = []
    for account in difusores:
        difusor = _provision_difusor(account, (publisher, monitor), election, suffix)
        registry.put(difusor)
        registered.append(difusor)

    timer_arn, execution_arn = _start_window_timer(
        session, window, tables["ledger"][0], sign_url, election, suffix, start_timer
    )
    return LocalDeployment(
        election=election,
        time_zone=time_zone,
        origin_bucket=origin_bucket,
        ledger_table=tables["ledger"][0],
        registry_table=tables["registry"][0],
        idempotency_table=tables["idempotency"][0],
        signing_secret_id=secret_id,
        publisher_role_arn=publisher,
        monitor_role_arn=monitor,
        ingest_queue_url=ingest_url,
        sign_queue_url=sign_url,
        delivery_queue_url=delivery_url,
        dead_letter_queue_urls={
            "ingest": ingest_dlq,
            "sign": sign_dlq,
            "deliveries": delivery_dlq,
        },
        max_attempts=max_attempts,
        time_scale=time_scale,
        window=window,
        timer_arn=timer_arn,
        timer_execution_arn=execution_arn,
        difusores=tuple(registered),
        public_key=secret_key.public_key.base64,
    )


def _start_window_timer(
    session: boto3.session.Session,
    window: PublicationWindow,
    ledger_table: str,
    sign_queue_url: str,
    election: str,
    suffix: str,
    start: bool = True,
) -> tuple[str, str]:
    """Deploy the very definition the institute's stack deploys, and run it on the
    emulator unless told not to."""
    iam = session.client("iam")
    role = idempotent.create_role(
        iam, f"difusion-window-timer-{suffix}", _trust({"Service": "states.amazonaws.com"})
    )
    definition = render_definition(
        DEFINITION_PATH.read_text(),
        ledger_table=ledger_table,
        sign_queue_url=sign_queue_url,
        election=election,
    )
    stepfunctions = session.client("stepfunctions")
    timer = stepfunctions.create_state_machine(
        name=f"difusion-window-{suffix}", definition=definition, roleArn=role
    )["stateMachineArn"]
    if not start:
        return timer, ""
    execution = idempotent.start_execution(
        stepfunctions,
        timer,
        execution_name(election, window.opening),
        execution_input(window.opening, window.closing),
    )
    if window.opening <= datetime.now().astimezone():
        _wait_for_state(session, ledger_table, election, WindowState.OPEN)
    return timer, execution


def _wait_for_state(
    session: boto3.session.Session, table: str, election: str, state: WindowState
) -> None:
    items = session.resource("dynamodb").Table(table)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        item = items.get_item(Key={"pk": f"ELECTION#{election}", "sk": "WINDOW"}).get("Item")
        if item and item.get("state") == str(state):
            return
        time.sleep(0.1)
    raise TimeoutError(f"the window timer did not reach {state}")


def account_session(account_id: str) -> boto3.session.Session:
    """A session in another account, as its administrators would have."""
    sts = new_session().client("sts")
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
        RoleSessionName="difusion-local-admin",
    )["Credentials"]
    return new_session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    )


def scaled_hold(time_scale: float) -> int:
    """A step's hold in accelerated time (whole seconds, as SQS and the lease count them;
    a hold of 1 s at a time scale above 1/60 is longer than the stacks' in story time)."""
    return max(1, round(topology.STEP_HOLD_SECONDS * time_scale))


def scaled_visibility(shape: topology.QueueShape, time_scale: float) -> int:
    """The queue's visibility timeout in accelerated time (1: the stack's own)."""
    return max(1, round(shape.visibility_timeout_seconds * time_scale))


def _provision_difusor(
    account: DifusorAccount, institute_roles: tuple[str, str], election: str, suffix: str
) -> Difusor:
    """What a difusor's stack creates in its account (``stacks/difusor``)."""
    session = account_session(account.account_id)
    bucket = f"prep-{account.difusor_id}-{suffix}"
    s3 = session.client("s3")
    idempotent.create_bucket(s3, Bucket=bucket)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_ownership_controls(
        Bucket=bucket,
        OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    institute_account = ORIGIN_ACCOUNT
    only_the_institutes_roles = {"ArnEquals": {"aws:PrincipalArn": list(institute_roles)}}
    institute = {"AWS": f"arn:aws:iam::{institute_account}:root"}
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "TheInstitutePublishes",
                        "Effect": "Allow",
                        "Principal": institute,
                        "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                        "Condition": only_the_institutes_roles,
                    },
                    {
                        "Sid": "TheInstituteListsTheSite",
                        "Effect": "Allow",
                        "Principal": institute,
                        "Action": "s3:ListBucket",
                        "Resource": f"arn:aws:s3:::{bucket}",
                        "Condition": only_the_institutes_roles,
                    },
                ],
            }
        ),
    )
    distribution = idempotent.create_distribution(
        session.client("cloudfront"),
        {
            "CallerReference": f"prep-{account.difusor_id}-{suffix}",
            "Comment": f"PREP BCS — {account.name}",
            "Enabled": True,
            "DefaultRootObject": "index.html",
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "site",
                        "DomainName": f"{bucket}.s3.{REGION}.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "site",
                "ViewerProtocolPolicy": "redirect-to-https",
                "MinTTL": 0,
                "DefaultTTL": 0,
                "MaxTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "TrustedSigners": {"Enabled": False, "Quantity": 0},
            },
        },
    )
    # The version pointer's store, associated on AWS with the distribution's viewer-request
    # function (stacks/difusor); here the local sites server reads it (docs/serving.md 2.5).
    kvs_arn = idempotent.create_key_value_store(
        session.client("cloudfront"),
        f"prep-{account.difusor_id}-{suffix}",
        f"PREP BCS — {account.name}: version pointer",
    )
    external_id = secrets.token_hex(16)
    iam = session.client("iam")
    role_name = f"{topology.delivery_role_name(election)}-{suffix}"
    role_arn = idempotent.create_role(
        iam,
        role_name,
        _trust(
            institute,
            {"StringEquals": {"sts:ExternalId": external_id}, **only_the_institutes_roles},
        ),
    )
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName="switch-prep-site-version",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": [
                            "cloudfront-keyvaluestore:DescribeKeyValueStore",
                            "cloudfront-keyvaluestore:GetKey",
                            "cloudfront-keyvaluestore:PutKey",
                        ],
                        "Resource": kvs_arn,
                    },
                ],
            }
        ),
    )
    return Difusor(
        difusor_id=account.difusor_id,
        name=account.name,
        account_id=account.account_id,
        bucket=bucket,
        distribution_id=distribution["Id"],
        role_arn=role_arn,
        external_id=external_id,
        public_url=f"https://{distribution['DomainName']}",
        kvs_arn=kvs_arn,
    )


def _trust(principal: dict[str, str], condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def _queue_arn(sqs: Any, url: str) -> str:
    return str(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )

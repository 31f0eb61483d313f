"""Provision the embedded default: the institute's account and three difusor accounts.

Mirrors what the CDK stacks create on AWS, on the local emulator: the origin bucket with
EventBridge notifications, the queues (with dead-letter queues), the ledger, registry and
idempotency tables, the signing key in Secrets Manager; and per difusor, in its own
account, a bucket, a CloudFront distribution and a delivery role that trusts the
institute's publisher role with an external id.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import boto3

from difusion.adapters.keystore import SecretsManagerKeyStore
from difusion.adapters.registry import DifusorRegistry
from difusion.local.emulator import REGION
from difusion.models import Difusor
from difusion.signing import SecretKey


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
    ingest_queue_url: str
    sign_queue_url: str
    delivery_queue_url: str
    dead_letter_queue_urls: dict[str, str]
    max_attempts: int
    difusores: tuple[Difusor, ...] = field(default_factory=tuple)

    def function_environment(self) -> dict[str, str]:
        return {
            "ELECTION_ID": self.election,
            "ELECTION_TIME_ZONE": self.time_zone,
            "ORIGIN_BUCKET": self.origin_bucket,
            "LEDGER_TABLE": self.ledger_table,
            "REGISTRY_TABLE": self.registry_table,
            "IDEMPOTENCY_TABLE": self.idempotency_table,
            "SIGNING_SECRET_ID": self.signing_secret_id,
            "SIGN_QUEUE_URL": self.sign_queue_url,
            "DELIVERY_QUEUE_URL": self.delivery_queue_url,
            "DELIVERY_MAX_ATTEMPTS": str(self.max_attempts),
            "POWERTOOLS_SERVICE_NAME": "difusion",
            "POWERTOOLS_METRICS_NAMESPACE": "Difusion",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }


def provision(
    *,
    election: str,
    time_zone: str = "America/Mazatlan",
    difusores: tuple[DifusorAccount, ...] = DEMO_DIFUSORES,
    secret_key: SecretKey,
    visibility_timeout: int = 2,
    max_attempts: int = 3,
) -> LocalDeployment:
    """Create the institute's resources and each difusor's, and register the difusores."""
    session = boto3.session.Session()
    slug = election.lower().replace("_", "-")
    origin_bucket = f"difusion-origin-{slug}"
    s3 = session.client("s3")
    s3.create_bucket(Bucket=origin_bucket)
    s3.put_bucket_versioning(Bucket=origin_bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=origin_bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )

    sqs = session.client("sqs")

    def queue(name: str, fifo: bool) -> tuple[str, str]:
        suffix = ".fifo" if fifo else ""
        base = {"FifoQueue": "true"} if fifo else {}
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=base)["QueueUrl"]
        dlq_arn = _queue_arn(sqs, dlq_url)
        attributes = {
            **base,
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_attempts)}
            ),
        }
        url = sqs.create_queue(QueueName=f"{name}{suffix}", Attributes=attributes)["QueueUrl"]
        return url, dlq_url

    ingest_url, ingest_dlq = queue("difusion-ingest", fifo=False)
    sign_url, sign_dlq = queue("difusion-sign", fifo=True)
    delivery_url, delivery_dlq = queue("difusion-deliveries", fifo=True)

    events = session.client("events")
    events.put_rule(
        Name="difusion-incoming-package",
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
        Rule="difusion-incoming-package",
        Targets=[{"Id": "ingest-queue", "Arn": _queue_arn(sqs, ingest_url)}],
    )

    dynamodb = session.client("dynamodb")
    tables = {
        "ledger": ("difusion-ledger", [("pk", "HASH"), ("sk", "RANGE")]),
        "registry": ("difusion-registry", [("difusor_id", "HASH")]),
        "idempotency": ("difusion-idempotency", [("id", "HASH")]),
    }
    for table_name, keys in tables.values():
        dynamodb.create_table(
            TableName=table_name,
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
            BillingMode="PAY_PER_REQUEST",
        )

    secret_id = "difusion/prep-signing-key"
    SecretsManagerKeyStore(session.client("secretsmanager"), secret_id).store(secret_key)

    iam = session.client("iam")
    publisher = iam.create_role(
        RoleName="difusion-publisher",
        AssumeRolePolicyDocument=json.dumps(_trust({"Service": "lambda.amazonaws.com"})),
    )["Role"]["Arn"]

    registry = DifusorRegistry(session.resource("dynamodb"), tables["registry"][0])
    registered = []
    for account in difusores:
        difusor = _provision_difusor(account, publisher, origin_bucket)
        registry.put(difusor)
        registered.append(difusor)

    return LocalDeployment(
        election=election,
        time_zone=time_zone,
        origin_bucket=origin_bucket,
        ledger_table=tables["ledger"][0],
        registry_table=tables["registry"][0],
        idempotency_table=tables["idempotency"][0],
        signing_secret_id=secret_id,
        publisher_role_arn=publisher,
        ingest_queue_url=ingest_url,
        sign_queue_url=sign_url,
        delivery_queue_url=delivery_url,
        dead_letter_queue_urls={
            "ingest": ingest_dlq,
            "sign": sign_dlq,
            "deliveries": delivery_dlq,
        },
        max_attempts=max_attempts,
        difusores=tuple(registered),
    )


def account_session(account_id: str) -> boto3.session.Session:
    """A session in another account, as its administrators would have."""
    sts = boto3.session.Session().client("sts")
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
        RoleSessionName="difusion-local-admin",
    )["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    )


def _provision_difusor(account: DifusorAccount, publisher_arn: str, origin_bucket: str) -> Difusor:
    session = account_session(account.account_id)
    bucket = f"prep-{account.difusor_id}"
    s3 = session.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    distribution = session.client("cloudfront").create_distribution(
        DistributionConfig={
            "CallerReference": f"prep-{account.difusor_id}",
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
        }
    )["Distribution"]
    external_id = secrets.token_hex(16)
    iam = session.client("iam")
    role_arn = iam.create_role(
        RoleName="difusion-delivery",
        AssumeRolePolicyDocument=json.dumps(
            _trust({"AWS": publisher_arn}, {"StringEquals": {"sts:ExternalId": external_id}})
        ),
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName="difusion-delivery",
        PolicyName="deliver-prep",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                    },
                    {
                        "Effect": "Allow",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{origin_bucket}/*",
                    },
                    {
                        "Effect": "Allow",
                        "Action": ["cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"],
                        "Resource": distribution["ARN"],
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

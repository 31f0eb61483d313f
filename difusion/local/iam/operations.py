"""Which IAM actions, on which resources, one botocore call needs.

From the Service Authorization Reference, for the calls this project's functions make: the
adapters, boto3's managed copy and upload (HeadObject, multipart), Powertools idempotency's
DynamoDB calls. A call with no entry raises :class:`UnknownOperation`, so a new call can't
slip past the policy checks unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SecretResolver = Callable[[str], str]


class UnknownOperation(LookupError):
    """A botocore operation with no IAM mapping here."""


@dataclass(frozen=True)
class Permission:
    """One action on one resource. ``context`` holds condition keys the call itself sets
    (sts:ExternalId, s3:prefix); the caller adds the rest (aws:SecureTransport, ...)."""

    action: str
    resource: str
    kind: str  # object, bucket, table, index, queue, secret, distribution, key-value-store, role
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Call:
    service: str
    operation: str
    params: Mapping[str, Any]
    region: str
    account: str
    resolve_secret: SecretResolver | None


# --- S3 ---------------------------------------------------------------------------------


def _object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _read_object(bucket: str, key: str, version_id: str | None) -> Permission:
    # Reading a specific version is its own action.
    action = "s3:GetObjectVersion" if version_id else "s3:GetObject"
    return Permission(action, _object(bucket, key), "object")


def _copy_source(source: Any) -> tuple[str, str, str | None]:
    """CopySource as boto3 takes it: a dict, or "bucket/key[?versionId=...]" URL-encoded."""
    if isinstance(source, Mapping):
        return str(source["Bucket"]), str(source["Key"]), source.get("VersionId")
    parts = urlsplit(str(source))
    bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
    version = parse_qs(parts.query).get("versionId", [None])[0]
    return bucket, key, version


def _s3_object_action(action: str) -> Callable[[_Call], list[Permission]]:
    def permissions(call: _Call) -> list[Permission]:
        return [Permission(action, _object(call.params["Bucket"], call.params["Key"]), "object")]

    return permissions


_s3_write = _s3_object_action("s3:PutObject")


def _s3_read(call: _Call) -> list[Permission]:
    p = call.params
    return [_read_object(p["Bucket"], p["Key"], p.get("VersionId"))]


def _s3_copy(call: _Call) -> list[Permission]:
    bucket, key, version = _copy_source(call.params["CopySource"])
    return [_read_object(bucket, key, version), *_s3_write(call)]


def _s3_delete(call: _Call) -> list[Permission]:
    p = call.params
    action = "s3:DeleteObjectVersion" if p.get("VersionId") else "s3:DeleteObject"
    return [Permission(action, _object(p["Bucket"], p["Key"]), "object")]


def _s3_delete_many(call: _Call) -> list[Permission]:
    # DeleteObjects is authorized key by key, as if each were a DeleteObject.
    bucket = call.params["Bucket"]
    return [
        Permission(
            "s3:DeleteObjectVersion" if item.get("VersionId") else "s3:DeleteObject",
            _object(bucket, item["Key"]),
            "object",
        )
        for item in call.params["Delete"]["Objects"]
    ]


def _s3_retention(call: _Call) -> list[Permission]:
    found = _s3_object_action("s3:PutObjectRetention")(call)
    if call.params.get("BypassGovernanceRetention"):
        found.append(Permission("s3:BypassGovernanceRetention", found[0].resource, "object"))
    return found


def _s3_list(call: _Call) -> list[Permission]:
    prefix = call.params.get("Prefix")
    context = {"s3:prefix": prefix} if prefix is not None else {}
    return [Permission("s3:ListBucket", f"arn:aws:s3:::{call.params['Bucket']}", "bucket", context)]


# --- DynamoDB ---------------------------------------------------------------------------


def _table(call: _Call, name: str, index: str | None = None) -> tuple[str, str]:
    arn = f"arn:aws:dynamodb:{call.region}:{call.account}:table/{name}"
    return (f"{arn}/index/{index}", "index") if index else (arn, "table")


def _dynamodb(action: str) -> Callable[[_Call], list[Permission]]:
    def permissions(call: _Call) -> list[Permission]:
        arn, kind = _table(call, call.params["TableName"], call.params.get("IndexName"))
        return [Permission(action, arn, kind)]

    return permissions


_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def _dynamodb_transact_write(call: _Call) -> list[Permission]:
    # A transaction needs, per item, the action that item would need on its own.
    found = []
    for item in call.params["TransactItems"]:
        ((kind, body),) = item.items()
        if kind not in _TRANSACT_ACTIONS:
            raise UnknownOperation(f"dynamodb.TransactWriteItems: unknown item kind {kind!r}")
        found.append(Permission(_TRANSACT_ACTIONS[kind], *_table(call, body["TableName"])))
    return found


# --- SQS, Secrets Manager, CloudFront, STS ----------------------------------------------


def queue_arn(queue_url: str, region: str) -> str:
    """https://sqs.REGION.amazonaws.com/ACCOUNT/NAME, or a local endpoint's
    http://127.0.0.1:PORT/ACCOUNT/NAME (whose region is the client's)."""
    parts = urlsplit(queue_url)
    match = re.fullmatch(r"/(\d{12})/([^/]+)/?", parts.path)
    if not match:
        raise ValueError(f"not an SQS queue URL: {queue_url!r}")
    host = re.fullmatch(r"sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?", parts.hostname or "")
    account, name = match.groups()
    return f"arn:aws:sqs:{host.group(1) if host else region}:{account}:{name}"


def _sqs(action: str) -> Callable[[_Call], list[Permission]]:
    def permissions(call: _Call) -> list[Permission]:
        return [Permission(action, queue_arn(call.params["QueueUrl"], call.region), "queue")]

    return permissions


def _secret(call: _Call) -> list[Permission]:
    secret_id = str(call.params["SecretId"])
    if secret_id.startswith("arn:"):
        arn = secret_id
    elif call.resolve_secret is None:
        raise ValueError(
            f"secretsmanager.GetSecretValue names secret {secret_id!r}: pass resolve_secret "
            "to turn a secret name into its ARN"
        )
    else:
        arn = call.resolve_secret(secret_id)
    return [Permission("secretsmanager:GetSecretValue", arn, "secret")]


def _cloudfront(action: str) -> Callable[[_Call], list[Permission]]:
    def permissions(call: _Call) -> list[Permission]:
        arn = f"arn:aws:cloudfront::{call.account}:distribution/{call.params['DistributionId']}"
        return [Permission(action, arn, "distribution")]

    return permissions


def _kvs(action: str) -> Callable[[_Call], list[Permission]]:
    """The KeyValueStore data plane: the store's ARN is the call's ``KvsARN``."""

    def permissions(call: _Call) -> list[Permission]:
        return [Permission(action, str(call.params["KvsARN"]), "key-value-store")]

    return permissions


def _assume_role(call: _Call) -> list[Permission]:
    p = call.params
    context = {"sts:RoleSessionName": str(p["RoleSessionName"])}
    if p.get("ExternalId") is not None:
        context["sts:ExternalId"] = str(p["ExternalId"])
    found = [Permission("sts:AssumeRole", p["RoleArn"], "role", context)]
    if p.get("Tags") or p.get("TransitiveTagKeys"):
        found.append(Permission("sts:TagSession", p["RoleArn"], "role", context))
    return found


_TABLE: dict[tuple[str, str], Callable[[_Call], list[Permission]]] = {
    ("s3", "GetObject"): _s3_read,
    ("s3", "HeadObject"): _s3_read,
    ("s3", "PutObject"): _s3_write,
    ("s3", "CopyObject"): _s3_copy,
    # boto3's upload_fileobj and managed copy, for large objects.
    ("s3", "CreateMultipartUpload"): _s3_write,
    ("s3", "UploadPart"): _s3_write,
    ("s3", "UploadPartCopy"): _s3_copy,
    ("s3", "CompleteMultipartUpload"): _s3_write,
    ("s3", "AbortMultipartUpload"): _s3_object_action("s3:AbortMultipartUpload"),
    ("s3", "DeleteObject"): _s3_delete,
    ("s3", "DeleteObjects"): _s3_delete_many,
    ("s3", "PutObjectRetention"): _s3_retention,
    ("s3", "ListObjectsV2"): _s3_list,
    ("dynamodb", "GetItem"): _dynamodb("dynamodb:GetItem"),
    ("dynamodb", "PutItem"): _dynamodb("dynamodb:PutItem"),
    ("dynamodb", "UpdateItem"): _dynamodb("dynamodb:UpdateItem"),
    ("dynamodb", "DeleteItem"): _dynamodb("dynamodb:DeleteItem"),
    ("dynamodb", "Query"): _dynamodb("dynamodb:Query"),
    ("dynamodb", "Scan"): _dynamodb("dynamodb:Scan"),
    ("dynamodb", "TransactWriteItems"): _dynamodb_transact_write,
    ("sqs", "SendMessage"): _sqs("sqs:SendMessage"),
    ("sqs", "SendMessageBatch"): _sqs("sqs:SendMessage"),
    ("sqs", "ChangeMessageVisibility"): _sqs("sqs:ChangeMessageVisibility"),
    ("sqs", "ChangeMessageVisibilityBatch"): _sqs("sqs:ChangeMessageVisibility"),
    # What Lambda's SQS event source mapping does with the function's role (the local
    # dispatcher plays it).
    ("sqs", "ReceiveMessage"): _sqs("sqs:ReceiveMessage"),
    ("sqs", "GetQueueAttributes"): _sqs("sqs:GetQueueAttributes"),
    ("sqs", "DeleteMessage"): _sqs("sqs:DeleteMessage"),
    ("sqs", "DeleteMessageBatch"): _sqs("sqs:DeleteMessage"),
    ("secretsmanager", "GetSecretValue"): _secret,
    ("cloudfront", "CreateInvalidation"): _cloudfront("cloudfront:CreateInvalidation"),
    ("cloudfront", "GetInvalidation"): _cloudfront("cloudfront:GetInvalidation"),
    ("cloudfront-keyvaluestore", "DescribeKeyValueStore"): _kvs(
        "cloudfront-keyvaluestore:DescribeKeyValueStore"
    ),
    ("cloudfront-keyvaluestore", "GetKey"): _kvs("cloudfront-keyvaluestore:GetKey"),
    ("cloudfront-keyvaluestore", "PutKey"): _kvs("cloudfront-keyvaluestore:PutKey"),
    ("sts", "AssumeRole"): _assume_role,
}
_BY_NAME = {(s, op.lower()): handler for (s, op), handler in _TABLE.items()}


def required_permissions(
    service: str,
    operation: str,
    params: Mapping[str, Any],
    region: str,
    account: str,
    resolve_secret: SecretResolver | None = None,
) -> list[Permission]:
    """The permissions one call needs. ``service`` is botocore's name ("s3"), ``operation``
    its operation name ("PutObject"; "put_object" works too), ``params`` the call's keyword
    arguments, ``region``/``account`` where resources named without them live."""
    handler = _BY_NAME.get((service.lower(), operation.replace("_", "").lower()))
    if handler is None:
        raise UnknownOperation(
            f"no IAM mapping for {service}.{operation}: add it to difusion/local/iam/"
            "operations.py with the actions the Service Authorization Reference lists"
        )
    return handler(_Call(service, operation, params, region, account, resolve_secret))

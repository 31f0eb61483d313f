"""Which IAM permissions each botocore call of the project's functions needs (per the
Service Authorization Reference)."""

from __future__ import annotations

from typing import Any

import pytest

from difusion.local.iam import Permission, UnknownOperation, required_permissions
from difusion.local.iam.operations import queue_arn

REGION = "us-east-1"
ACCOUNT = "111122223333"
DIFUSOR = "444455556666"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table"


def needs(service: str, operation: str, **params: Any) -> list[Permission]:
    return required_permissions(service, operation, params, REGION, ACCOUNT)


def actions(permissions: list[Permission]) -> list[tuple[str, str]]:
    return [(p.action, p.resource) for p in permissions]


@pytest.mark.parametrize(
    ("operation", "params", "expected"),
    [
        ("GetObject", {"Key": "m/1.json"}, [("s3:GetObject", "arn:aws:s3:::origin/m/1.json")]),
        (
            "GetObject",
            {"Key": "in/p.zip", "VersionId": "v1"},
            [("s3:GetObjectVersion", "arn:aws:s3:::origin/in/p.zip")],
        ),
        ("HeadObject", {"Key": "k"}, [("s3:GetObject", "arn:aws:s3:::origin/k")]),
        (
            "HeadObject",
            {"Key": "k", "VersionId": "v1"},
            [("s3:GetObjectVersion", "arn:aws:s3:::origin/k")],
        ),
        ("PutObject", {"Key": "k", "Body": b""}, [("s3:PutObject", "arn:aws:s3:::origin/k")]),
        ("CreateMultipartUpload", {"Key": "k"}, [("s3:PutObject", "arn:aws:s3:::origin/k")]),
        ("UploadPart", {"Key": "k"}, [("s3:PutObject", "arn:aws:s3:::origin/k")]),
        ("CompleteMultipartUpload", {"Key": "k"}, [("s3:PutObject", "arn:aws:s3:::origin/k")]),
        (
            "AbortMultipartUpload",
            {"Key": "k"},
            [("s3:AbortMultipartUpload", "arn:aws:s3:::origin/k")],
        ),
        ("DeleteObject", {"Key": "k"}, [("s3:DeleteObject", "arn:aws:s3:::origin/k")]),
        (
            "PutObjectRetention",
            {"Key": "m/1.json", "VersionId": "v1", "Retention": {}},
            [("s3:PutObjectRetention", "arn:aws:s3:::origin/m/1.json")],
        ),
        (
            "PutObjectRetention",
            {"Key": "k", "BypassGovernanceRetention": True},
            [
                ("s3:PutObjectRetention", "arn:aws:s3:::origin/k"),
                ("s3:BypassGovernanceRetention", "arn:aws:s3:::origin/k"),
            ],
        ),
        ("ListObjectsV2", {}, [("s3:ListBucket", "arn:aws:s3:::origin")]),
    ],
)
def test_s3_object_and_bucket_calls(
    operation: str, params: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    """Service Authorization Reference, Amazon S3: the action and the object or bucket ARN."""
    # Given a call on the origin bucket
    # When its permissions are listed
    permissions = needs("s3", operation, Bucket="origin", **params)

    # Then they are the reference's
    assert actions(permissions) == expected


def test_list_objects_v2_is_list_bucket_on_the_bucket_with_its_prefix() -> None:
    # Given a listing of one prefix
    # When its permissions are listed
    (permission,) = needs("s3", "ListObjectsV2", Bucket="origin", Prefix="manifests/")

    # Then it is s3:ListBucket on the bucket, with s3:prefix for a policy condition
    assert permission == Permission(
        "s3:ListBucket", "arn:aws:s3:::origin", "bucket", {"s3:prefix": "manifests/"}
    )


@pytest.mark.parametrize(
    ("copy_source", "read"),
    [
        ({"Bucket": "origin", "Key": "objects/sha256/ab"}, "s3:GetObject"),
        (
            {"Bucket": "origin", "Key": "objects/sha256/ab", "VersionId": "v7"},
            "s3:GetObjectVersion",
        ),
        ("origin/objects/sha256/ab", "s3:GetObject"),
        ("/origin/objects%2Fsha256/ab?versionId=v7", "s3:GetObjectVersion"),
    ],
)
@pytest.mark.parametrize("operation", ["CopyObject", "UploadPartCopy"])
def test_a_copy_reads_the_source_and_writes_the_target(
    operation: str, copy_source: Any, read: str
) -> None:
    """Service Authorization Reference, Amazon S3: CopyObject (and UploadPartCopy) need read
    on the source (the version's action if it names one) and s3:PutObject on the target."""
    # Given a copy from the origin into a difusor's site
    # When its permissions are listed
    permissions = needs("s3", operation, Bucket="site", Key="index.html", CopySource=copy_source)

    # Then both sides are there
    assert actions(permissions) == [
        (read, "arn:aws:s3:::origin/objects/sha256/ab"),
        ("s3:PutObject", "arn:aws:s3:::site/index.html"),
    ]


def test_delete_objects_needs_delete_object_for_every_key() -> None:
    """Service Authorization Reference, Amazon S3: DeleteObjects is authorized per object."""
    # Given a batch removal, one key with a version
    delete = {"Objects": [{"Key": "a.html"}, {"Key": "b.html", "VersionId": "v2"}], "Quiet": True}

    # When its permissions are listed
    permissions = needs("s3", "DeleteObjects", Bucket="site", Delete=delete)

    # Then each key is a delete of its own
    assert actions(permissions) == [
        ("s3:DeleteObject", "arn:aws:s3:::site/a.html"),
        ("s3:DeleteObjectVersion", "arn:aws:s3:::site/b.html"),
    ]


@pytest.mark.parametrize(
    ("operation", "params", "expected"),
    [
        ("GetItem", {"TableName": "ledger"}, [("dynamodb:GetItem", f"{TABLE}/ledger")]),
        ("PutItem", {"TableName": "idem"}, [("dynamodb:PutItem", f"{TABLE}/idem")]),
        ("UpdateItem", {"TableName": "idem"}, [("dynamodb:UpdateItem", f"{TABLE}/idem")]),
        ("DeleteItem", {"TableName": "idem"}, [("dynamodb:DeleteItem", f"{TABLE}/idem")]),
        ("Query", {"TableName": "ledger"}, [("dynamodb:Query", f"{TABLE}/ledger")]),
        (
            "Query",
            {"TableName": "ledger", "IndexName": "by-status"},
            [("dynamodb:Query", f"{TABLE}/ledger/index/by-status")],
        ),
        ("Scan", {"TableName": "registry"}, [("dynamodb:Scan", f"{TABLE}/registry")]),
    ],
)
def test_dynamodb_item_calls(
    operation: str, params: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    """Service Authorization Reference, Amazon DynamoDB: the table (or index) ARN in the
    caller's region and account; Powertools idempotency makes the Get/Put/Update/Delete."""
    # Given a call on a table
    # When its permissions are listed
    permissions = needs("dynamodb", operation, **params)

    # Then they name the table
    assert actions(permissions) == expected


def test_a_transaction_needs_each_items_own_action_on_its_own_table() -> None:
    """Service Authorization Reference, Amazon DynamoDB: TransactWriteItems is authorized
    item by item with the action of that item."""
    # Given a transaction over two tables with every kind of item
    items = [
        {"Put": {"TableName": "ledger", "Item": {}}},
        {"Update": {"TableName": "ledger", "Key": {}}},
        {"ConditionCheck": {"TableName": "registry", "Key": {}}},
        {"Delete": {"TableName": "ledger", "Key": {}}},
    ]

    # When its permissions are listed
    permissions = needs("dynamodb", "TransactWriteItems", TransactItems=items)

    # Then each item has its own
    assert actions(permissions) == [
        ("dynamodb:PutItem", f"{TABLE}/ledger"),
        ("dynamodb:UpdateItem", f"{TABLE}/ledger"),
        ("dynamodb:ConditionCheckItem", f"{TABLE}/registry"),
        ("dynamodb:DeleteItem", f"{TABLE}/ledger"),
    ]


@pytest.mark.parametrize(
    ("url", "arn"),
    [
        (
            f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/sign.fifo",
            f"arn:aws:sqs:eu-west-1:{ACCOUNT}:sign.fifo",
        ),
        (
            f"http://127.0.0.1:5000/{ACCOUNT}/deliveries.fifo",
            f"arn:aws:sqs:{REGION}:{ACCOUNT}:deliveries.fifo",
        ),
    ],
)
def test_a_queue_url_names_its_queue_arn(url: str, arn: str) -> None:
    # Given an AWS or a local endpoint's queue URL
    # When it is turned into an ARN
    # Then the region comes from the host if it has one, else the client's
    assert queue_arn(url, REGION) == arn


@pytest.mark.parametrize(
    ("operation", "action"),
    [
        ("SendMessage", "sqs:SendMessage"),
        ("SendMessageBatch", "sqs:SendMessage"),
        ("ChangeMessageVisibility", "sqs:ChangeMessageVisibility"),
        ("ChangeMessageVisibilityBatch", "sqs:ChangeMessageVisibility"),
        ("ReceiveMessage", "sqs:ReceiveMessage"),
        ("GetQueueAttributes", "sqs:GetQueueAttributes"),
        ("DeleteMessage", "sqs:DeleteMessage"),
        ("DeleteMessageBatch", "sqs:DeleteMessage"),
    ],
)
def test_sqs_calls_act_on_the_queue_of_their_url(operation: str, action: str) -> None:
    """Service Authorization Reference, Amazon SQS: batch calls are authorized by the
    single-message action."""
    # Given a call on the sign queue
    url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/sign.fifo"

    # When its permissions are listed
    (permission,) = needs("sqs", operation, QueueUrl=url)

    # Then it is that action on that queue
    assert permission == Permission(action, f"arn:aws:sqs:{REGION}:{ACCOUNT}:sign.fifo", "queue")


def test_get_secret_value_resolves_a_secret_name_to_its_arn() -> None:
    # Given the sign function reading its key by name, and a resolver of names to ARNs
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prep-key-AbCdEf"

    # When its permissions are listed, by name and by ARN
    by_name = required_permissions(
        "secretsmanager",
        "GetSecretValue",
        {"SecretId": "prep-key"},
        REGION,
        ACCOUNT,
        {"prep-key": arn}.__getitem__,
    )
    by_arn = needs("secretsmanager", "GetSecretValue", SecretId=arn)

    # Then both are GetSecretValue on the secret's ARN
    assert by_name == by_arn == [Permission("secretsmanager:GetSecretValue", arn, "secret")]


def test_a_secret_name_without_a_resolver_is_an_error_not_a_guess() -> None:
    # Given no resolver
    # When a secret is named by name
    # Then the call is refused with what to pass
    with pytest.raises(ValueError, match="resolve_secret"):
        needs("secretsmanager", "GetSecretValue", SecretId="prep-key")


@pytest.mark.parametrize("operation", ["CreateInvalidation", "GetInvalidation"])
def test_cloudfront_invalidations_act_on_the_distribution(operation: str) -> None:
    """Service Authorization Reference, Amazon CloudFront: the distribution ARN has no
    region."""
    # Given a call made under the difusor's delivery role, in the difusor's account
    params = {"DistributionId": "E2EXAMPLE", "Id": "I1", "InvalidationBatch": {}}

    # When its permissions are listed
    (permission,) = required_permissions("cloudfront", operation, params, REGION, DIFUSOR)

    # Then it names the distribution
    assert permission == Permission(
        f"cloudfront:{operation}",
        f"arn:aws:cloudfront::{DIFUSOR}:distribution/E2EXAMPLE",
        "distribution",
    )


def test_assume_role_carries_the_external_id_for_the_trust_policy() -> None:
    """Service Authorization Reference, AWS STS: sts:AssumeRole on the role, with the
    sts:ExternalId and sts:RoleSessionName condition keys the call sets."""
    # Given the publisher opening a difusor's site
    role = f"arn:aws:iam::{DIFUSOR}:role/prep-delivery"

    # When its permissions are listed
    permissions = needs(
        "sts", "AssumeRole", RoleArn=role, RoleSessionName="replicate", ExternalId="x" * 16
    )

    # Then the trust policy check gets the external id
    assert permissions == [
        Permission(
            "sts:AssumeRole",
            role,
            "role",
            {"sts:RoleSessionName": "replicate", "sts:ExternalId": "x" * 16},
        )
    ]


def test_snake_case_operation_names_work_too() -> None:
    # Given the name as boto3 spells the method
    # When its permissions are listed
    # Then they are the same as for botocore's operation name
    assert needs("s3", "put_object", Bucket="b", Key="k") == needs(
        "s3", "PutObject", Bucket="b", Key="k"
    )


@pytest.mark.parametrize(
    ("service", "operation"),
    [("s3", "PutBucketPolicy"), ("dynamodb", "BatchWriteItem"), ("lambda", "Invoke")],
)
def test_an_unknown_call_is_an_error_so_it_cannot_slip_through(
    service: str, operation: str
) -> None:
    # Given a call the table has no entry for
    # When its permissions are asked for
    # Then it is refused, naming the call and where to add it
    with pytest.raises(UnknownOperation, match=f"{service}.{operation}.*operations.py"):
        needs(service, operation)


def test_an_unknown_transaction_item_is_an_error() -> None:
    # Given a transaction item kind the table doesn't know
    # When its permissions are asked for
    # Then it is refused
    with pytest.raises(UnknownOperation, match="Get"):
        needs("dynamodb", "TransactWriteItems", TransactItems=[{"Get": {"TableName": "t"}}])


def test_every_call_the_project_makes_has_an_entry() -> None:
    """The calls found by grepping difusion/ and lambdas/, boto3's managed copy and upload,
    and Powertools idempotency's DynamoDB persistence layer."""
    # Given the calls the functions make
    calls = {
        "s3": [
            "GetObject", "HeadObject", "PutObject", "CopyObject", "ListObjectsV2",
            "DeleteObjects", "PutObjectRetention", "CreateMultipartUpload", "UploadPart",
            "UploadPartCopy", "CompleteMultipartUpload", "AbortMultipartUpload",
        ],
        "dynamodb": [
            "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
            "TransactWriteItems",
        ],
        "sqs": ["SendMessage", "SendMessageBatch", "ChangeMessageVisibility"],
        "secretsmanager": ["GetSecretValue"],
        "cloudfront": ["CreateInvalidation"],
        "sts": ["AssumeRole"],
    }  # fmt: skip
    params = {
        "Bucket": "b",
        "Key": "k",
        "CopySource": {"Bucket": "o", "Key": "k"},
        "Delete": {"Objects": [{"Key": "k"}]},
        "TableName": "t",
        "TransactItems": [{"Put": {"TableName": "t"}}],
        "QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q",
        "SecretId": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:s",
        "DistributionId": "E1",
        "RoleArn": f"arn:aws:iam::{DIFUSOR}:role/r",
        "RoleSessionName": "s",
    }

    # When each is mapped
    # Then each needs at least one permission
    for service, operations in calls.items():
        for operation in operations:
            assert required_permissions(service, operation, params, REGION, ACCOUNT), operation

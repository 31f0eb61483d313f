"""Create calls that survive a lost answer.

botocore retries a call whose answer never came (a read timeout, a dropped connection).
When the first attempt did create the resource, the retry finds it: "already exists".
The local tooling names every resource with a fresh suffix, so that resource is the one it
was creating; each function here reads it back and goes on, after checking that it is the
resource asked for, so that a real conflict still fails with the service's own error.

Calls AWS already makes idempotent are not wrapped: ``CreateQueue`` with the same
attributes and ``CreateStateMachine`` with the same definition and role return the
existing resource, ``Put*`` calls replace, and ``SecretsManagerKeyStore.store`` creates or
replaces the secret.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, NoReturn

from botocore.exceptions import ClientError


def create_bucket(s3: Any, **params: Any) -> None:
    """``CreateBucket``; a bucket of that name already in this account is the one."""
    try:
        s3.create_bucket(**params)
    except ClientError as exc:
        code = _code(exc)
        # AWS answers BucketAlreadyOwnedByYou; moto (and us-east-1, for some settings)
        # BucketAlreadyExists, which is someone else's bucket unless this account lists it.
        if code == "BucketAlreadyOwnedByYou":
            return
        names = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
        if code != "BucketAlreadyExists" or params["Bucket"] not in names:
            raise


def create_table(dynamodb: Any, **params: Any) -> None:
    """``CreateTable``; a table of that name with the same keys is the one."""
    try:
        dynamodb.create_table(**params)
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise
        table = dynamodb.describe_table(TableName=params["TableName"])["Table"]
        if table["KeySchema"] != params["KeySchema"]:
            _conflict(exc, f"table {params['TableName']} has other keys: {table['KeySchema']}")


def enable_time_to_live(dynamodb: Any, table: str, attribute: str) -> None:
    """``UpdateTimeToLive``, enabling it; AWS refuses to enable it twice."""
    try:
        dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute},
        )
    except ClientError as exc:
        if _code(exc) != "ValidationException":
            raise
        ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            raise
        if ttl.get("AttributeName") != attribute:
            _conflict(exc, f"{table} expires items by {ttl.get('AttributeName')!r}")


def create_role(iam: Any, role_name: str, trust: dict[str, Any]) -> str:
    """``CreateRole``; returns its ARN. A role of that name with the same trust policy is
    the one."""
    try:
        role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
    except ClientError as exc:
        if _code(exc) != "EntityAlreadyExists":
            raise
        role = iam.get_role(RoleName=role_name)
        document = role["Role"]["AssumeRolePolicyDocument"]
        if isinstance(document, str):  # botocore usually decodes it; not always
            document = json.loads(urllib.parse.unquote(document))
        if document != trust:
            _conflict(exc, f"role {role_name} trusts other principals: {json.dumps(document)}")
    return str(role["Role"]["Arn"])


def create_key_value_store(cloudfront: Any, name: str, comment: str) -> str:
    """``CreateKeyValueStore``; returns its ARN. A store of that name (unique per account)
    is the one a lost answer created."""
    try:
        return str(
            cloudfront.create_key_value_store(Name=name, Comment=comment)["KeyValueStore"]["ARN"]
        )
    except ClientError as exc:
        if _code(exc) != "EntityAlreadyExists":
            raise
        return str(cloudfront.describe_key_value_store(Name=name)["KeyValueStore"]["ARN"])


def create_distribution(cloudfront: Any, config: dict[str, Any]) -> dict[str, Any]:
    """``CreateDistribution``; returns the distribution. The distribution created with the
    same caller reference (CloudFront's own idempotency key) is the one, if it has the
    same origins and comment."""
    try:
        distribution: dict[str, Any] = cloudfront.create_distribution(DistributionConfig=config)[
            "Distribution"
        ]
        return distribution
    except ClientError as exc:
        if _code(exc) != "DistributionAlreadyExists":
            raise
        for page in cloudfront.get_paginator("list_distributions").paginate():
            for summary in page["DistributionList"].get("Items", []):
                found = cloudfront.get_distribution(Id=summary["Id"])["Distribution"]
                existing = found["DistributionConfig"]
                if existing["CallerReference"] != config["CallerReference"]:
                    continue
                if _origins(existing) != _origins(config) or existing.get("Comment") != config.get(
                    "Comment"
                ):
                    _conflict(exc, f"distribution {found['Id']} has other origins or comment")
                return dict(found)
        raise


def start_execution(stepfunctions: Any, state_machine_arn: str, name: str, input: str) -> str:
    """``StartExecution``; returns its ARN. Step Functions answers a retry with the same
    input as the first attempt's while it runs; once it has ended, with
    ExecutionAlreadyExists, and then the execution of that name and input is the one."""
    try:
        return str(
            stepfunctions.start_execution(
                stateMachineArn=state_machine_arn, name=name, input=input
            )["executionArn"]
        )
    except ClientError as exc:
        if _code(exc) != "ExecutionAlreadyExists":
            raise
        arn = f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"
        execution = stepfunctions.describe_execution(executionArn=arn)
        if json.loads(execution.get("input", "null")) != json.loads(input):
            _conflict(exc, f"execution {name} was started with another input")
        return arn


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _origins(config: dict[str, Any]) -> set[str]:
    return {origin["DomainName"] for origin in config["Origins"].get("Items", [])}


def _conflict(exc: ClientError, detail: str) -> NoReturn:
    """Re-raise the service's "already exists": it is a different resource."""
    exc.add_note(f"not the resource being created: {detail}")
    raise exc

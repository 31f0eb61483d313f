"""Provisioning the embedded default survives lost answers: when a call executed but its
answer never came, botocore retries it, and the retry finds what the first attempt made."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.endpoint import Endpoint
from botocore.exceptions import ClientError, ReadTimeoutError

from difusion.adapters.sessions import new_session
from difusion.local import idempotent
from difusion.local.bench import distribution_config
from difusion.local.provision import (
    DEMO_DIFUSORES,
    LocalDeployment,
    account_session,
    provision,
)
from difusion.signing import SecretKey
from difusion.window import PublicationWindow

pytestmark = pytest.mark.integration

READS = ("Get", "Describe", "List", "Head")


@pytest.fixture
def aws(emulator, monkeypatch):
    for name, value in emulator.environment().items():
        monkeypatch.setenv(name, value)
    return emulator


@contextlib.contextmanager
def every_answer_lost_once() -> Iterator[list[str]]:
    """Every call of this thread that changes something executes on the emulator, then
    its answer is lost: botocore sees a read timeout and retries it (without sleeping).
    Yields the names of the calls whose answer was lost."""
    lost: list[str] = []
    thread = threading.get_ident()
    original = Endpoint._do_get_response

    def lose_the_first_answer(self, request, operation_model, context):
        result = original(self, request, operation_model, context)
        first_attempt = context["retries"]["attempt"] == 1
        if (
            first_attempt
            and threading.get_ident() == thread
            and not operation_model.name.startswith(READS)
        ):
            lost.append(operation_model.name)
            return None, ReadTimeoutError(endpoint_url=request.url)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Endpoint, "_do_get_response", lose_the_first_answer)
        patch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=lambda seconds: None))
        yield lost


NOW = datetime.now().astimezone()
WINDOW = PublicationWindow(NOW - timedelta(seconds=1), NOW + timedelta(days=1))  # open


def _provision() -> LocalDeployment:
    return provision(
        election="DIP_LOC_BCS",
        difusores=DEMO_DIFUSORES[:2],
        secret_key=SecretKey.generate(),
        window=WINDOW,
    )


def _inventory(deployment: LocalDeployment) -> dict[str, Any]:
    """Everything the deployment made, in each account, its random suffix blanked."""
    suffix = deployment.origin_bucket.rsplit("-", 1)[1]

    def ours(names: list[str]) -> list[str]:
        return sorted(name.replace(suffix, "*") for name in names if suffix in name)

    def account(session: boto3.session.Session) -> dict[str, Any]:
        iam = session.client("iam")
        roles = ours([role["RoleName"] for role in iam.list_roles()["Roles"]])
        cloudfront = session.client("cloudfront")
        distributions = cloudfront.list_distributions()["DistributionList"].get("Items", [])
        stepfunctions = session.client("stepfunctions")
        machines = [
            m for m in stepfunctions.list_state_machines()["stateMachines"] if suffix in m["name"]
        ]
        return {
            "buckets": ours([b["Name"] for b in session.client("s3").list_buckets()["Buckets"]]),
            "queues": ours(session.client("sqs").list_queues().get("QueueUrls", [])),
            "tables": ours(session.client("dynamodb").list_tables()["TableNames"]),
            "rules": ours([r["Name"] for r in session.client("events").list_rules()["Rules"]]),
            "secrets": ours(
                [s["Name"] for s in session.client("secretsmanager").list_secrets()["SecretList"]]
            ),
            "roles": {
                role: sorted(
                    iam.list_role_policies(RoleName=role.replace("*", suffix))["PolicyNames"]
                )
                for role in roles
            },
            "distributions": ours([d["Origins"]["Items"][0]["DomainName"] for d in distributions]),
            "executions": ours(
                [
                    f"{m['name']}/{e['name']}"
                    for m in machines
                    for e in stepfunctions.list_executions(stateMachineArn=m["stateMachineArn"])[
                        "executions"
                    ]
                ]
            ),
        }

    registry = new_session().resource("dynamodb").Table(deployment.registry_table)
    return {
        "institute": account(new_session()),
        "registered": sorted(item["difusor_id"] for item in registry.scan()["Items"]),
        **{d.difusor_id: account(account_session(d.account_id)) for d in deployment.difusores},
    }


def test_provisioning_completes_the_same_when_every_answer_is_lost_once(aws):
    # Given what a provisioning makes when every answer arrives
    expected = _inventory(_provision())
    # When another is provisioned while every create, put and start loses its first answer
    with every_answer_lost_once() as lost:
        deployment = _provision()
    # Then botocore retried each of them and provisioning went on
    assert {"CreateBucket", "CreateTable", "CreateRole", "CreateSecret", "CreateQueue"} <= set(lost)
    assert {"CreateStateMachine", "StartExecution", "UpdateTimeToLive"} <= set(lost)
    assert any(name.startswith("CreateDistribution") for name in lost)
    # And it made exactly what the first one made, nothing twice
    assert _inventory(deployment) == expected
    for difusor in deployment.difusores:
        cloudfront = account_session(difusor.account_id).client("cloudfront")
        assert cloudfront.get_distribution(Id=difusor.distribution_id)["Distribution"]


# --- a real conflict is not taken for a lost answer -----------------------------------------


def _role(name: str, service: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }
    return idempotent.create_role(new_session().client("iam"), name, trust)


def _table(name: str, key: str) -> None:
    idempotent.create_table(
        new_session().client("dynamodb"),
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _bucket(name: str, account_id: str) -> None:
    idempotent.create_bucket(account_session(account_id).client("s3"), Bucket=name)


def _distribution(name: str, origin: str) -> str:
    config = {**distribution_config(origin), "CallerReference": name, "Comment": name}
    cloudfront = new_session().client("cloudfront")
    return str(idempotent.create_distribution(cloudfront, config)["Id"])


@pytest.mark.parametrize(
    ("create", "same", "other", "code"),
    [
        pytest.param(
            _role, "lambda.amazonaws.com", "states.amazonaws.com", "EntityAlreadyExists", id="role"
        ),
        pytest.param(_table, "pk", "id", "ResourceInUseException", id="table"),
        pytest.param(
            _bucket,
            DEMO_DIFUSORES[0].account_id,
            DEMO_DIFUSORES[1].account_id,
            "BucketAlreadyExists",
            id="bucket of another account",
        ),
        pytest.param(
            _distribution, "site-a", "site-b", "DistributionAlreadyExists", id="distribution"
        ),
    ],
)
def test_a_resource_that_is_not_the_one_being_created_still_fails(aws, create, same, other, code):
    # Given a resource created under a name
    name = f"difusion-conflict-{secrets.token_hex(4)}"
    first = create(name, same)
    # When the same create is made again (a retry whose first answer was lost)
    # Then it is the same resource
    assert create(name, same) == first
    # But a different resource under that name is the service's "already exists"
    with pytest.raises(ClientError) as caught:
        create(name, other)
    assert caught.value.response["Error"]["Code"] == code

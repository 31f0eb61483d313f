"""The fault injector: which calls it faults, how botocore sees each fault, and kill points."""

from __future__ import annotations

import threading
import uuid

import pytest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from difusion.adapters.sessions import new_session
from difusion.local.dispatcher import invoking
from difusion.local.faults import FaultInjector, FaultKind, FaultPlan, KillPoint

pytestmark = [pytest.mark.chaos, pytest.mark.xdist_group("chaos")]

STANDARD = Config(retries={"mode": "standard", "total_max_attempts": 3})
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


class Killed(Exception):
    pass


def _kill(message: str) -> None:
    raise Killed(message)


@pytest.fixture
def bucket() -> str:
    name = f"chaos-{uuid.uuid4().hex[:12]}"
    new_session().client("s3").create_bucket(Bucket=name)
    return name


def _exists(bucket: str, key: str) -> bool:
    try:
        new_session().client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def always(kind: FaultKind) -> FaultPlan:
    return FaultPlan(rate=1.0, seed=1, kinds=(kind,))


def test_a_throttled_call_is_retried_by_botocore_and_then_fails_with_slow_down(bucket):
    s3 = new_session().client("s3", config=STANDARD)
    with (
        FaultInjector(always(FaultKind.THROTTLED)) as injector,
        invoking("difusion-ingest"),
        pytest.raises(ClientError) as raised,
    ):
        s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    # Then botocore tried three times, as it would against a throttling S3
    assert raised.value.response["Error"]["Code"] == "SlowDown"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert (injector.counts.calls, injector.counts.retries) == (3, 2)
    assert injector.counts.injected == {"throttled": 3}
    assert not _exists(bucket, "a")


def _codes(kind: FaultKind, calls: int) -> set[str]:
    dynamodb = new_session().client("dynamodb", config=NO_RETRIES)
    codes = set()
    with FaultInjector(always(kind)), invoking("difusion-sign"):
        for _ in range(calls):
            with pytest.raises(ClientError) as raised:
                dynamodb.list_tables()
            codes.add(raised.value.response["Error"]["Code"])
    return codes


def test_dynamodb_throttling_and_internal_errors_carry_the_services_codes():
    assert _codes(FaultKind.THROTTLED, 2) == {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
    }
    assert _codes(FaultKind.INTERNAL_ERROR, 1) == {"InternalServerError"}


@pytest.mark.parametrize(
    ("kind", "error", "executed"),
    [
        (FaultKind.CONNECTION_REFUSED, EndpointConnectionError, False),
        (FaultKind.CONNECTION_RESET, ConnectionClosedError, True),
        (FaultKind.READ_TIMEOUT, ReadTimeoutError, True),
    ],
)
def test_a_lost_connection_fails_the_call_before_or_after_the_service_executed_it(
    bucket, kind, error, executed
):
    s3 = new_session().client("s3", config=NO_RETRIES)
    with FaultInjector(always(kind)), invoking("difusion-ingest"), pytest.raises(error):
        s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    # The caller saw an error either way; after a reset or a timeout the object is there
    assert _exists(bucket, "a") is executed


def test_only_the_functions_calls_are_faulted(bucket):
    test_client = new_session().client("s3", config=NO_RETRIES)
    sqs = new_session().client("sqs", config=NO_RETRIES)
    queue = sqs.create_queue(QueueName=f"chaos-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    with FaultInjector(always(FaultKind.INTERNAL_ERROR)) as injector:
        # The test's own calls, outside any function
        test_client.put_object(Bucket=bucket, Key="mine", Body=b"x")
        with invoking("difusion-replicate"):
            # Lambda's event source mapping polls with a client no function built
            sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
            function_client = new_session().client("s3", config=NO_RETRIES)
        # A client a function built, used from one of its worker threads (no context there)
        errors: list[BaseException] = []

        def copy() -> None:
            try:
                function_client.put_object(Bucket=bucket, Key="theirs", Body=b"x")
            except ClientError as exc:
                errors.append(exc)

        worker = threading.Thread(target=copy)
        worker.start()
        worker.join()
    assert injector.counts.calls == 1
    assert len(errors) == 1
    assert _exists(bucket, "mine") and not _exists(bucket, "theirs")


def test_a_seed_decides_the_same_faults_and_the_rate_holds():
    plan = FaultPlan(rate=0.2, seed=42)
    draws = [plan.decide("difusion-replicate", "s3.CopyObject", "/b/k", n) for n in range(5000)]
    again = [plan.decide("difusion-replicate", "s3.CopyObject", "/b/k", n) for n in range(5000)]
    other = [
        FaultPlan(rate=0.2, seed=43).decide("difusion-replicate", "s3.CopyObject", "/b/k", n)
        for n in range(5000)
    ]
    assert draws == again
    assert draws != other
    faults = [d for d in draws if d is not None]
    assert 0.17 < len(faults) / len(draws) < 0.23
    assert set(faults) == set(FaultKind)


@pytest.mark.parametrize("after", [False, True])
def test_a_kill_point_stops_at_the_nth_function_call_before_or_after_it_executed(bucket, after):
    s3 = new_session().client("s3", config=NO_RETRIES)
    with FaultInjector(kill=KillPoint(2, after), on_kill=_kill), invoking("difusion-sign"):
        s3.put_object(Bucket=bucket, Key="first", Body=b"x")
        with pytest.raises(Killed, match="call 2"):
            s3.put_object(Bucket=bucket, Key="second", Body=b"x")
    assert _exists(bucket, "first")
    assert _exists(bucket, "second") is after

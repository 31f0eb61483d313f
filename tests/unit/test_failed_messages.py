"""A failed message's return: the retry schedule and the visibility change on its receipt."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from difusion import topology
from difusion.adapters.queues import FailedMessages, queue_url_of
from difusion.topology import RETRY, RetrySchedule


@given(st.integers(min_value=1, max_value=50), st.floats(min_value=0, max_value=1))
def test_every_retry_comes_within_the_cap_and_never_at_once_after_the_first(count, rand):
    delay = RETRY.delay(count, lambda: rand)
    assert 0 < delay <= RETRY.cap_seconds
    # Well inside a minute, the promise to a difusor whose delivery failed
    assert delay < 60


def test_retries_back_off_exponentially_until_the_cap():
    # equal jitter: the middle of each range
    delays = [RETRY.delay(n, lambda: 0.5) for n in range(1, 7)]
    assert delays == [4, 8, 15, 30, 34, 34]


def test_the_demo_scales_the_schedule_and_says_so():
    fast = RETRY.scaled(0.01)
    assert fast == RetrySchedule(0.05, 0.45)
    assert fast.delay(10, lambda: 1.0) == 0  # rounds to "now" in accelerated time


def test_the_queues_keep_six_function_timeouts_and_each_step_takes_one_message():
    for queue in topology.QUEUES.values():
        consumer = topology.FUNCTIONS[queue.consumer]
        assert queue.visibility_timeout_seconds == 6 * consumer.timeout_seconds
        assert queue.batch_size == 1
    assert topology.QUEUES["deliveries"].visibility_timeout_seconds == 5400


def test_role_names_carry_the_election():
    assert topology.publisher_role_name("DIP_LOC_BCS") == "difusion-publisher-dip-loc-bcs"
    assert topology.delivery_role_name("SIMULACRO_1") == "difusion-delivery-simulacro-1"
    assert len(topology.monitor_role_name("E" * 40)) <= 64


def test_a_queue_url_is_made_from_its_arn():
    arn = "arn:aws:sqs:us-west-2:111122223333:difusion-deliveries.fifo"
    assert queue_url_of(arn) == (
        "https://sqs.us-west-2.amazonaws.com/111122223333/difusion-deliveries.fifo"
    )
    with pytest.raises(ValueError, match="not an SQS queue ARN"):
        queue_url_of("arn:aws:sns:us-west-2:111122223333:topic")


class FakeSqs:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = fail

    def change_message_visibility(self, **kwargs: Any) -> None:
        if self.fail:
            raise ClientError({"Error": {"Code": "ReceiptHandleIsInvalid"}}, "Change")
        self.calls.append(kwargs)


def _record(message_id: str, received: int) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "attributes": {"ApproximateReceiveCount": str(received)},
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:difusion-deliveries.fifo",
    }


def test_only_the_failed_records_are_brought_back_each_after_its_own_delay():
    # Given a batch of three where the second and third failed, received 1 and 3 times
    sqs = FakeSqs()
    event = {"Records": [_record("a", 1), _record("b", 1), _record("c", 3)]}
    response = {"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "c"}]}
    # When the handler reports them
    delays = FailedMessages(sqs, RETRY, rand=lambda: 1.0).retry_soon(event, response)
    # Then exactly those receipts get the schedule's delay
    assert delays == [5, 20]
    assert [c["ReceiptHandle"] for c in sqs.calls] == ["handle-b", "handle-c"]
    assert {c["QueueUrl"] for c in sqs.calls} == {
        "https://sqs.us-east-1.amazonaws.com/123456789012/difusion-deliveries.fifo"
    }


def test_a_refused_visibility_change_leaves_the_message_to_the_queues_timeout():
    sqs = FakeSqs(fail=True)
    event = {"Records": [_record("a", 1)]}
    response = {"batchItemFailures": [{"itemIdentifier": "a"}]}
    assert FailedMessages(sqs, RETRY).retry_soon(event, response) == []


def test_a_batch_without_failures_changes_nothing():
    sqs = FakeSqs()
    assert FailedMessages(sqs, RETRY).retry_soon({"Records": [_record("a", 1)]}, {}) == []
    assert sqs.calls == []

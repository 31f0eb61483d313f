"""Retrying CloudFront's throttling with backoff, never other errors."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from difusion.adapters.difusor_site import retry_with_backoff


def error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "CreateInvalidation")


def test_retries_too_many_invalidations_until_it_succeeds():
    calls, sleeps = [], []

    def create():
        calls.append(1)
        if len(calls) < 3:
            raise error("TooManyInvalidationsInProgress")
        return "I123"

    assert (
        retry_with_backoff(create, {"TooManyInvalidationsInProgress"}, sleep=sleeps.append)
        == "I123"
    )
    assert len(calls) == 3
    assert len(sleeps) == 2 and all(s >= 0 for s in sleeps)


def test_gives_up_after_the_last_attempt():
    def create():
        raise error("Throttling")

    with pytest.raises(ClientError):
        retry_with_backoff(create, {"Throttling"}, attempts=4, sleep=lambda _: None)


def test_other_errors_are_not_retried():
    calls = []

    def create():
        calls.append(1)
        raise error("AccessDenied")

    with pytest.raises(ClientError):
        retry_with_backoff(create, {"Throttling"}, sleep=lambda _: None)
    assert len(calls) == 1


def test_backoff_grows_and_is_capped():
    sleeps: list[float] = []

    def create():
        raise error("Throttling")

    with pytest.raises(ClientError):
        retry_with_backoff(
            create, {"Throttling"}, attempts=10, base_seconds=1, cap_seconds=4, sleep=sleeps.append
        )
    assert len(sleeps) == 9 and max(sleeps) <= 4

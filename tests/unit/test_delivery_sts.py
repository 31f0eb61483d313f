"""Where the functions assume the difusores' delivery roles: STS's regional endpoint in the
sites' Region, whatever Region the institute runs in and whatever the environment says."""

from __future__ import annotations

import pytest

from difusion.adapters import factory
from difusion.topology import DIFUSOR_REGION


@pytest.fixture
def aws_without_emulator(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.mark.parametrize("institute_region", ["mx-central-1", "us-east-1", "eu-south-2"])
@pytest.mark.parametrize("mode", [None, "legacy", "regional"])
def test_delivery_roles_are_assumed_at_the_sites_regional_sts_endpoint(
    aws_without_emulator, monkeypatch, institute_region, mode
):
    # Given the institute's functions in any Region, and an operator's STS endpoint setting
    monkeypatch.setenv("AWS_DEFAULT_REGION", institute_region)
    monkeypatch.setenv("AWS_REGION", institute_region)
    if mode is None:
        monkeypatch.delenv("AWS_STS_REGIONAL_ENDPOINTS", raising=False)
    else:
        monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", mode)

    # When the delivery's STS client is built
    sts = factory.delivery_sts()

    # Then it is us-east-1's regional endpoint: enabled in every account, version 2 tokens
    assert DIFUSOR_REGION == "us-east-1"
    assert sts.meta.region_name == DIFUSOR_REGION
    assert sts.meta.endpoint_url == "https://sts.us-east-1.amazonaws.com"


def test_the_institutes_own_clients_stay_in_its_region(aws_without_emulator, monkeypatch):
    # Given the institute in an opt-in Region (the control: only delivery STS moves)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "mx-central-1")
    monkeypatch.setenv("AWS_REGION", "mx-central-1")

    # Then its own clients, STS included, answer in its Region
    assert factory.client("sts").meta.endpoint_url == "https://sts.mx-central-1.amazonaws.com"
    assert factory.client("s3").meta.region_name == "mx-central-1"


def test_the_embedded_default_still_reaches_the_emulator(monkeypatch):
    # Given AWS_ENDPOINT_URL naming the local emulator (as the embedded default sets it)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "mx-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    # Then the same code goes there: no branch on "local"
    assert factory.delivery_sts().meta.endpoint_url == "http://127.0.0.1:5999"

"""How the institute reaches a difusor's site: its own S3 client in the sites' region, and
the difusor's role for the version pointer only, assumed once while its credentials last."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from difusion.adapters.difusor_site import DifusorSites
from difusion.adapters.sessions import new_session
from difusion.models import Difusor

DIFUSOR = Difusor(
    difusor_id="uabcs",
    name="UABCS",
    account_id="222222222222",
    bucket="prep-uabcs",
    distribution_id="E123",
    role_arn="arn:aws:iam::222222222222:role/difusion-delivery-dip-loc-bcs",
    external_id="e" * 32,
    public_url="https://prep.uabcs.mx",
    kvs_arn="arn:aws:cloudfront::222222222222:key-value-store/0d8e4a3c-1111-2222-3333-444455556666",
)


class FakeSts:
    def __init__(self, now: datetime) -> None:
        self.calls: list[dict[str, Any]] = []
        self.now = now

    def assume_role(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {
            "Credentials": {
                "AccessKeyId": "AKIA",
                "SecretAccessKey": "s",
                "SessionToken": "t",
                "Expiration": self.now + timedelta(hours=1),
            }
        }


def test_the_site_bucket_is_written_with_the_institutes_own_client_in_us_east_1(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")  # the institute's region
    now = datetime(2024, 6, 2, 20, tzinfo=UTC)
    sts = FakeSts(now)
    # When a site is opened (and its pointer is not touched)
    site = DifusorSites(sts, "difusion-DIP_LOC_BCS", 4, clock=lambda: now).open(DIFUSOR)
    # Then the bucket client is in the sites' region, and no role was assumed
    assert site._s3.meta.region_name == "us-east-1"
    assert sts.calls == []


def test_the_delivery_role_is_assumed_with_the_external_id_once_while_it_lasts():
    now = [datetime(2024, 6, 2, 20, tzinfo=UTC)]
    sts = FakeSts(now[0])
    sites = DifusorSites(sts, "difusion-DIP_LOC_BCS", 4, clock=lambda: now[0])
    # Given two deliveries' pointer switches twenty minutes apart
    first = sites.open(DIFUSOR).pointer
    now[0] += timedelta(minutes=20)
    second = sites.open(DIFUSOR).pointer
    # Then one AssumeRole served both, with the difusor's external id, and one client
    assert len(sts.calls) == 1
    assert sts.calls[0]["ExternalId"] == DIFUSOR.external_id
    assert sts.calls[0]["RoleArn"] == DIFUSOR.role_arn
    assert first._client is second._client and first.arn == DIFUSOR.kvs_arn
    # the client is KeyValueStore's, in the sites' region, signed with SigV4A
    assert first._client.meta.service_model.service_name == "cloudfront-keyvaluestore"
    assert first._client.meta.region_name == "us-east-1"
    # ...and near the credentials' expiry it is assumed again, with a new client
    now[0] += timedelta(minutes=35)
    third = sites.open(DIFUSOR).pointer
    assert len(sts.calls) == 2 and third._client is not first._client


def test_a_difusor_without_a_store_cannot_be_switched_and_says_why():
    sites = DifusorSites(FakeSts(datetime(2024, 6, 2, tzinfo=UTC)), "s", 4)
    with pytest.raises(RuntimeError, match="KeyValueStoreArn"):
        _ = sites.open(replace(DIFUSOR, kvs_arn="")).pointer


def test_role_credentials_come_from_a_regional_sts_endpoint(monkeypatch):
    # CloudFront KeyValueStore refuses the global endpoint's version 1 session tokens
    # (developer guide, restrictions on CloudFront Functions): botocore's default is regional.
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_STS_REGIONAL_ENDPOINTS"):
        monkeypatch.delenv(name, raising=False)
    sts = new_session().client("sts", region_name="us-east-1")
    assert sts.meta.endpoint_url == "https://sts.us-east-1.amazonaws.com"

"""How the institute reaches a difusor's site: its own S3 client in the sites' region, and
the difusor's role for the CDN only, assumed once while its credentials last."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from difusion.adapters.difusor_site import DifusorSites
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
    # When a site is opened (and nothing is invalidated)
    site = DifusorSites(sts, "difusion-DIP_LOC_BCS", 4, clock=lambda: now).open(DIFUSOR)
    # Then the bucket client is in the sites' region, and no role was assumed
    assert site._s3.meta.region_name == "us-east-1"
    assert sts.calls == []


def test_the_delivery_role_is_assumed_with_the_external_id_once_while_it_lasts():
    now = [datetime(2024, 6, 2, 20, tzinfo=UTC)]
    sts = FakeSts(now[0])
    sites = DifusorSites(sts, "difusion-DIP_LOC_BCS", 4, clock=lambda: now[0])
    # Given two deliveries' invalidations twenty minutes apart
    sites._cloudfront(DIFUSOR)
    now[0] += timedelta(minutes=20)
    sites._cloudfront(DIFUSOR)
    # Then one AssumeRole served both, with the difusor's external id
    assert len(sts.calls) == 1
    assert sts.calls[0]["ExternalId"] == DIFUSOR.external_id
    assert sts.calls[0]["RoleArn"] == DIFUSOR.role_arn
    # ...and near the credentials' expiry it is assumed again
    now[0] += timedelta(minutes=35)
    sites._cloudfront(DIFUSOR)
    assert len(sts.calls) == 2

"""A key pinned in config (PREP_PUBLIC_KEY) outranks the origin's keys/prep.pub."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from difusion.adapters.factory import replicate_service
from difusion.errors import DeliveryError
from difusion.models import DeliveryRequest, DeliveryScope
from difusion.settings import ReplicateSettings
from difusion.signing import SecretKey
from tests.integration.test_continuity import _service

pytestmark = pytest.mark.integration


def test_nothing_is_published_under_a_key_other_than_the_pinned_one(pipeline, packages):
    pipeline.process(packages[0])
    before = pipeline.site_objects("uabcs")
    settings = ReplicateSettings.from_env(os.environ)
    request = DeliveryRequest.for_head(
        pipeline.deployment.election,
        "uabcs",
        pipeline.ledger.head(),
        reason="pinned",
        scope=DeliveryScope.FULL,
    )
    # Given the pipeline pinned to another key than the one in the origin
    other = SecretKey.generate().public_key
    service = replicate_service(replace(settings, public_key=other))
    # Then a delivery is refused before anything is written, with both keys named
    with pytest.raises(DeliveryError, match="not the pinned PREP_PUBLIC_KEY") as refused:
        service.deliver(request, attempt=3)
    assert other.key_id_text in str(refused.value)
    assert pipeline.site_objects("uabcs") == before
    # the step records the last attempt's failure, as the handler's wrapper does
    service.record_failure(request, 3, final=True, error=str(refused.value))
    [record] = pipeline.ledger.items(f"DELIVERY#{request.snapshot_id}#uabcs#pinned")
    assert record["status"] == "failed"
    # And pinned to the institute's own key, the same delivery goes through
    right = replicate_service(replace(settings, public_key=pipeline.secret_key.public_key))
    again = replace(request, reason="pinned-right")
    assert right.deliver(again, attempt=1).status == "delivered"


def test_the_monitor_checks_sites_against_the_pinned_key(pipeline, packages):
    from difusion.services.continuity import MonitorPolicy

    pipeline.process(packages[0])
    other = SecretKey.generate().public_key
    now = datetime.now(UTC)
    policy = MonitorPolicy(period=timedelta(minutes=15), pinned_key=other)
    report = _service(pipeline, lambda: now, policy).run_period()
    assert {c.outcome for c in report.checks} == {"bad_signature"}


def test_the_embedded_default_pins_the_institutes_key_as_the_config_does(pipeline):
    # The functions' environment: what the config's public_key gives them on AWS
    assert ReplicateSettings.from_env(os.environ).public_key == pipeline.secret_key.public_key

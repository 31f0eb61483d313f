"""The ledger on the emulator keeps the rules the in-memory fake keeps (tests/fakes.py)."""

from __future__ import annotations

import pytest

from difusion.adapters.ledger import Ledger
from difusion.models import DeliveryRequest
from tests.ledger_contract import exercise_delivery_ledger

pytestmark = pytest.mark.integration


def test_the_real_delivery_ledger_keeps_the_contract(pipeline):
    ledger: Ledger = pipeline.ledger

    def status_of(request: DeliveryRequest) -> str:
        sk = f"DELIVERY#{request.snapshot_id}#{request.difusor_id}"
        if request.is_redelivery:
            sk += f"#{request.reason}"
        [record] = [r for r in ledger.items(sk) if r["sk"] == sk]
        return str(record["status"])

    exercise_delivery_ledger(ledger, status_of)

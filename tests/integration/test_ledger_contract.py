"""The ledger on the emulator keeps the rules the in-memory fake keeps (tests/fakes.py),
and its typed readers read what the closing record was always made of."""

from __future__ import annotations

from pathlib import Path

import pytest

from difusion.adapters.ledger import Ledger
from difusion.adapters.sessions import new_session
from difusion.closing import build_closing_record, closing_record_json, render_closing_record_html
from difusion.models import DeliveryRequest
from tests import closing_night as night
from tests.ledger_contract import exercise_delivery_ledger

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parent.parent / "fixtures" / "closing"


def test_the_real_delivery_ledger_keeps_the_contract(pipeline):
    ledger: Ledger = pipeline.ledger

    def status_of(request: DeliveryRequest) -> str:
        sk = f"DELIVERY#{request.snapshot_id}#{request.difusor_id}"
        if request.is_redelivery:
            sk += f"#{request.reason}"
        [record] = [r for r in ledger.items(sk) if r["sk"] == sk]
        return str(record["status"])

    exercise_delivery_ledger(ledger, status_of)


def test_the_closing_record_from_the_real_ledgers_readers_is_byte_for_byte_what_it_was(pipeline):
    # Given a night's items in the ledger's table, under an election of their own
    election = "NIGHT_OF_RECORDS"
    table = new_session().resource("dynamodb").Table(pipeline.deployment.ledger_table)
    with table.batch_writer() as batch:
        for item in [
            night.WINDOW_ITEM,
            *night.SNAPSHOTS,
            *night.REUPLOADS,
            *night.DELIVERIES,
            *night.CHECKS,
            *night.INCIDENTS,
            *night.UPSTREAM_INCIDENTS,
        ]:
            batch.put_item(Item={**item, "pk": f"ELECTION#{election}"})
    ledger = Ledger(new_session().resource("dynamodb"), table.name, election)
    # When the closing record is built from what its typed readers return, as finalize does
    record = ledger.window()
    assert record == night.RECORD
    closing = build_closing_record(
        election=night.ELECTION,
        time_zone=night.TIME_ZONE,
        window=night.WINDOW,
        record=record,
        snapshots=ledger.snapshot_records(),
        refused_reuploads=ledger.rejection_records(),
        deliveries=ledger.delivery_records(),
        incidents=ledger.incident_records(),
        upstream_incidents=ledger.upstream_incident_records(),
        checks=ledger.check_records(),
        difusores=night.DIFUSORES,
        retained=night.RETAINED,
        generated_at=night.GENERATED_AT,
    )
    # Then it is the record these items made before the ledger had typed records
    assert closing_record_json(closing) == (GOLDEN / "registro-de-cierre.json").read_bytes()
    page = render_closing_record_html(closing).encode("utf-8")
    assert page == (GOLDEN / "registro-de-cierre.html").read_bytes()
    # and the upstream's incidents are apart from every difusor's
    assert {i.difusor_id for i in ledger.incident_records()} == {"canal-10", "uabcs"}

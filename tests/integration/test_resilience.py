"""Duplicates, replays, out-of-order deliveries and a broken difusor."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from difusion.adapters.ledger import AlreadyPublished
from difusion.adapters.sessions import new_session
from difusion.models import DeliveryOutcome, DeliveryRequest, DeliveryStatus, Difusor

pytestmark = pytest.mark.integration


def test_a_multipart_upload_notifies_twice_and_is_delivered_once(pipeline, series, tmp_path):
    # Given a package large enough for a multipart upload (S3 then notifies twice)
    from tests.builders import zip_bytes

    files = dict(series[0].files)
    files["assets/csv/respaldo.csv"] = bytes(range(256)) * 24_000  # ~6 MB, incompressible-ish
    package = tmp_path / series[0].package_name()
    package.write_bytes(zip_bytes(files, compression=0))
    pipeline.upload(package, multipart=True)
    pipeline.settle()
    # Then there is one accepted snapshot and one delivery per difusor, each made once
    assert pipeline.ledger.snapshot(series[0].snapshot_id)["status"] == "accepted"
    deliveries = pipeline.ledger.items("DELIVERY#")
    assert len(deliveries) == len(pipeline.deployment.difusores)
    assert all(d["attempts"] == 1 and d["status"] == "delivered" for d in deliveries)
    assert len(_switches(pipeline.deployment.difusores[0])) == 1
    # The second notification may reach a second ingest while the first still runs: it is
    # told so by the idempotency layer and retried later, when it finds the stored result.
    assert all("IdempotencyAlreadyInProgressError" in e for e in pipeline.dispatcher.handler_errors)


def test_a_redelivered_delivery_message_does_not_deliver_twice(pipeline, packages, series):
    pipeline.process(packages[0])
    difusor = pipeline.deployment.difusores[0]
    head = pipeline.ledger.head()
    request = DeliveryRequest.for_head(pipeline.deployment.election, difusor.difusor_id, head)
    # When SQS hands the same delivery to the function again (a new message id)
    _send_delivery(pipeline, request, dedup="replay-1")
    pipeline.settle()
    # Then nothing is copied again and the site's version is switched once
    [delivery] = pipeline.ledger.items(f"DELIVERY#{head.snapshot_id}#{difusor.difusor_id}")
    assert delivery["attempts"] == 1
    assert len(_switches(difusor)) == 1


def test_an_old_delivery_replayed_after_a_newer_one_never_rolls_a_difusor_back(
    pipeline, packages, series
):
    pipeline.process(packages[0])
    first_head = pipeline.ledger.head()
    pipeline.process(packages[1])
    difusor = pipeline.deployment.difusores[2]
    before = pipeline.site_objects(difusor.difusor_id)
    # When the first snapshot's delivery is replayed (idempotency records have expired)
    _clear_idempotency(pipeline)
    request = DeliveryRequest.for_head(pipeline.deployment.election, difusor.difusor_id, first_head)
    _send_delivery(pipeline, request, dedup="replay-old")
    pipeline.settle()
    # Then the difusor still publishes the newer snapshot, byte for byte
    assert pipeline.site_objects(difusor.difusor_id) == before
    assert pipeline.ledger.published(difusor.difusor_id).sequence == 2
    [old] = pipeline.ledger.items(f"DELIVERY#{first_head.snapshot_id}#{difusor.difusor_id}")
    assert old["status"] == "delivered"  # the original record is not rewritten
    assert pipeline.dispatcher.handler_errors == []


def test_a_broken_difusor_fails_alone_into_the_dead_letter_queue(pipeline, packages):
    # Given a fourth difusor whose delivery target is broken: its role resolves to an
    # account where neither its version pointer's store nor its site bucket exists
    broken = Difusor(
        difusor_id="medio-roto",
        name="Medio con configuración rota",
        account_id="444444444444",
        bucket="prep-medio-roto",
        distribution_id="E000BROKEN",
        external_id="x" * 32,
        role_arn="arn:aws:iam::444444444444:role/difusion-delivery",
        public_url="https://prep.medio-roto.example",
        kvs_arn="arn:aws:cloudfront::444444444444:key-value-store/00000000-0000-0000-0000-0000000000ff",
    )
    pipeline.registry.put(broken)
    # When a snapshot is published
    record = pipeline.process(packages[0])
    assert record["status"] == "accepted"
    # Then the other three difusores got it
    deliveries = {d["difusor_id"]: d for d in pipeline.ledger.items("DELIVERY#")}
    for difusor in pipeline.deployment.difusores:
        assert deliveries[difusor.difusor_id]["status"] == "delivered"
        assert pipeline.site_objects(difusor.difusor_id)
    # ...and the broken one is recorded as failed, with the error, after every attempt
    failed = deliveries["medio-roto"]
    assert failed["status"] == "failed"
    assert failed["attempts"] == pipeline.deployment.max_attempts
    assert "ResourceNotFoundException" in failed["last_error"]
    assert "key value store" in failed["last_error"]
    # ...its message is in the dead-letter queue, not lost
    [dead] = pipeline.dead_letters("deliveries")
    assert json.loads(dead["Body"])["difusor_id"] == "medio-roto"


def test_a_suspended_difusor_is_not_delivered_to(pipeline, packages):
    from dataclasses import replace

    from difusion.models import DifusorStatus

    suspended = pipeline.deployment.difusores[0]
    pipeline.registry.put(replace(suspended, status=DifusorStatus.SUSPENDED))
    pipeline.process(packages[0])
    assert pipeline.site_objects(suspended.difusor_id) == {}
    deliveries = {d["difusor_id"]: d["status"] for d in pipeline.ledger.items("DELIVERY#")}
    assert suspended.difusor_id not in deliveries
    assert set(deliveries.values()) == {"delivered"}


# --- the ledger's ordering invariant, as a property ----------------------------------------


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=12))
def test_a_difusors_published_sequence_only_moves_forward(pipeline, arrivals):
    # Deliveries for sequences arriving in any order, duplicates included
    from datetime import UTC, datetime

    ledger = pipeline.ledger
    difusor_id = f"prop-{abs(hash(tuple(arrivals)))}"
    published: list[int] = []
    for sequence in arrivals:
        request = DeliveryRequest(
            ledger.election,
            difusor_id,
            f"s{sequence}",
            sequence,
            f"m{sequence}",
            "0" * 64,
            cut_time="2024-06-02T20:00:00-07:00",
        )
        try:
            ledger.claim(request, 60, datetime.now(UTC))
            ledger.start_delivery(request, 1, datetime.now(UTC))
            ledger.finish_delivery(
                request,
                DeliveryOutcome(difusor_id, request.snapshot_id, DeliveryStatus.DELIVERED),
                datetime.now(UTC),
            )
        except AlreadyPublished:
            pass
        state = ledger.published(difusor_id)
        published.append(state.sequence)
    # The published sequence never decreases, and is the highest that ever arrived
    assert published == sorted(published)
    assert published[-1] == max(arrivals)
    # A delivery is only ever accepted for a sequence above the one published before it
    accepted = [
        s for i, s in enumerate(arrivals) if s == published[i] and (i == 0 or s > published[i - 1])
    ]
    assert accepted == sorted(set(accepted))


def _send_delivery(pipeline, request: DeliveryRequest, dedup: str) -> None:
    new_session().client("sqs").send_message(
        QueueUrl=pipeline.deployment.delivery_queue_url,
        MessageBody=json.dumps(request.to_json()),
        MessageGroupId=request.difusor_id,
        MessageDeduplicationId=dedup,
    )


def _clear_idempotency(pipeline) -> None:
    table = new_session().resource("dynamodb").Table(pipeline.deployment.idempotency_table)
    for item in table.scan()["Items"]:
        table.delete_item(Key={"id": item["id"]})


def _switches(difusor) -> list[str]:
    """The pointer writes that made a new version of the site live."""
    from difusion.local.kvs import store_writes
    from difusion.versions import Pointer

    versions = [Pointer.from_text(text).live for text in store_writes(difusor.kvs_arn)]
    return sorted({str(live.version) for live in versions if live is not None})

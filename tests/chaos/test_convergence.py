"""Controls: the convergence checks pass a clean night and catch each defect they exist for."""

from __future__ import annotations

import json

import pytest

from difusion.adapters.pointer_store import KeyValueStorePointer
from difusion.adapters.sessions import new_session
from difusion.local.chaos import ChaosHarness, RunResult
from difusion.local.provision import account_session
from difusion.manifest import sha256_hex
from difusion.versions import Held, slot_prefix

pytestmark = [pytest.mark.chaos, pytest.mark.xdist_group("chaos")]


def test_a_clean_night_keeps_every_rule(clean_night: tuple[int, RunResult]):
    calls, result = clean_night
    assert result.ok, result.findings.violations
    figures = result.findings.figures
    assert figures["deliveries"]["made"] == figures["deliveries"]["expected"] == 9
    assert figures["verified"] == "3/3"
    assert (figures["double_publications"], figures["regressions"]) == (0, 0)
    assert calls > 0


def test_each_broken_rule_is_named(crash_harness: ChaosHarness, clean_night: tuple[int, RunResult]):
    # Given the clean night's deployment, tampered with after it settled
    _, result = clean_night
    assert result.state is not None
    deployment = crash_harness.deployment(result.state)
    session = new_session()
    s3 = session.client("s3")
    first, second = deployment.difusores[0], deployment.difusores[1]
    ledger = session.resource("dynamodb").Table(deployment.ledger_table)
    pk = f"ELECTION#{deployment.election}"
    last = crash_harness.snapshot_ids[-1]
    # a signed manifest the ledger never accepted
    s3.put_object(Bucket=deployment.origin_bucket, Key="manifests/000009_stray.json", Body=b"{}")
    # a lease left held and a delivery left in progress
    ledger.update_item(
        Key={"pk": pk, "sk": f"PUBLISHED#{first.difusor_id}"},
        UpdateExpression="SET lease_until = :u, lease_sequence = :s",
        ExpressionAttributeValues={":u": 1, ":s": 3},
    )
    ledger.put_item(
        Item={
            "pk": pk,
            "sk": f"DELIVERY#{last}#{second.difusor_id}#redelivery",
            "snapshot_id": last,
            "difusor_id": second.difusor_id,
            "status": "in_progress",
        }
    )
    # a dead letter the ledger knows nothing of
    session.client("sqs").send_message(
        QueueUrl=deployment.dead_letter_queue_urls["deliveries"],
        MessageBody=json.dumps({"snapshot_id": "20240602_2359_PREP_X", "difusor_id": "uabcs"}),
        MessageGroupId="uabcs",
        MessageDeduplicationId="control",
    )
    # a site file altered, a delivery's switch made twice, a switch that goes back
    third = deployment.difusores[2]
    site = account_session(third.account_id)
    pointers = KeyValueStorePointer(site.client("cloudfront-keyvaluestore"), third.kvs_arn)
    stored = pointers.read()
    live = stored.pointer.live
    site.client("s3").put_object(
        Bucket=third.bucket, Key=slot_prefix(live.slot) + "index.html", Body=b"<p>otra cosa</p>"
    )
    again = stored.pointer.retired(live.held, at=0).switched(live.held, delivery=live.delivery)
    etag = pointers.write(again, stored.etag)
    origin_first_manifest = next(
        o["Key"]
        for o in s3.list_objects_v2(Bucket=deployment.origin_bucket, Prefix="manifests/000001_")[
            "Contents"
        ]
        if o["Key"].endswith(".json")
    )
    old = s3.get_object(Bucket=deployment.origin_bucket, Key=origin_first_manifest)["Body"].read()
    back = again.retired(live.held, at=0).switched(Held(1, sha256_hex(old)), delivery="0" * 16)
    pointers.write(back, etag)
    # When the night is inspected again
    findings = crash_harness.inspect(result.state)
    # Then each defect is named
    text = "\n".join(findings.violations)
    for expected in (
        "signed manifest manifests/000009_stray.json in the origin, not accepted",
        f"{first.difusor_id}'s delivery lease still held after settling",
        f"delivery {last} → {second.difusor_id} left 'in_progress' after settling",
        "dead letter for delivery 20240602_2359_PREP_X → uabcs without a 'failed' ledger record",
        f"{third.difusor_id}'s version was switched 5 times by 4 deliveries",
        f"{third.difusor_id}'s published sequence went back: [1, 2, 3, 3, 1]",
        f"{third.difusor_id} serves sequence 1, the ledger says it publishes 3",
    ):
        assert expected in text
    assert f"{third.difusor_id}'s site does not verify" in text
    assert findings.figures["regressions"] == 1
    assert findings.figures["double_publications"] == 1

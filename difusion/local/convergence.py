"""What a night on the embedded default must have come to, read from what it left.

After a chaos night or a crash and a restart, the pipeline has settled (no message left in
a queue) and :func:`inspect` reads the ledger, the dead-letter queues, the origin and each
difusor's bucket and distribution, as an auditor would, and says what holds and what does
not. Nothing here trusts the pipeline's own report: every figure comes from the stores.

The rules (each a violation when broken):

- every uploaded cut is accepted, and every accepted snapshot is delivered to every active
  difusor (``deliveries made`` = cuts × active difusores);
- nothing is dropped silently: a snapshot or delivery a step gave up on is ``failed`` in the
  ledger *and* its message is in that step's dead-letter queue, and every dead letter has
  its ``failed`` record;
- no delivery is left ``in_progress`` or ``retrying`` and no difusor's lease is held once
  everything has settled;
- every signed manifest in the origin is one the ledger accepted (same sequence, same
  bytes);
- each difusor serves what the ledger says it publishes, the site (its live version) verifies
  with its whole history, its published sequence never went back (every switch its version
  pointer took), and no delivery switched it twice;
- no monitor check found a site ``altered`` (nothing tampers with the sites here).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key

from difusion.adapters.pointer_store import KeyValueStorePointer
from difusion.adapters.sessions import new_session
from difusion.adapters.site_sources import BucketSource
from difusion.local.kvs import store_writes
from difusion.local.provision import LocalDeployment, account_session
from difusion.manifest import sha256_hex
from difusion.package_name import snapshot_id_of
from difusion.signing import PublicKey
from difusion.verification import verify_site
from difusion.versions import Held, Pointer, slot_prefix

_UNSETTLED = ("in_progress", "retrying")


@dataclass
class Findings:
    """The figures of one run and every rule it broke."""

    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "figures": self.figures, "violations": self.violations}


def inspect(
    deployment: LocalDeployment, snapshot_ids: Iterable[str], public_key: PublicKey
) -> Findings:
    """Check a settled deployment that was sent ``snapshot_ids`` (in cut order)."""
    expected = list(snapshot_ids)
    session = new_session()
    items = _ledger(session, deployment)
    findings = Findings()
    dead = _dead_letters(session, deployment)
    active = [
        d.difusor_id
        for d in deployment.difusores
        if _registry_status(session, deployment, d.difusor_id) == "active"
    ]
    _snapshots(findings, items, expected, dead)
    _deliveries(findings, items, expected, active, dead)
    _origin_manifests(findings, session, deployment, items)
    _sites(findings, deployment, items, public_key)
    _checks(findings, items)
    findings.figures["dead_letters"] = {queue: len(bodies) for queue, bodies in dead.items()}
    findings.figures["suspended"] = sorted(
        d.difusor_id for d in deployment.difusores if d.difusor_id not in active
    )
    for difusor_id in findings.figures["suspended"]:
        findings.violations.append(f"{difusor_id} is not active at the end of the night")
    return findings


# --- reading -----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """DynamoDB's numbers as ints (or floats), its sets as sorted lists: for JSON."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _ledger(session: boto3.session.Session, deployment: LocalDeployment) -> list[dict[str, Any]]:
    table = session.resource("dynamodb").Table(deployment.ledger_table)
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": Key("pk").eq(f"ELECTION#{deployment.election}"),
        "ConsistentRead": True,
    }
    items: list[dict[str, Any]] = []
    while True:
        page = table.query(**kwargs)
        items.extend(json.loads(json.dumps(page.get("Items", []), default=_plain)))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _with_prefix(items: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [i for i in items if str(i["sk"]).startswith(prefix)]


def _registry_status(
    session: boto3.session.Session, deployment: LocalDeployment, difusor_id: str
) -> str:
    table = session.resource("dynamodb").Table(deployment.registry_table)
    item = table.get_item(Key={"difusor_id": difusor_id}, ConsistentRead=True).get("Item", {})
    return str(item.get("status", "?"))


def _dead_letters(
    session: boto3.session.Session, deployment: LocalDeployment
) -> dict[str, list[dict[str, Any]]]:
    """Every message in each dead-letter queue, by queue (read, kept invisible a while)."""
    sqs = session.client("sqs")
    found: dict[str, list[dict[str, Any]]] = {}
    for queue, url in deployment.dead_letter_queue_urls.items():
        bodies: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                try:
                    bodies.append(json.loads(message["Body"]))
                except ValueError:
                    bodies.append({"unparsed": message["Body"]})
        found[queue] = bodies
    return found


def _dead_snapshot(body: dict[str, Any]) -> str:
    """The snapshot a dead letter was about: a sign or delivery request names it; an
    ingest message is S3's event for the uploaded package."""
    if "snapshot_id" in body:
        return str(body["snapshot_id"])
    key = str(body.get("detail", {}).get("object", {}).get("key", ""))
    return snapshot_id_of(key.rsplit("/", 1)[-1]) if key else "?"


# --- the rules ---------------------------------------------------------------------------


def _snapshots(
    findings: Findings,
    items: list[dict[str, Any]],
    expected: list[str],
    dead: dict[str, list[dict[str, Any]]],
) -> None:
    records = {i["snapshot_id"]: i for i in _with_prefix(items, "SNAPSHOT#") if "snapshot_id" in i}
    statuses = Counter(str(records.get(s, {}).get("status", "no record")) for s in expected)
    dead_snapshots = {_dead_snapshot(b) for q in ("ingest", "sign") for b in dead.get(q, [])}
    accepted = [s for s in expected if records.get(s, {}).get("status") == "accepted"]
    findings.figures["snapshots"] = {
        "expected": len(expected),
        "accepted": len(accepted),
        "statuses": dict(sorted(statuses.items())),
    }
    for snapshot_id in expected:
        status = str(records.get(snapshot_id, {}).get("status", "no record"))
        if status == "accepted":
            continue
        in_dlq = snapshot_id in dead_snapshots
        if status == "failed" and in_dlq:
            findings.violations.append(f"snapshot {snapshot_id} failed (ledger and dead letters)")
        else:
            where = "in a dead-letter queue" if in_dlq else "in no dead-letter queue"
            findings.violations.append(
                f"snapshot {snapshot_id} not accepted and dropped silently: ledger says "
                f"{status!r}, {where}"
            )
    for snapshot_id in sorted(dead_snapshots):
        if records.get(snapshot_id, {}).get("status") != "failed":
            status = records.get(snapshot_id, {}).get("status", "no record")
            findings.violations.append(
                f"dead letter for snapshot {snapshot_id} without a 'failed' ledger record "
                f"(ledger says {status!r})"
            )
    sequences = [int(records[s].get("sequence", 0)) for s in accepted]
    if sequences != sorted(sequences):
        findings.violations.append(f"accepted sequences out of cut order: {sequences}")


def _deliveries(
    findings: Findings,
    items: list[dict[str, Any]],
    expected: list[str],
    active: list[str],
    dead: dict[str, list[dict[str, Any]]],
) -> None:
    records = [i for i in _with_prefix(items, "DELIVERY#") if "difusor_id" in i]
    # The first delivery of a snapshot to a difusor; redeliveries and repairs have their own
    # record (a reason after the difusor in the sort key).
    first = {
        (r["snapshot_id"], r["difusor_id"]): r for r in records if str(r["sk"]).count("#") == 2
    }
    dead_deliveries = {
        (str(b.get("snapshot_id")), str(b.get("difusor_id"))) for b in dead.get("deliveries", [])
    }
    made = [k for k, r in first.items() if r.get("status") == "delivered" and k[1] in active]
    findings.figures["deliveries"] = {
        "expected": len(expected) * len(active),
        "made": len(made),
        "statuses": dict(sorted(Counter(str(r.get("status")) for r in records).items())),
        "attempts_beyond_first": sum(max(int(r.get("attempts", 1)) - 1, 0) for r in records),
    }
    accepted = {
        i["snapshot_id"]
        for i in _with_prefix(items, "SNAPSHOT#")
        if i.get("status") == "accepted" and "snapshot_id" in i
    }
    for snapshot_id in expected:
        if snapshot_id not in accepted:
            continue  # counted against the snapshot
        for difusor_id in active:
            record = first.get((snapshot_id, difusor_id), {})
            status = str(record.get("status", "no record"))
            if status == "delivered":
                continue
            in_dlq = (snapshot_id, difusor_id) in dead_deliveries
            if status == "failed" and in_dlq:
                message = "failed (ledger and dead letters)"
            else:
                where = "in the dead-letter queue" if in_dlq else "in no dead-letter queue"
                message = f"not delivered and dropped silently: ledger says {status!r}, {where}"
            findings.violations.append(f"delivery {snapshot_id} → {difusor_id} {message}")
    for snapshot_id, difusor_id in sorted(dead_deliveries):
        record = first.get((snapshot_id, difusor_id), {})
        if record.get("status") != "failed":
            findings.violations.append(
                f"dead letter for delivery {snapshot_id} → {difusor_id} without a 'failed' "
                f"ledger record (ledger says {record.get('status', 'no record')!r})"
            )
    for record in records:
        if record.get("status") in _UNSETTLED:
            findings.violations.append(
                f"delivery {record['snapshot_id']} → {record['difusor_id']} left "
                f"{record['status']!r} after settling"
            )
    for published in _with_prefix(items, "PUBLISHED#"):
        if published.get("lease_until") is not None:
            findings.violations.append(
                f"{published.get('difusor_id')}'s delivery lease still held after settling "
                f"(sequence {published.get('lease_sequence')})"
            )


def _origin_manifests(
    findings: Findings,
    session: boto3.session.Session,
    deployment: LocalDeployment,
    items: list[dict[str, Any]],
) -> None:
    """No signed manifest in the origin that the ledger did not accept."""
    s3 = session.client("s3")
    accepted = {
        str(i.get("manifest_key")): i
        for i in _with_prefix(items, "SNAPSHOT#")
        if i.get("status") == "accepted"
    }
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=deployment.origin_bucket, Prefix="manifests/"
    ):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            if not key.endswith(".json"):
                continue
            count += 1
            record = accepted.get(key)
            if record is None:
                findings.violations.append(f"signed manifest {key} in the origin, not accepted")
                continue
            body = s3.get_object(Bucket=deployment.origin_bucket, Key=key)["Body"].read()
            if sha256_hex(body) != record.get("manifest_sha256"):
                findings.violations.append(
                    f"signed manifest {key} in the origin is not the one the ledger accepted"
                )
    findings.figures["origin_manifests"] = count


def _sites(
    findings: Findings,
    deployment: LocalDeployment,
    items: list[dict[str, Any]],
    public_key: PublicKey,
) -> None:
    published = {i.get("difusor_id"): i for i in _with_prefix(items, "PUBLISHED#")}
    delivered = Counter(
        str(i.get("difusor_id"))
        for i in _with_prefix(items, "DELIVERY#")
        if i.get("status") == "delivered"
    )
    figures: dict[str, Any] = {}
    regressions = double = verified = 0
    for difusor in deployment.difusores:
        session = account_session(difusor.account_id)
        s3 = session.client("s3")
        switches = _switches(difusor.kvs_arn)
        sequences = [held.sequence for held, _ in switches]
        went_back = sum(1 for a, b in itertools.pairwise(sequences) if b < a)
        by_delivery = Counter(tag for _, tag in switches)
        twice = sum(n - 1 for n in by_delivery.values() if n > 1)
        pointer = (
            KeyValueStorePointer(session.client("cloudfront-keyvaluestore"), difusor.kvs_arn)
            .read()
            .pointer
        )
        live = pointer.live if pointer is not None else None
        serves = live.held.sequence if live is not None else None
        prefix = slot_prefix(live.slot) if live is not None else "_v/none/"
        result = verify_site(BucketSource(s3, difusor.bucket, prefix), public_key, history=True)
        ledger_sequence = published.get(difusor.difusor_id, {}).get("sequence")
        figures[difusor.difusor_id] = {
            "serves": serves,
            "site_version": live.version if live is not None else None,
            "ledger": ledger_sequence,
            "verified": result.ok,
            "switched_to": sequences,
            "delivered": delivered[difusor.difusor_id],
        }
        regressions += went_back
        if went_back:
            findings.violations.append(
                f"{difusor.difusor_id}'s published sequence went back: {sequences}"
            )
        if twice:
            double += twice
            findings.violations.append(
                f"{difusor.difusor_id}'s version was switched {len(switches)} times by "
                f"{len(by_delivery)} deliveries"
            )
        if serves != ledger_sequence:
            findings.violations.append(
                f"{difusor.difusor_id} serves sequence {serves}, the ledger says it publishes "
                f"{ledger_sequence}"
            )
        if result.ok:
            verified += 1
        else:
            findings.violations.append(
                f"{difusor.difusor_id}'s site does not verify: {'; '.join(result.problems[:3])}"
            )
    findings.figures["sites"] = figures
    findings.figures["verified"] = f"{verified}/{len(deployment.difusores)}"
    findings.figures["regressions"] = regressions
    findings.figures["double_publications"] = double


def _switches(kvs_arn: str) -> list[tuple[Held, str]]:
    """Every switch the version pointer took, oldest first: the manifest it made live and
    the delivery that made it (a retirement or a notice is not a switch)."""
    made: list[tuple[Held, str]] = []
    top = 0
    for text in store_writes(kvs_arn):
        pointer = Pointer.from_text(text)
        if pointer.live is not None and pointer.live.version > top:
            top = pointer.live.version
            made.append((pointer.live.held, pointer.live.delivery))
    return made


def _checks(findings: Findings, items: list[dict[str, Any]]) -> None:
    checks = _with_prefix(items, "CHECK#")
    outcomes = Counter(str(c.get("outcome")) for c in checks)
    findings.figures["monitor_checks"] = dict(sorted(outcomes.items()))
    findings.figures["incidents"] = len(_with_prefix(items, "INCIDENT#"))
    if outcomes.get("altered"):
        findings.violations.append(
            f"{outcomes['altered']} monitor check(s) found a site 'altered' (nothing tampered)"
        )

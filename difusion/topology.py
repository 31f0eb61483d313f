"""What is deployed, in one place: the CDK stacks build it on AWS and the embedded default
provisions it on the emulator from the same values.

Function timeouts and sizes, the queues between the steps (visibility timeouts, batch
sizes, receive counts), the tables' keys, the names of the roles the institute and each
difusor create, and the retry schedule of a failed message. A test compares the
synthesized templates with what the embedded default provisions, so the two cannot drift.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# AWS's advice for an SQS event source: a visibility timeout of at least six times the
# function's timeout, so a message is not handed to a second invocation while the first
# still works on it (Lambda developer guide, "Using Lambda with Amazon SQS").
VISIBILITY_TIMEOUT_FACTOR = 6
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600
DEFAULT_MAX_ATTEMPTS = 5
# While a step works it holds its message, its idempotency record and (replicate) the
# difusor's lease for this long at a time, and renews them every HEARTBEAT_SECONDS. The
# queues keep the long visibility timeout Lambda requires (at least the function's timeout,
# "Creating and configuring an Amazon SQS event source mapping"), but that only bounds a
# message nobody holds: the handler sets its own message's visibility to this hold as it
# starts (ChangeMessageVisibility counts from the call, API reference) and a heartbeat
# extends it. A step that dies (killed, out of memory, timed out) extends nothing, and its
# work is received again within one hold: a minute of election night, not 90 minutes.
# Three beats per hold: a beat that fails or comes late does not yet let the message go.
STEP_HOLD_SECONDS = 60
HEARTBEAT_SECONDS = 20
# A step's own timeout, as a share of its function's: past it the heartbeat stops, so a
# step that hangs gives its message back one hold later, well before Lambda's timeout.
STEP_TIMEOUT_SHARE = 2 / 3
# Every difusor's site lives in us-east-1: CloudFront's WAF web ACLs and Shield live there.
DIFUSOR_REGION = "us-east-1"


@dataclass(frozen=True)
class FunctionShape:
    """One Lambda function: how long it may run and how big it is."""

    name: str
    timeout_seconds: int
    memory_mb: int
    ephemeral_mb: int = 512


@dataclass(frozen=True)
class QueueShape:
    """One queue between two steps and the event source mapping that drains it."""

    name: str
    fifo: bool
    consumer: str  # the function the queue feeds
    batch_size: int
    visibility_timeout_seconds: int
    # The event source mapping's maximum concurrency (None: Lambda's own scaling). Lambda
    # scales a standard queue's consumer to five invocations at once and up from there; a
    # FIFO queue's to one per active message group ("Configuring scaling behavior for SQS
    # event source mappings", Lambda developer guide).
    max_concurrency: int | None = None


INGEST = FunctionShape("ingest", 15 * 60, 2048, ephemeral_mb=10240)  # spools packages
SIGN = FunctionShape("sign", 60, 512)
REPLICATE = FunctionShape("replicate", 15 * 60, 1024)
MONITOR = FunctionShape("monitor", 5 * 60, 512)
FUNCTIONS = {f.name: f for f in (INGEST, SIGN, REPLICATE, MONITOR)}


def _queue(
    name: str,
    fifo: bool,
    consumer: FunctionShape,
    batch_size: int,
    max_concurrency: int | None = None,
) -> QueueShape:
    return QueueShape(
        name=name,
        fifo=fifo,
        consumer=consumer.name,
        batch_size=batch_size,
        visibility_timeout_seconds=consumer.timeout_seconds * VISIBILITY_TIMEOUT_FACTOR,
        max_concurrency=max_concurrency,
    )


# One message per invocation everywhere. ingest: one package; sign: one at a time per
# election (FIFO group). deliveries: one FIFO group per difusor, and a batch from a FIFO
# queue may hold several groups, which one invocation would then deliver one after the
# other: with one message per invocation Lambda runs one per active group, so a slow or
# broken difusor never delays another. ingest's queue is standard: its consumer is held to
# two at once (the least Lambda allows), since UCSI drops one package per cut and every
# invocation ingest saves is one a delivery can have on a small account.
QUEUES = {
    q.name: q
    for q in (
        _queue("ingest", False, INGEST, batch_size=1, max_concurrency=2),
        _queue("sign", True, SIGN, batch_size=1),
        _queue("deliveries", True, REPLICATE, batch_size=1),
    )
}

# Message groups per difusor on the deliveries queue: its own, and its catch-up group
# (difusion/adapters/queues.py).
DELIVERY_GROUPS_PER_DIFUSOR = 2


def concurrency_needed(difusores: int) -> int:
    """Lambda executions a night can ask for at once: a replicate per delivery group of every
    difusor, ingest at its cap, sign (one group per election) and the monitor. Fewer, and
    Lambda throttles deliveries: they wait in their queue, later than the call allows."""
    ingest = QUEUES["ingest"].max_concurrency or 5
    return DELIVERY_GROUPS_PER_DIFUSOR * difusores + ingest + 1 + 1


# Partition and sort keys (all strings), and the idempotency table's TTL attribute.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "ledger": (("pk", "HASH"), ("sk", "RANGE")),
    "registry": (("difusor_id", "HASH"),),
    "idempotency": (("id", "HASH"),),
}
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"  # Powertools writes it


@dataclass(frozen=True)
class RetrySchedule:
    """How long a failed message waits before it is tried again.

    The queues keep AWS's long visibility timeout (a message is never handed to a second
    invocation while the first still runs); a message that *failed* is made visible again
    after this delay instead, so one failure does not hold a difusor's FIFO group for the
    whole visibility timeout. Exponential with equal jitter, capped: with the defaults the
    n-th retry waits 2.5–5, 5–10, 10–20, 20–40, 22.5–45 s.
    """

    base_seconds: float = 5.0
    cap_seconds: float = 45.0

    def delay(self, receive_count: int, rand: Callable[[], float] = random.random) -> int:
        """Seconds before the message that was received ``receive_count`` times returns."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(receive_count - 1, 0))
        return max(0, round(ceiling / 2 + rand() * ceiling / 2))

    def scaled(self, factor: float) -> RetrySchedule:
        """The same schedule in accelerated time (the demo's explicit time compression)."""
        return RetrySchedule(self.base_seconds * factor, self.cap_seconds * factor)


RETRY = RetrySchedule()


def election_slug(election_id: str) -> str:
    """``DIP_LOC_BCS`` → ``dip-loc-bcs``: the election in resource names."""
    return election_id.lower().replace("_", "-")


def publisher_role_name(election_id: str) -> str:
    """The institute's role replicate runs as; each difusor's bucket lets it write."""
    return f"difusion-publisher-{election_slug(election_id)}"


def monitor_role_name(election_id: str) -> str:
    """The institute's continuity monitor; writes the suspension notice into a site."""
    return f"difusion-monitor-{election_slug(election_id)}"


def delivery_role_name(election_id: str) -> str:
    """The role in each difusor's account that lets the institute invalidate its CDN."""
    return f"difusion-delivery-{election_slug(election_id)}"


def role_arn(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"

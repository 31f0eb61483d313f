"""Sign: give a validated snapshot its place in the chain, sign it, and fan out deliveries.

The only step that reads the secret key, and it never parses an archive: it reads the
canonical draft that ingest wrote. Runs one snapshot at a time per election (FIFO group).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from difusion.adapters.keystore import SecretsManagerKeyStore
from difusion.adapters.ledger import HeadMoved, Ledger
from difusion.adapters.origin import PUBLIC_KEY_KEY, OriginStore, manifest_key, signature_key
from difusion.adapters.queues import DeliveryQueue
from difusion.adapters.registry import DifusorRegistry
from difusion.errors import RejectionCode
from difusion.manifest import Manifest, PackageInfo, Withdrawal, sha256_hex
from difusion.models import DeliveryRequest, Head, SignRequest
from difusion.publication import VERIFY_PAGE_PATH
from difusion.records import SnapshotRecord
from difusion.signing import sign
from difusion.times import parse_iso
from difusion.window import PublicationWindow, Verdict

logger = logging.getLogger(__name__)
_HEAD_RACE_RETRIES = 5
# The timer's Wait is accurate to the second and this function's clock may differ from the
# timer's by a little: a release up to this early waits for the opening instead of holding.
RELEASE_CLOCK_TOLERANCE = timedelta(seconds=5)


@dataclass(frozen=True)
class SignResult:
    snapshot_id: str
    status: str  # accepted | rejected | duplicate | released | withdrawn | refused
    sequence: int = 0
    manifest_sha256: str = ""
    deliveries: int = 0
    held: bool = False
    code: str = ""
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# The cut time of a withdrawal entry that restores nothing: any real cut is newer.
NO_CUT = datetime.min.replace(tzinfo=UTC).isoformat()


def withdrawal_id(sequence: int) -> str:
    """The snapshot id of the chain entry ``sequence`` when it is a withdrawal."""
    return f"retiro-{sequence:06d}"


def accepted_entries(snapshots: Iterable[SnapshotRecord]) -> dict[int, SnapshotRecord]:
    """The chain as the ledger accepted it: snapshot records by sequence."""
    return {s.sequence: s for s in snapshots if s.accepted and s.sequence is not None}


def newest_valid(
    entries: dict[int, SnapshotRecord], withdrawing: set[str]
) -> SnapshotRecord | None:
    """The newest snapshot whose files may be published: accepted from a package (not a
    withdrawal entry), not withdrawn, not being withdrawn."""
    for sequence in sorted(entries, reverse=True):
        entry = entries[sequence]
        if entry.withdraws or entry.withdrawn_at:
            continue
        if entry.snapshot_id in withdrawing:
            continue
        return entry
    return None


def withdrawal_refusal(snapshot_id: str, target: SnapshotRecord | None, reason: str) -> str:
    """Why ``snapshot_id`` cannot be withdrawn (empty when it can)."""
    if not reason.strip():
        return "a withdrawal needs a reason: it is signed and public"
    if target is None:
        return f"{snapshot_id} is not an accepted snapshot; only accepted ones are withdrawn"
    if target.withdraws:
        return f"{snapshot_id} is itself a withdrawal; withdraw a snapshot instead"
    return ""


def trusted_comment(manifest: Manifest, signed_at: datetime) -> str:
    """What minisign shows as verified beside the signature: which snapshot, which manifest."""
    return (
        f"timestamp:{int(signed_at.timestamp())}\tfile:manifest.json\t"
        f"snapshot:{manifest.snapshot_id}\tsequence:{manifest.sequence}\t"
        f"manifest_sha256:{manifest.sha256}"
    )


class SignService:
    def __init__(
        self,
        origin: OriginStore,
        ledger: Ledger,
        registry: DifusorRegistry,
        keys: SecretsManagerKeyStore,
        deliveries: DeliveryQueue,
        window: PublicationWindow,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sleep = sleep
        self._window = window
        self._origin = origin
        self._ledger = ledger
        self._registry = registry
        self._keys = keys
        self._deliveries = deliveries
        self._clock = clock

    def sign(self, request: SignRequest) -> SignResult:
        draft = Manifest.from_bytes(self._origin.get_bytes(request.draft_key))
        if draft.package.sha256 != request.package_sha256:
            raise ValueError(f"draft {request.draft_key} is not the package the request names")
        for _ in range(_HEAD_RACE_RETRIES):
            head = self._ledger.head()
            if head is not None and head.snapshot_id == draft.snapshot_id:
                if head.package_sha256 != draft.package.sha256:
                    return self._reject(
                        draft,
                        RejectionCode.CONFLICT,
                        "snapshot id already accepted with different content",
                    )
                # A redelivered message after the accept: make sure the fan-out happened.
                return self._fan_out(head, status="duplicate")
            cut_time = parse_iso(draft.cut_time)
            decision = self._window.decide(cut_time, self._clock(), self._ledger.window())
            if decision.verdict is Verdict.REFUSE:
                return self._reject(draft, RejectionCode.WINDOW_CLOSED, decision.reason)
            if head is not None and cut_time <= parse_iso(head.cut_time):
                return self._reject(
                    draft,
                    RejectionCode.STALE,
                    f"cut time {draft.cut_time} is not newer than the newest accepted snapshot "
                    f"{head.snapshot_id} ({head.cut_time})",
                )
            try:
                accepted = self._sign_after(draft, head)
            except HeadMoved:
                continue
            return self._fan_out(accepted, status="accepted")
        raise RuntimeError(f"the head kept moving while signing {draft.snapshot_id}")

    def _sign_after(self, draft: Manifest, head: Head | None) -> Head:
        """Sign ``draft`` as the successor of ``head`` and accept it. Whatever this leaves
        in the origin that the ledger did not accept is removed: by this attempt when the
        head moved, by the next attempt after a crash (the ledger notes what is written
        before it is written)."""
        now = self._clock()
        manifest = draft.chained(
            sequence=1 if head is None else head.sequence + 1,
            previous_manifest_sha256=None if head is None else head.manifest_sha256,
            created_at=now,
        )
        body = manifest.canonical_bytes()
        secret = self._keys.secret_key()
        signature = sign(
            body,
            secret,
            trusted_comment=trusted_comment(manifest, now),
            untrusted_comment=f"signature from PREP key {secret.key_id_text}",
        )
        key = manifest_key(manifest.sequence, manifest.snapshot_id)
        self._discard_unaccepted(manifest.snapshot_id, keep=key)
        self._ledger.note_signing(manifest.snapshot_id, key, now)
        text = "text/plain; charset=utf-8"
        # Key, then signature, then manifest: whoever sees the manifest can verify it.
        self._origin.put_bytes(PUBLIC_KEY_KEY, secret.public_key.to_file().encode(), text)
        self._origin.put_bytes(signature_key(key), signature.encode("utf-8"), text)
        self._origin.put_bytes(key, body, "application/json")
        try:
            accepted = self._ledger.accept(manifest, key, head, now)
        except HeadMoved:
            self._discard_unaccepted(manifest.snapshot_id)
            raise
        logger.info(
            "snapshot accepted",
            extra={
                "snapshot_id": manifest.snapshot_id,
                "sequence": manifest.sequence,
                "manifest_sha256": manifest.sha256,
            },
        )
        return accepted

    def _discard_unaccepted(self, snapshot_id: str, keep: str = "") -> None:
        """Remove the manifest (and signature) an earlier attempt signed for ``snapshot_id``
        and the ledger never accepted — unless it is ``keep``, which this attempt is about
        to write again. One attempt at a time signs (one message group per election)."""
        record = self._ledger.snapshot_record(snapshot_id)
        written = record.signing_key if record is not None else None
        if not written or written == keep or (record is not None and record.accepted):
            return
        self._origin.delete([written, signature_key(written)])
        logger.warning(
            "unaccepted manifest removed",
            extra={"snapshot_id": snapshot_id, "manifest_key": written},
        )

    # --- withdrawal ------------------------------------------------------------------

    def withdraw(self, snapshot_id: str, reason: str) -> SignResult:
        """Withdraw an accepted snapshot: a new signed entry of the chain says so and
        publishes again the newest snapshot still valid, so every difusor moves forward to
        it (a sequence never goes back). Runs in the chain's message group, one thing at a
        time with signing. Repeating it changes nothing."""
        for _ in range(_HEAD_RACE_RETRIES):
            head = self._ledger.head()
            entries = accepted_entries(self._ledger.snapshot_records())
            target = next((e for e in entries.values() if e.snapshot_id == snapshot_id), None)
            refusal = withdrawal_refusal(snapshot_id, target, reason)
            if refusal:
                logger.warning("withdrawal refused", extra={"snapshot_id": snapshot_id})
                return SignResult(snapshot_id, "refused", reason=refusal)
            assert target is not None and head is not None
            if target.withdrawn_at:
                # Done before (a repeated request): make sure the difusores got it.
                assert target.withdrawn_by_sequence is not None  # written with withdrawn_at
                by = entries[target.withdrawn_by_sequence]
                if by.snapshot_id == head.snapshot_id:
                    return self._fan_out(head, "duplicate", reason=f"withdrawal:{snapshot_id}")
                return SignResult(snapshot_id, "duplicate", sequence=target.withdrawn_by_sequence)
            draft = self._withdrawal_draft(target, entries, head, reason)
            try:
                accepted = self._sign_after(draft, head)
            except HeadMoved:
                continue
            logger.warning(
                "snapshot withdrawn",
                extra={"snapshot_id": snapshot_id, "entry": accepted.sequence, "reason": reason},
            )
            return self._fan_out(accepted, "withdrawn", reason=f"withdrawal:{snapshot_id}")
        raise RuntimeError(f"the head kept moving while withdrawing {snapshot_id}")

    def _withdrawal_draft(
        self,
        target: SnapshotRecord,
        entries: dict[int, SnapshotRecord],
        head: Head,
        reason: str,
    ) -> Manifest:
        withdrawn = Manifest.from_bytes(self._origin.get_bytes(str(target.manifest_key)))
        restored = newest_valid(entries, {target.snapshot_id})
        if restored is not None:
            source = Manifest.from_bytes(self._origin.get_bytes(str(restored.manifest_key)))
            files, package, cut_time = source.files, source.package, source.cut_time
        else:  # nothing valid is left: only the institute's own page stays published
            files = tuple(f for f in withdrawn.files if f.path == VERIFY_PAGE_PATH)
            package = PackageInfo(name="", sha256=sha256_hex(b""), size=0)
            cut_time = NO_CUT
        return Manifest(
            election=withdrawn.election,
            snapshot_id=withdrawal_id(head.sequence + 1),
            cut_time=cut_time,
            sequence=0,
            created_at="",
            previous_manifest_sha256=None,
            package=package,
            files=files,
            withdrawal=Withdrawal(
                sequence=withdrawn.sequence,
                snapshot_id=withdrawn.snapshot_id,
                manifest_sha256=withdrawn.sha256,
                reason=reason,
                restores=None if restored is None else restored.sequence,
            ),
        )

    def record_withdrawal_failure(self, snapshot_id: str, final: bool, error: str) -> None:
        self._ledger.record_withdrawal_failure(snapshot_id, error, final, self._clock())

    def release(self, release_id: str) -> SignResult:
        """At the opening: deliver the newest accepted snapshot to every active difusor."""
        head = self._ledger.head()
        if head is None:
            return SignResult("", "released", reason="no snapshot accepted yet")
        early = self._window.opening - self._clock()
        if timedelta(0) < early <= RELEASE_CLOCK_TOLERANCE:
            self._sleep(early.total_seconds())
        return self._fan_out(head, status="released", reason=f"release:{release_id}")

    def _fan_out(self, head: Head, status: str, reason: str = "accepted") -> SignResult:
        now = self._clock()
        decision = self._window.decide(parse_iso(head.cut_time), now, self._ledger.window())
        if decision.verdict is not Verdict.PUBLISH:
            # Processing ahead of the opening is allowed; publishing is not (RE 353.4-5).
            self._ledger.mark_held(head.snapshot_id, decision.reason, now)
            logger.info(
                "publication held",
                extra={"snapshot_id": head.snapshot_id, "reason": decision.reason},
            )
            return SignResult(
                head.snapshot_id,
                status,
                sequence=head.sequence,
                manifest_sha256=head.manifest_sha256,
                held=True,
                reason=decision.reason,
            )
        requests = [
            DeliveryRequest.for_head(self._ledger.election, difusor.difusor_id, head, reason)
            for difusor in self._registry.active()
        ]
        self._deliveries.send(requests)
        return SignResult(
            head.snapshot_id,
            status,
            sequence=head.sequence,
            manifest_sha256=head.manifest_sha256,
            deliveries=len(requests),
        )

    def record_failure(self, request: SignRequest, attempt: int, final: bool, error: str) -> None:
        """A failed attempt at signing ``request``'s snapshot, in its record; ``failed`` when
        it was the last attempt (an accepted snapshot keeps its status)."""
        if final:  # nothing it signed stays in the origin once it gave up
            self._discard_unaccepted(request.snapshot_id)
        self._ledger.record_snapshot_failure(
            request.snapshot_id, "", "sign", attempt, error, final, self._clock()
        )

    def _reject(self, draft: Manifest, code: RejectionCode, reason: str) -> SignResult:
        self._discard_unaccepted(draft.snapshot_id)
        self._ledger.record_rejected(
            draft.snapshot_id, f"incoming/{draft.package.name}", code, reason, self._clock()
        )
        logger.warning(
            "package rejected",
            extra={"snapshot_id": draft.snapshot_id, "code": str(code), "reason": reason},
        )
        return SignResult(draft.snapshot_id, "rejected", code=str(code), reason=reason)

"""Sign: give a validated snapshot its place in the chain, sign it, and fan out deliveries.

The only step that reads the secret key, and it never parses an archive: it reads the
canonical draft that ingest wrote. Runs one snapshot at a time per election (FIFO group).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from difusion.adapters.keystore import SecretsManagerKeyStore
from difusion.adapters.ledger import HeadMoved, Ledger
from difusion.adapters.origin import PUBLIC_KEY_KEY, OriginStore, manifest_key, signature_key
from difusion.adapters.queues import DeliveryQueue
from difusion.adapters.registry import DifusorRegistry
from difusion.errors import RejectionCode
from difusion.manifest import Manifest
from difusion.models import DeliveryRequest, Head, SignRequest
from difusion.signing import sign
from difusion.window import PublicationWindow, Verdict

logger = logging.getLogger(__name__)
_HEAD_RACE_RETRIES = 5
# The timer's Wait is accurate to the second and this function's clock may differ from the
# timer's by a little: a release up to this early waits for the opening instead of holding.
RELEASE_CLOCK_TOLERANCE = timedelta(seconds=5)


@dataclass(frozen=True)
class SignResult:
    snapshot_id: str
    status: str  # accepted | rejected | duplicate | released
    sequence: int = 0
    manifest_sha256: str = ""
    deliveries: int = 0
    held: bool = False
    code: str = ""
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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
            cut_time = datetime.fromisoformat(draft.cut_time)
            decision = self._window.decide(cut_time, self._clock(), self._ledger.window())
            if decision.verdict is Verdict.REFUSE:
                return self._reject(draft, RejectionCode.WINDOW_CLOSED, decision.reason)
            if head is not None and cut_time <= datetime.fromisoformat(head.cut_time):
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
        text = "text/plain; charset=utf-8"
        # Key, then signature, then manifest: whoever sees the manifest can verify it.
        self._origin.put_bytes(PUBLIC_KEY_KEY, secret.public_key.to_file().encode(), text)
        self._origin.put_bytes(signature_key(key), signature.encode("utf-8"), text)
        self._origin.put_bytes(key, body, "application/json")
        accepted = self._ledger.accept(manifest, key, head, now)
        logger.info(
            "snapshot accepted",
            extra={
                "snapshot_id": manifest.snapshot_id,
                "sequence": manifest.sequence,
                "manifest_sha256": manifest.sha256,
            },
        )
        return accepted

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
        decision = self._window.decide(
            datetime.fromisoformat(head.cut_time), now, self._ledger.window()
        )
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
        self._ledger.record_snapshot_failure(
            request.snapshot_id, "", "sign", attempt, error, final, self._clock()
        )

    def _reject(self, draft: Manifest, code: RejectionCode, reason: str) -> SignResult:
        self._ledger.record_rejected(
            draft.snapshot_id, f"incoming/{draft.package.name}", code, reason, self._clock()
        )
        logger.warning(
            "package rejected",
            extra={"snapshot_id": draft.snapshot_id, "code": str(code), "reason": reason},
        )
        return SignResult(draft.snapshot_id, "rejected", code=str(code), reason=reason)

"""Ingest: validate a package, hash it, stage its new contents, write the manifest draft."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from threading import BoundedSemaphore
from typing import IO, Any, BinaryIO

from difusion.adapters.ledger import Ledger
from difusion.adapters.origin import OriginStore, draft_key
from difusion.adapters.queues import SignQueue
from difusion.archive import ArchiveEntry, read_members
from difusion.content_types import content_type_for
from difusion.errors import PackageRejected, RejectionCode
from difusion.manifest import Manifest, ManifestFile, PackageInfo
from difusion.models import Head, SignRequest
from difusion.package_name import (
    PackageName,
    parse_package_name,
    refuse_future_cut,
    snapshot_id_of,
)
from difusion.prep_data import scan_package
from difusion.publication import VERIFY_PAGE_PATH
from difusion.settings import IngestSettings
from difusion.times import parse_iso
from difusion.web import verification_page, verification_page_sha256

logger = logging.getLogger(__name__)
_IN_MEMORY_MAX = 16 * 1024 * 1024


@dataclass(frozen=True)
class IngestResult:
    snapshot_id: str
    status: str  # validated | rejected | duplicate
    code: str = ""
    reason: str = ""
    file_count: int = 0
    staged: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class IngestService:
    def __init__(
        self,
        settings: IngestSettings,
        origin: OriginStore,
        ledger: Ledger,
        sign_queue: SignQueue,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._origin = origin
        self._ledger = ledger
        self._sign_queue = sign_queue
        self._clock = clock

    def ingest(self, object_key: str, version_id: str = "") -> IngestResult:
        """Process one uploaded package (the version the event names). Rejections are
        results, not exceptions: they are final, recorded, and must not be retried."""
        now = self._clock()
        try:
            name = parse_package_name(object_key, self._settings.time_zone)
        except PackageRejected as rejection:
            provisional_id = snapshot_id_of(object_key.rsplit("/", 1)[-1])
            return self._reject(provisional_id, object_key, rejection, now)
        with tempfile.TemporaryFile() as spool:
            size, package_sha256 = self._origin.download(object_key, spool, version_id)
            self._ledger.record_received(name.snapshot_id, object_key, size, now)
            try:
                head = self._ledger.head()
                if self._is_accepted_duplicate(name, head, package_sha256):
                    return IngestResult(name.snapshot_id, "duplicate")
                self._check_admissible(name, head, package_sha256, now)
                entries = scan_package(spool, name.archive_format, self._settings.limits)
                staged = self._stage_new_contents(spool, name, entries, head)
            except PackageRejected as rejection:
                return self._reject(name.snapshot_id, object_key, rejection, now)
        page = self._stage_verification_page(head)
        draft = Manifest.draft(
            election=name.election,
            snapshot_id=name.snapshot_id,
            cut_time=name.cut_time,
            package=PackageInfo(name=name.file_name, sha256=package_sha256, size=size),
            files=[
                *(
                    ManifestFile(e.path, e.sha256, e.size, content_type_for(e.path))
                    for e in entries
                ),
                page,
            ],
        )
        key = draft_key(name.snapshot_id, package_sha256)
        self._origin.put_bytes(key, draft.canonical_bytes(), "application/json")
        self._ledger.record_validated(draft, object_key, key, now, object_version=version_id)
        self._sign_queue.send(
            SignRequest(
                election=name.election,
                snapshot_id=name.snapshot_id,
                draft_key=key,
                package_sha256=package_sha256,
            )
        )
        logger.info(
            "package validated",
            extra={"snapshot_id": name.snapshot_id, "files": len(entries), "staged": staged},
        )
        return IngestResult(name.snapshot_id, "validated", file_count=len(entries), staged=staged)

    def record_failure(self, object_key: str, attempt: int, final: bool, error: str) -> None:
        """A failed attempt at ``object_key`` (not a rejection: something broke), in the
        snapshot's record; ``failed`` when it was the last attempt."""
        snapshot_id = snapshot_id_of(object_key.rsplit("/", 1)[-1])
        self._ledger.record_snapshot_failure(
            snapshot_id, object_key, "ingest", attempt, error, final, self._clock()
        )

    def _reject(
        self, snapshot_id: str, object_key: str, rejection: PackageRejected, at: datetime
    ) -> IngestResult:
        self._ledger.record_rejected(snapshot_id, object_key, rejection.code, rejection.reason, at)
        logger.warning(
            "package rejected",
            extra={
                "snapshot_id": snapshot_id,
                "object_key": object_key,
                "code": str(rejection.code),
                "reason": rejection.reason,
            },
        )
        return IngestResult(
            snapshot_id, "rejected", code=str(rejection.code), reason=rejection.reason
        )

    @staticmethod
    def _is_accepted_duplicate(name: PackageName, head: Head | None, package_sha256: str) -> bool:
        return (
            head is not None
            and head.snapshot_id == name.snapshot_id
            and head.package_sha256 == package_sha256
        )

    def _check_admissible(
        self, name: PackageName, head: Head | None, package_sha256: str, now: datetime
    ) -> None:
        if name.election != self._settings.election:
            raise PackageRejected(
                RejectionCode.WRONG_ELECTION,
                f"package is for election {name.election}; this pipeline publishes "
                f"{self._settings.election}",
            )
        refuse_future_cut(name, now)
        if head is None:
            return
        earlier = self._ledger.snapshot_record(name.snapshot_id)
        if earlier is not None and earlier.withdrawn_at:
            raise PackageRejected(
                RejectionCode.CONFLICT,
                f"snapshot {name.snapshot_id} was withdrawn "
                f"({earlier.withdrawal_reason or ''}); a corrected cut needs a new cut time",
            )
        if head.snapshot_id == name.snapshot_id:
            raise PackageRejected(
                RejectionCode.CONFLICT,
                f"snapshot {name.snapshot_id} was already accepted with different content "
                f"(package SHA-256 {head.package_sha256[:16]}…); a new cut needs a new cut time",
            )
        if name.cut_time <= parse_iso(head.cut_time):
            raise PackageRejected(
                RejectionCode.STALE,
                f"cut time {name.cut_time.isoformat()} is not newer than the newest accepted "
                f"snapshot {head.snapshot_id} ({head.cut_time})",
            )

    def _stage_new_contents(
        self, spool: BinaryIO, name: PackageName, entries: list[ArchiveEntry], head: Head | None
    ) -> int:
        """Upload each content not staged before; returns how many were uploaded."""
        already = self._staged_by(head)
        wanted: dict[str, ArchiveEntry] = {}
        seen_hashes = set(already)
        for entry in entries:
            if entry.sha256 not in seen_hashes:
                seen_hashes.add(entry.sha256)
                wanted[entry.path] = entry
        if not wanted:
            return 0
        concurrency = self._settings.staging_concurrency
        # The semaphore bounds files held in memory while uploads are in flight.
        slots = BoundedSemaphore(concurrency)
        futures: list[Future[None]] = []

        def upload(entry: ArchiveEntry, data: bytes) -> None:
            try:
                self._origin.stage_bytes(entry.sha256, data)
            finally:
                slots.release()

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for path, stream in read_members(
                spool, name.archive_format, set(wanted), self._settings.limits
            ):
                entry = wanted[path]
                if entry.size <= _IN_MEMORY_MAX:
                    data = stream.read()
                    _require_hash(entry, hashlib.sha256(data).hexdigest())
                    slots.acquire()
                    futures.append(pool.submit(upload, entry, data))
                else:
                    reader = _HashingReader(stream)
                    self._origin.stage_stream(entry.sha256, reader)
                    _require_hash(entry, reader.hexdigest())
            for future in futures:
                future.result()
        return len(wanted)

    def _stage_verification_page(self, head: Head | None) -> ManifestFile:
        """The institute's verification page joins every publication, listed (and so signed)
        in its manifest like any file of the package; staged once per version of it."""
        page = verification_page()
        sha256 = verification_page_sha256()
        if sha256 not in self._staged_by(head):
            self._origin.stage_bytes(sha256, page)
        return ManifestFile(VERIFY_PAGE_PATH, sha256, len(page), content_type_for(VERIFY_PAGE_PATH))

    def _staged_by(self, head: Head | None) -> set[str]:
        """Contents the newest accepted manifest references: all staged before it was signed."""
        if head is None:
            return set()
        previous = Manifest.from_bytes(self._origin.get_bytes(head.manifest_key))
        return {f.sha256 for f in previous.files}


def _require_hash(entry: ArchiveEntry, actual: str) -> None:
    if actual != entry.sha256:
        # The spool is private to this invocation: a mismatch means the disk lied.
        raise RuntimeError(f"{entry.path} changed between the two reads of the package")


class _HashingReader:
    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._digest.update(data)
        return data

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

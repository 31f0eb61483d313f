"""Verify a copy of a site: the manifest's signature, every file against the manifest, the
PREP data against itself (each acta image against its CODIGO_INTEGRIDAD), and the chain of
manifests (no rollback, no fork, no gap).

The copy is read through a :class:`~difusion.adapters.site_sources.SiteSource` (a web site,
a directory or a bucket); everything else here is pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from difusion.continuity import NotServed, SiteUnreachable
from difusion.errors import ManifestInvalid, SignatureInvalid
from difusion.manifest import Manifest, canonical_json, sha256_hex
from difusion.prep_data import image_for, image_index, is_database, read_acta_rows
from difusion.publication import (
    MANIFEST_PATH,
    SIGNATURE_PATH,
    WELL_KNOWN,
    history_path,
    history_signature_path,
)
from difusion.signing import PublicKey, verify

if TYPE_CHECKING:
    from difusion.adapters.site_sources import SiteSource


class Verdict(IntEnum):
    """Exit codes of ``difusion verify``, in the order the checks are made."""

    VERIFIED = 0
    UNREACHABLE = 10
    BAD_SIGNATURE = 11
    HISTORY = 14  # stale, forked or broken history
    FILES = 12  # altered, missing or extra files
    DATA = 13  # an acta image that does not match its CODIGO_INTEGRIDAD, or is missing


@dataclass
class SiteVerification:
    """The verdict on one copy of a site, with every problem named by path."""

    source: str = ""
    snapshot_id: str = ""
    sequence: int = 0
    manifest_sha256: str = ""
    files: int = 0
    trusted_comment: str = ""
    unreachable: str = ""
    signature_error: str = ""
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    integrity_mismatch: list[str] = field(default_factory=list)
    images_missing: list[str] = field(default_factory=list)
    actas_checked: int = 0
    history_error: str = ""
    history_checked: int = 0
    # Snapshots the institute withdrew, as the signed history says (verified with it).
    withdrawals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        if self.unreachable:
            return Verdict.UNREACHABLE
        if self.signature_error:
            return Verdict.BAD_SIGNATURE
        if self.history_error:
            return Verdict.HISTORY
        if self.missing or self.altered or self.extra:
            return Verdict.FILES
        if self.integrity_mismatch or self.images_missing:
            return Verdict.DATA
        return Verdict.VERIFIED

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.VERIFIED

    @property
    def problems(self) -> list[str]:
        return (
            ([f"unreachable: {self.unreachable}"] if self.unreachable else [])
            + ([f"signature: {self.signature_error}"] if self.signature_error else [])
            + ([f"history: {self.history_error}"] if self.history_error else [])
            + [f"missing: {p}" for p in self.missing]
            + [f"altered: {p}" for p in self.altered]
            + [f"extra: {p}" for p in self.extra]
            + [f"integrity: {p}" for p in self.integrity_mismatch]
            + [f"image missing: {p}" for p in self.images_missing]
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.name.lower()
        data["exit_code"] = int(self.verdict)
        return data


Progress = Callable[[int, int], None]  # (files hashed, files listed)


def verify_site(
    source: SiteSource,
    public_key: PublicKey,
    *,
    since: Manifest | None = None,
    history: bool = False,
    jobs: int = 8,
    progress: Progress | None = None,
) -> SiteVerification:
    """Verify the copy ``source`` holds against the institute's ``public_key``."""
    result = SiteVerification(source=source.label)
    try:
        manifest_bytes = source.read(MANIFEST_PATH)
        signature = source.read(SIGNATURE_PATH)
    except SiteUnreachable as exc:
        result.unreachable = str(exc)
        return result
    except NotServed as exc:
        result.signature_error = f"no signed manifest ({exc})"
        return result
    finally:
        result.source = source.label  # a site names the version it is read from
    try:
        result.trusted_comment = verify(
            manifest_bytes, signature.decode("utf-8", "replace"), public_key
        )
        manifest = Manifest.from_bytes(manifest_bytes)
    except (SignatureInvalid, ManifestInvalid) as exc:
        result.signature_error = str(exc)
        return result
    result.snapshot_id = manifest.snapshot_id
    result.sequence = manifest.sequence
    result.manifest_sha256 = manifest.sha256
    result.files = len(manifest.files)
    try:
        result.history_error = _check_newest(source, public_key, manifest)
        if since is not None and not result.history_error:
            result.history_error = _check_since(source, public_key, manifest, since)
        if history and not result.history_error:
            result.history_error, result.history_checked, result.withdrawals = _replay_history(
                source, public_key, manifest
            )
        hashes = _hash_files(source, manifest, jobs, progress, result)
    except SiteUnreachable as exc:
        result.unreachable = str(exc)
        return result
    listed = manifest.files_by_path()
    for path, actual in hashes.items():
        if actual is None:
            result.missing.append(path)
        elif actual[0] != listed[path].sha256:
            result.altered.append(path)
    present = source.paths()
    if present is not None:
        result.extra = sorted(
            p for p in present if p not in listed and not p.startswith(WELL_KNOWN)
        )
    _check_actas(manifest, hashes, result)
    result.missing.sort()
    result.altered.sort()
    return result


def verify_directory(root: Path, public_key: PublicKey) -> SiteVerification:
    """Verify a downloaded site in ``root`` against the institute's public key."""
    from difusion.adapters.site_sources import DirectorySource

    return verify_site(DirectorySource(root), public_key)


# --- files ---------------------------------------------------------------------------------


def _hash_files(
    source: SiteSource,
    manifest: Manifest,
    jobs: int,
    progress: Progress | None,
    result: SiteVerification,
) -> dict[str, tuple[str, bytes | None] | None]:
    """Each listed path's SHA-256 as served (``None`` when absent); the bytes of the CSV
    files are kept for the data check."""
    total = len(manifest.files)
    done = 0

    def fetch(path: str) -> tuple[str, tuple[str, bytes | None] | None]:
        try:
            body = source.read(path)
        except NotServed:
            return path, None
        keep = body if is_database(path) else None
        return path, (hashlib.sha256(body).hexdigest(), keep)

    hashes: dict[str, tuple[str, bytes | None] | None] = {}
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        for path, value in pool.map(fetch, [f.path for f in manifest.files]):
            hashes[path] = value
            done += 1
            if progress is not None:
                progress(done, total)
    return hashes


# --- the PREP data --------------------------------------------------------------------------


def _check_actas(
    manifest: Manifest,
    hashes: dict[str, tuple[str, bytes | None] | None],
    result: SiteVerification,
) -> None:
    """Every acta image the CSV databases name is present and hashes to its
    CODIGO_INTEGRIDAD (the INE tells citizens to check exactly this)."""
    images = image_index(entry.path for entry in manifest.files)
    for path, value in sorted(hashes.items()):
        if value is None or value[1] is None:
            continue
        for clave, code in _integrity_codes(value[1]):
            image = image_for(clave, path, images)
            result.actas_checked += 1
            if image is None:
                result.images_missing.append(f"{clave} (named in {path})")
                continue
            served = hashes.get(image)
            if served is None:
                result.images_missing.append(image)
            elif served[0] != code.lower():
                result.integrity_mismatch.append(image)


def _integrity_codes(csv_bytes: bytes) -> list[tuple[str, str]]:
    """(CLAVE_ACTA, CODIGO_INTEGRIDAD) of every row that has one (ingest reads the same
    rows: :mod:`difusion.prep_data`)."""
    return [(row.acta, row.code) for row in read_acta_rows(csv_bytes)]


# --- the chain ------------------------------------------------------------------------------


def _history_entry(source: SiteSource, public_key: PublicKey, sequence: int) -> Manifest:
    try:
        body = source.read(history_path(sequence))
        signature = source.read(history_signature_path(sequence))
    except NotServed:
        raise ValueError(
            f"history entry #{sequence} is missing ({history_path(sequence)})"
        ) from None
    try:
        verify(body, signature.decode("utf-8", "replace"), public_key)
        return Manifest.from_bytes(body)
    except (SignatureInvalid, ManifestInvalid) as exc:
        raise ValueError(f"history entry #{sequence} does not verify: {exc}") from None


def _check_newest(source: SiteSource, public_key: PublicKey, current: Manifest) -> str:
    """A signed manifest newer than the one served, in the site's own history, means the
    site went back to an older snapshot (the history only grows)."""
    try:
        newer = _history_entry(source, public_key, current.sequence + 1)
    except ValueError:
        return ""  # none (or not a valid one): nothing newer was ever published here
    return (
        f"stale: the site serves #{current.sequence} ({current.snapshot_id}) but its history "
        f"has #{newer.sequence} ({newer.snapshot_id})"
    )


def _check_since(
    source: SiteSource, public_key: PublicKey, current: Manifest, since: Manifest
) -> str:
    """Does ``current`` extend ``since`` (a manifest seen earlier) through the chain?"""
    if since.election != current.election:
        return f"the manifest seen earlier is for election {since.election}"
    if since.sequence > current.sequence:
        return (
            f"rollback: the site serves #{current.sequence} ({current.snapshot_id}) but "
            f"#{since.sequence} ({since.snapshot_id}) was seen earlier"
        )
    if since.sequence == current.sequence:
        return "" if since.sha256 == current.sha256 else f"fork at #{current.sequence}"
    expected = current.previous_manifest_sha256
    try:
        for sequence in range(current.sequence - 1, since.sequence - 1, -1):
            entry = _history_entry(source, public_key, sequence)
            if entry.sha256 != expected:
                return f"fork: history entry #{sequence} is not the one #{sequence + 1} links to"
            expected = entry.previous_manifest_sha256
            if sequence == since.sequence and entry.sha256 != since.sha256:
                return f"fork: #{sequence} in the site's history is not the manifest seen earlier"
    except ValueError as exc:
        return str(exc)
    return ""


def _replay_history(
    source: SiteSource, public_key: PublicKey, current: Manifest
) -> tuple[str, int, list[dict[str, Any]]]:
    """Replay the whole chain: every entry signed, each linked to the one before, no gap,
    ending in the manifest the site serves; every withdrawal entry names an earlier entry
    exactly and publishes again the files of an earlier one still valid. Returns the
    problem (empty when none), how many entries were checked, and the withdrawals."""
    previous: str | None = None
    seen: dict[int, tuple[str, str, str, bool]] = {}  # sha, snapshot id, files digest, valid
    withdrawals: list[dict[str, Any]] = []
    try:
        for sequence in range(1, current.sequence + 1):
            entry = _history_entry(source, public_key, sequence)
            if entry.sequence != sequence:
                return f"history entry #{sequence} says it is #{entry.sequence}", sequence - 1, []
            if entry.previous_manifest_sha256 != previous:
                return (
                    f"history entry #{sequence} does not link to #{sequence - 1}",
                    sequence - 1,
                    [],
                )
            digest = sha256_hex(canonical_json([f.to_json() for f in entry.files]))
            seen[sequence] = (entry.sha256, entry.snapshot_id, digest, entry.withdrawal is None)
            if entry.withdrawal is not None:
                problem = _withdrawal_problem(entry, digest, seen)
                if problem:
                    return f"history entry #{sequence}: {problem}", sequence - 1, []
                withdrawals.append({"entry": sequence, **entry.withdrawal.to_json()})
            previous = entry.sha256
    except ValueError as exc:
        return str(exc), 0, []
    if previous != current.sha256:
        return "the last history entry is not the manifest the site serves", current.sequence, []
    return "", current.sequence, withdrawals


def _withdrawal_problem(
    entry: Manifest, digest: str, seen: dict[int, tuple[str, str, str, bool]]
) -> str:
    withdrawal = entry.withdrawal
    assert withdrawal is not None
    withdrawn = seen.get(withdrawal.sequence)
    if withdrawal.sequence >= entry.sequence or withdrawn is None:
        return f"withdraws #{withdrawal.sequence}, which is not an earlier entry"
    if withdrawn[:2] != (withdrawal.manifest_sha256, withdrawal.snapshot_id) or not withdrawn[3]:
        return f"withdraws #{withdrawal.sequence} but names another manifest or a withdrawal"
    seen[withdrawal.sequence] = (*withdrawn[:3], False)  # no longer valid
    if withdrawal.restores is None:
        return ""
    restored = seen.get(withdrawal.restores)
    if withdrawal.restores >= entry.sequence or restored is None or not restored[3]:
        return f"restores #{withdrawal.restores}, which is not an earlier valid snapshot"
    if restored[2] != digest:
        return f"does not publish the files of #{withdrawal.restores}, which it restores"
    return ""

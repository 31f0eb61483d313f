"""The manifest: the signed statement of what a snapshot publishes.

Canonical JSON (sorted keys, UTF-8, no insignificant whitespace), so the same snapshot
always serializes to the same bytes and its SHA-256 identifies it. Each manifest carries
the SHA-256 of the one accepted before it: the manifests of a night form a hash chain.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from difusion.errors import ManifestInvalid

MANIFEST_FORMAT = "difusion-manifest/1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def canonical_json(value: Any) -> bytes:
    """Serialize ``value`` canonically: sorted keys, compact separators, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ManifestFile:
    """One published file: where it lives on the site and what its bytes hash to."""

    path: str
    sha256: str
    size: int
    content_type: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "content_type": self.content_type,
        }


@dataclass(frozen=True)
class PackageInfo:
    """The archive UCSI uploaded, as received."""

    name: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class Withdrawal:
    """A signed withdrawal: the entry that carries it withdraws an earlier accepted
    snapshot and publishes again the newest valid one (``restores``; ``None`` when none is
    left). It is an entry of the chain like any other: the history only grows."""

    sequence: int  # the withdrawn entry
    snapshot_id: str
    manifest_sha256: str
    reason: str
    restores: int | None  # the entry whose files this one publishes again

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "snapshot_id": self.snapshot_id,
            "manifest_sha256": self.manifest_sha256,
            "reason": self.reason,
            "restores": self.restores,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Withdrawal:
        restores = raw["restores"]
        return cls(
            sequence=_int(raw["sequence"]),
            snapshot_id=_str(raw["snapshot_id"]),
            manifest_sha256=_hex(raw["manifest_sha256"]),
            reason=_str(raw["reason"]),
            restores=None if restores is None else _int(restores),
        )


@dataclass(frozen=True)
class Manifest:
    """A snapshot's manifest. ``sequence`` 0 and no chain link marks an unsigned draft."""

    election: str
    snapshot_id: str
    cut_time: str
    sequence: int
    created_at: str
    previous_manifest_sha256: str | None
    package: PackageInfo
    files: tuple[ManifestFile, ...]
    withdrawal: Withdrawal | None = None  # this entry withdraws an earlier one

    @classmethod
    def draft(
        cls,
        *,
        election: str,
        snapshot_id: str,
        cut_time: datetime,
        package: PackageInfo,
        files: Iterable[ManifestFile],
    ) -> Manifest:
        """What ingest knows: the snapshot and its files, not yet its place in the chain."""
        return cls(
            election=election,
            snapshot_id=snapshot_id,
            cut_time=cut_time.isoformat(),
            sequence=0,
            created_at="",
            previous_manifest_sha256=None,
            package=package,
            files=tuple(sorted(files, key=lambda f: f.path)),
        )

    def chained(
        self, *, sequence: int, previous_manifest_sha256: str | None, created_at: datetime
    ) -> Manifest:
        """The final manifest, linked after ``previous_manifest_sha256``."""
        if sequence < 1:
            raise ValueError("sequence starts at 1")
        if (sequence == 1) != (previous_manifest_sha256 is None):
            raise ValueError("only the first manifest has no predecessor")
        return replace(
            self,
            sequence=sequence,
            previous_manifest_sha256=previous_manifest_sha256,
            created_at=created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def files_by_path(self) -> dict[str, ManifestFile]:
        return {f.path: f for f in self.files}

    def to_json(self) -> dict[str, Any]:
        # Only a withdrawal entry has the key: every other manifest keeps its bytes.
        withdrawal = {"withdrawal": self.withdrawal.to_json()} if self.withdrawal else {}
        return {
            **withdrawal,
            "format": MANIFEST_FORMAT,
            "election": self.election,
            "snapshot": {"id": self.snapshot_id, "cut_time": self.cut_time},
            "sequence": self.sequence,
            "created_at": self.created_at,
            "previous_manifest_sha256": self.previous_manifest_sha256,
            "package": self.package.to_json(),
            "file_count": len(self.files),
            "total_bytes": self.total_bytes,
            "files": [f.to_json() for f in self.files],
        }

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def sha256(self) -> str:
        return sha256_hex(self.canonical_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, *, require_canonical: bool = True) -> Manifest:
        """Parse and validate a manifest. Raises :class:`ManifestInvalid`."""
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestInvalid(f"manifest is not UTF-8 JSON: {exc}") from None
        manifest = cls.from_json(raw)
        if require_canonical and manifest.canonical_bytes() != data:
            raise ManifestInvalid("manifest is not in canonical form")
        return manifest

    @classmethod
    def from_json(cls, raw: Any) -> Manifest:
        try:
            if not isinstance(raw, Mapping) or raw.get("format") != MANIFEST_FORMAT:
                raise ManifestInvalid(f"not a {MANIFEST_FORMAT} manifest")
            files = tuple(
                ManifestFile(
                    path=_str(f["path"]),
                    sha256=_hex(f["sha256"]),
                    size=_int(f["size"]),
                    content_type=_str(f["content_type"]),
                )
                for f in raw["files"]
            )
            paths = [f.path for f in files]
            if paths != sorted(set(paths)):
                raise ManifestInvalid("manifest paths are not sorted and unique")
            previous = raw["previous_manifest_sha256"]
            package = raw["package"]
            manifest = cls(
                election=_str(raw["election"]),
                snapshot_id=_str(raw["snapshot"]["id"]),
                cut_time=_str(raw["snapshot"]["cut_time"]),
                sequence=_int(raw["sequence"]),
                created_at=_str(raw["created_at"]),
                previous_manifest_sha256=None if previous is None else _hex(previous),
                package=PackageInfo(
                    name=_str(package["name"]),
                    sha256=_hex(package["sha256"]),
                    size=_int(package["size"]),
                ),
                files=files,
                withdrawal=(
                    Withdrawal.from_json(raw["withdrawal"]) if "withdrawal" in raw else None
                ),
            )
        except (KeyError, TypeError) as exc:
            raise ManifestInvalid(f"manifest is missing or mistypes a field: {exc}") from None
        if raw.get("file_count") != len(files) or raw.get("total_bytes") != manifest.total_bytes:
            raise ManifestInvalid("manifest totals do not match its file list")
        return manifest


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value


def _hex(value: Any) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise TypeError(f"expected a SHA-256 in lowercase hex, got {value!r}")
    return value

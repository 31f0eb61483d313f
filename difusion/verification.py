"""Verify a copy of a site: the manifest's signature, then every file against the manifest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from difusion.errors import ManifestInvalid, SignatureInvalid
from difusion.manifest import Manifest
from difusion.publication import MANIFEST_PATH, SIGNATURE_PATH, WELL_KNOWN
from difusion.signing import PublicKey, verify


@dataclass
class SiteVerification:
    """The verdict on one copy of a site, with every problem named by path."""

    snapshot_id: str = ""
    sequence: int = 0
    files: int = 0
    trusted_comment: str = ""
    signature_error: str = ""
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.signature_error or self.missing or self.altered or self.extra)

    @property
    def problems(self) -> list[str]:
        return (
            ([f"signature: {self.signature_error}"] if self.signature_error else [])
            + [f"missing: {p}" for p in self.missing]
            + [f"altered: {p}" for p in self.altered]
            + [f"extra: {p}" for p in self.extra]
        )


def verify_directory(root: Path, public_key: PublicKey) -> SiteVerification:
    """Verify a downloaded site in ``root`` against the institute's public key."""
    result = SiteVerification()
    try:
        manifest_bytes = (root / MANIFEST_PATH).read_bytes()
        signature = (root / SIGNATURE_PATH).read_text(encoding="utf-8")
        result.trusted_comment = verify(manifest_bytes, signature, public_key)
        manifest = Manifest.from_bytes(manifest_bytes)
    except FileNotFoundError as exc:
        result.signature_error = f"no signed manifest ({exc.filename})"
        return result
    except (SignatureInvalid, ManifestInvalid) as exc:
        result.signature_error = str(exc)
        return result
    result.snapshot_id = manifest.snapshot_id
    result.sequence = manifest.sequence
    result.files = len(manifest.files)
    listed = manifest.files_by_path()
    for path, entry in listed.items():
        file = root / path
        if not file.is_file():
            result.missing.append(path)
        elif _sha256_file(file) != entry.sha256:
            result.altered.append(path)
    for file in sorted(root.rglob("*")):
        relative = file.relative_to(root).as_posix()
        if file.is_file() and relative not in listed and not relative.startswith(WELL_KNOWN):
            result.extra.append(relative)
    return result


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()

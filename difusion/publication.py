"""The publication plan: what to copy into a difusor's bucket, in what order, what to delete.

Only what changed since the manifest the difusor already publishes is copied. Writes go in
tiers so a reader is never pointed at something that is not there yet: content first
(images, CSV, styles, scripts), then the data JSON that names that content, then the HTML
pages that load the data, then the signed manifest, its signature and the public key, and
removals last.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum

from difusion.content_types import content_type_for
from difusion.manifest import Manifest

WELL_KNOWN = ".well-known/prep/"
MANIFEST_PATH = WELL_KNOWN + "manifest.json"
SIGNATURE_PATH = WELL_KNOWN + "manifest.json.minisig"
PUBLIC_KEY_PATH = WELL_KNOWN + "prep.pub"
HISTORY_PREFIX = WELL_KNOWN + "history/"
VERIFY_PAGE_PATH = WELL_KNOWN + "verificar.html"


def history_path(sequence: int) -> str:
    """Where every accepted manifest is published, so anyone can replay the chain."""
    return f"{HISTORY_PREFIX}{sequence:06d}.json"


def history_signature_path(sequence: int) -> str:
    return history_path(sequence) + ".minisig"


class Tier(IntEnum):
    CONTENT = 0
    DATA = 1
    PAGES = 2
    SIGNED_MANIFEST = 3


def tier_of(path: str) -> Tier:
    """Which write tier a site file belongs to."""
    extension = posixpath.splitext(path)[1].lower()
    if extension in (".html", ".htm"):
        return Tier.PAGES
    if extension == ".json":
        return Tier.DATA
    return Tier.CONTENT


class SourceKind(IntEnum):
    STAGED = 0  # content-addressed file staged by ingest
    MANIFEST = 1
    SIGNATURE = 2
    PUBLIC_KEY = 3
    ORIGIN = 4  # a named origin object (a manifest or signature of the history)


@dataclass(frozen=True)
class CopyStep:
    """One server-side copy into the difusor's bucket."""

    path: str
    source: SourceKind
    sha256: str
    size: int
    content_type: str
    tier: Tier
    source_key: str = ""  # for SourceKind.ORIGIN


@dataclass(frozen=True)
class PublicationPlan:
    """Copies grouped in tiers (to run tier after tier) and removals to run last."""

    tiers: tuple[tuple[CopyStep, ...], ...]
    deletions: tuple[str, ...]

    @property
    def copies(self) -> tuple[CopyStep, ...]:
        return tuple(step for tier in self.tiers for step in tier)

    @property
    def bytes_copied(self) -> int:
        return sum(step.size for step in self.copies)

    @property
    def content_tiers(self) -> tuple[Tier, ...]:
        """The tiers copied in shards, in order; the signed manifest is the commit."""
        return tuple(
            tier[0].tier for tier in self.tiers if tier[0].tier is not Tier.SIGNED_MANIFEST
        )

    @property
    def signed(self) -> tuple[CopyStep, ...]:
        return tuple(s for tier in self.tiers for s in tier if s.tier is Tier.SIGNED_MANIFEST)

    def shard(self, tier: Tier, index: int, count: int) -> tuple[CopyStep, ...]:
        """The copies of ``tier`` in shard ``index`` of ``count``: a stable split by path,
        so every shard, wherever it runs, agrees on its part and the parts cover the tier."""
        if not 0 <= index < count:
            raise ValueError(f"shard {index} of {count}")
        return tuple(
            step
            for steps in self.tiers
            for step in steps
            if step.tier is tier and _shard_of(step.path, count) == index
        )

    def with_sources(self, keys: dict[SourceKind, str]) -> PublicationPlan:
        """Name the origin object each signed-manifest step copies from."""
        return PublicationPlan(
            tiers=tuple(
                tuple(
                    replace(step, source_key=keys[step.source]) if step.source in keys else step
                    for step in tier
                )
                for tier in self.tiers
            ),
            deletions=self.deletions,
        )

    def also_copying(self, target: Manifest, paths: Iterable[str]) -> PublicationPlan:
        """The plan, plus a copy of each of ``target``'s files named in ``paths`` that it
        does not copy already (a repair: files found altered are copied again)."""
        planned = {step.path for step in self.copies}
        files = target.files_by_path()
        extra = [files[p] for p in sorted(set(paths)) if p in files and p not in planned]
        if not extra:
            return self
        by_tier: dict[Tier, list[CopyStep]] = {}
        for steps in self.tiers:
            by_tier.setdefault(steps[0].tier, []).extend(steps)
        for f in extra:
            tier = tier_of(f.path)
            by_tier.setdefault(tier, []).append(
                CopyStep(f.path, SourceKind.STAGED, f.sha256, f.size, f.content_type, tier)
            )
        return PublicationPlan(
            tiers=tuple(tuple(by_tier[t]) for t in Tier if by_tier.get(t)),
            deletions=self.deletions,
        )


def _shard_of(path: str, count: int) -> int:
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") % count


def plan_publication(
    target: Manifest,
    current: Manifest | Sequence[Manifest] | None,
    *,
    manifest_bytes: int,
    signature_bytes: int,
    public_key_bytes: int,
    history: dict[int, str] | None = None,
) -> PublicationPlan:
    """Plan the delivery of ``target`` to a site that publishes ``current`` (or nothing).

    ``current`` may also be several manifests: a slot whose refresh was cut short may hold
    any mix of their files, so a file is copied unless every one of them has it as
    ``target`` does, and a path any of them has and ``target`` does not is removed.

    ``history`` names the origin's manifest for each sequence to add to the difusor's copy
    of the chain (``.well-known/prep/history/``): they land with the data, before the
    signed manifest that extends them."""
    bases: Sequence[Manifest] = (
        () if current is None else (current,) if isinstance(current, Manifest) else current
    )
    held = [base.files_by_path() for base in bases]
    changed = [
        f
        for f in target.files
        if not held
        or any(
            (old := published.get(f.path)) is None
            or (old.sha256, old.content_type) != (f.sha256, f.content_type)
            for published in held
        )
    ]
    by_tier: dict[Tier, list[CopyStep]] = {tier: [] for tier in Tier}
    for f in changed:
        tier = tier_of(f.path)
        by_tier[tier].append(
            CopyStep(f.path, SourceKind.STAGED, f.sha256, f.size, f.content_type, tier)
        )
    for sequence, key in sorted((history or {}).items()):
        for path, source_key in (
            (history_path(sequence), key),
            (history_signature_path(sequence), key + ".minisig"),
        ):
            by_tier[Tier.DATA].append(
                CopyStep(
                    path,
                    SourceKind.ORIGIN,
                    "",
                    0,
                    content_type_for(path),
                    Tier.DATA,
                    source_key=source_key,
                )
            )
    signed = Tier.SIGNED_MANIFEST
    by_tier[signed] = [
        CopyStep(
            PUBLIC_KEY_PATH,
            SourceKind.PUBLIC_KEY,
            "",
            public_key_bytes,
            content_type_for(PUBLIC_KEY_PATH),
            signed,
        ),
        # The signature lands before the manifest it signs, so a verifier never pairs the
        # new manifest with the old signature.
        CopyStep(
            SIGNATURE_PATH,
            SourceKind.SIGNATURE,
            "",
            signature_bytes,
            content_type_for(SIGNATURE_PATH),
            signed,
        ),
        CopyStep(
            MANIFEST_PATH,
            SourceKind.MANIFEST,
            target.sha256,
            manifest_bytes,
            "application/json",
            signed,
        ),
    ]
    target_paths = {f.path for f in target.files}
    deletions = tuple(
        sorted({path for published in held for path in published if path not in target_paths})
    )
    return PublicationPlan(
        tiers=tuple(tuple(by_tier[tier]) for tier in Tier if by_tier[tier]),
        deletions=deletions,
    )

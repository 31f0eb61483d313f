"""Errors as types, each carrying a message a UCSI operator can act on."""

from __future__ import annotations

from enum import StrEnum


class RejectionCode(StrEnum):
    """Why a package was refused. Stable identifiers: they land in the ledger and in reports."""

    BAD_NAME = "bad_name"
    WRONG_ELECTION = "wrong_election"
    NOT_AN_ARCHIVE = "not_an_archive"
    CORRUPT = "corrupt"
    EMPTY = "empty"
    UNSAFE_PATH = "unsafe_path"
    BAD_FILE_NAME = "bad_file_name"
    RESERVED_PATH = "reserved_path"
    DUPLICATE_PATH = "duplicate_path"
    LINK = "link"
    SPECIAL_FILE = "special_file"
    ENCRYPTED = "encrypted"
    TOO_LARGE = "too_large"
    TOO_MANY_ENTRIES = "too_many_entries"
    COMPRESSION_RATIO = "compression_ratio"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    # An acta image that does not hash to the CODIGO_INTEGRIDAD its database gives it (or is
    # absent): every verifier would show NO COINCIDE, for a fault upstream.
    ACTA_INTEGRITY = "acta_integrity"
    STALE = "stale"
    FUTURE_CUT = "future_cut"  # a cut time ahead of the clock: it would block every later cut
    CONFLICT = "conflict"
    WINDOW_CLOSED = "window_closed"


class PackageRejected(Exception):
    """A snapshot package that must not be published, with the reason shown to operators."""

    def __init__(self, code: RejectionCode, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class SignatureInvalid(Exception):
    """A minisign signature that does not verify against the given public key."""


class KeyFormatError(ValueError):
    """A key file that is not in minisign's format."""


class ManifestInvalid(ValueError):
    """A manifest that does not parse or breaks the manifest format's rules."""


class DeliveryError(Exception):
    """A delivery to a difusor that failed and should be retried."""


class RetryLater(Exception):
    """A step that cannot run yet and knows when it can: its message returns after
    ``seconds`` (a lease held until then, a window of another attempt that ends then),
    instead of after the retry schedule's short delay."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = max(0.0, seconds)

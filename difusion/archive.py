"""Archive safety: read a snapshot package as a stream, validate every entry, hash it.

A package is untrusted input. Nothing in it is written anywhere until the whole archive
has been read, every entry checked and every file hashed: :func:`scan_archive` is that
first pass. :func:`read_members` is the second pass, which opens only the files the
caller still needs to stage. Both read in fixed-size chunks, so memory stays flat however
large the package is.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import re
import stat
import tarfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

from difusion.errors import PackageRejected, RejectionCode
from difusion.package_name import ArchiveFormat
from difusion.portable_paths import PathRegistry, check_portable, collision_key

CHUNK_BYTES = 1024 * 1024
RESERVED_PREFIX = ".well-known/prep/"
MAX_KEY_BYTES = 1024  # S3's limit for an object key
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds that stop decompression bombs and runaway packages. All configurable."""

    max_total_bytes: int = 4 * 1024**3
    max_file_bytes: int = 1024**3
    max_entries: int = 500_000
    max_ratio: float = 200.0
    # Ratios are only meaningful for content large enough to matter: a 2 KiB JSON file of
    # repeated keys can compress 100-fold and harms no one.
    ratio_floor_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class ArchiveEntry:
    """One regular file of a package: its normalized path, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class _Member:
    path: str
    declared_size: int
    compressed_size: int | None
    open: Callable[[], contextlib.AbstractContextManager[IO[bytes]]]


def normalize_member_path(name: str) -> str:
    """Return the safe, normalized form of an archive member name or reject the package."""
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise PackageRejected(
            RejectionCode.BAD_FILE_NAME, f"file name {name!r} contains control characters"
        )
    if "\\" in name:
        raise PackageRejected(RejectionCode.UNSAFE_PATH, f"path {name!r} contains a backslash")
    if name.startswith("/"):
        raise PackageRejected(RejectionCode.UNSAFE_PATH, f"path {name!r} is absolute")
    if _DRIVE_LETTER.match(name):
        raise PackageRejected(
            RejectionCode.UNSAFE_PATH, f"path {name!r} starts with a drive letter"
        )
    path = name
    while path.startswith("./"):  # tar -C dir . writes ./index.html
        path = path[2:]
    segments = path.split("/")
    if ".." in segments:
        raise PackageRejected(
            RejectionCode.UNSAFE_PATH, f"path {name!r} climbs out of the site with '..'"
        )
    if any(segment in ("", ".") for segment in segments):
        raise PackageRejected(
            RejectionCode.UNSAFE_PATH, f"path {name!r} has an empty or '.' segment"
        )
    # Compared as a disk would: ".Well-Known/PREP/x" is the institute's directory too.
    key = collision_key(path)
    if key.startswith(RESERVED_PREFIX) or key == RESERVED_PREFIX.rstrip("/"):
        raise PackageRejected(
            RejectionCode.RESERVED_PATH,
            f"path {name!r} is under {RESERVED_PREFIX}, which the institute reserves "
            "for the signed manifest",
        )
    if len(path.encode("utf-8")) > MAX_KEY_BYTES:
        raise PackageRejected(
            RejectionCode.BAD_FILE_NAME, f"path {path[:60]!r}... is longer than 1024 bytes"
        )
    check_portable(path)
    return path


def scan_archive(
    source: BinaryIO,
    archive_format: ArchiveFormat,
    limits: ArchiveLimits,
    tap: Callable[[str], IO[bytes] | None] | None = None,
) -> list[ArchiveEntry]:
    """Validate every entry of the package and hash every file.

    ``source`` must be seekable and positioned anywhere; the package's full size is taken
    from it. ``tap(path)`` may return a stream that receives a copy of that file's bytes as
    they are hashed (for files the caller reads, without a second pass over the package).
    Returns the files sorted by path. Raises :class:`PackageRejected`.
    """
    archive_size = _size_of(source)
    if archive_size == 0:
        raise PackageRejected(RejectionCode.EMPTY, "the package is a zero-byte object")
    entries: list[ArchiveEntry] = []
    paths = PathRegistry()
    total = 0
    with _translate_errors(archive_format, reading_members=False):
        for member in _members(source, archive_format, limits):
            paths.add(member.path)
            if len(entries) + 1 > limits.max_entries:
                raise PackageRejected(
                    RejectionCode.TOO_MANY_ENTRIES,
                    f"the package has more than {limits.max_entries} files",
                )
            _check_declared(member, total, limits)
            with _translate_errors(archive_format, reading_members=True):
                size, digest = _hash_member(member, limits, tap(member.path) if tap else None)
            total += size
            if total > limits.ratio_floor_bytes and total > limits.max_ratio * archive_size:
                raise PackageRejected(
                    RejectionCode.COMPRESSION_RATIO,
                    f"the package expands more than {limits.max_ratio:g} times "
                    f"({archive_size} bytes compressed)",
                )
            entries.append(ArchiveEntry(path=member.path, size=size, sha256=digest))
    if not entries:
        raise PackageRejected(RejectionCode.EMPTY, "the package holds no files")
    return sorted(entries, key=lambda entry: entry.path)


def read_members(
    source: BinaryIO,
    archive_format: ArchiveFormat,
    wanted: set[str],
    limits: ArchiveLimits,
) -> Iterator[tuple[str, IO[bytes]]]:
    """Yield ``(path, stream)`` for the wanted files of a package already scanned.

    A stream is valid until the next item is requested. Use only after
    :func:`scan_archive` accepted the same ``source``.
    """
    with _translate_errors(archive_format, reading_members=True):
        for member in _members(source, archive_format, limits):
            if member.path in wanted:
                with member.open() as stream:
                    yield member.path, stream


def _size_of(source: BinaryIO) -> int:
    source.seek(0, 2)
    size = source.tell()
    source.seek(0)
    return size


def _check_declared(member: _Member, total_so_far: int, limits: ArchiveLimits) -> None:
    if member.declared_size > limits.max_file_bytes:
        raise PackageRejected(
            RejectionCode.TOO_LARGE,
            f"{member.path} declares {member.declared_size} bytes, over the per-file limit "
            f"of {limits.max_file_bytes}",
        )
    if total_so_far + member.declared_size > limits.max_total_bytes:
        raise PackageRejected(
            RejectionCode.TOO_LARGE,
            f"the package expands to more than {limits.max_total_bytes} bytes",
        )
    if (
        member.compressed_size is not None
        and member.declared_size > limits.ratio_floor_bytes
        and member.declared_size > limits.max_ratio * max(member.compressed_size, 1)
    ):
        raise PackageRejected(
            RejectionCode.COMPRESSION_RATIO,
            f"{member.path} expands {member.declared_size} bytes from "
            f"{member.compressed_size}: over the ratio limit of {limits.max_ratio:g}",
        )


def _hash_member(
    member: _Member, limits: ArchiveLimits, copy: IO[bytes] | None = None
) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with member.open() as stream:
        while chunk := stream.read(CHUNK_BYTES):
            size += len(chunk)
            if size > limits.max_file_bytes:
                raise PackageRejected(
                    RejectionCode.TOO_LARGE, f"{member.path} is over the per-file limit"
                )
            digest.update(chunk)
            if copy is not None:
                copy.write(chunk)
    if size != member.declared_size:
        raise PackageRejected(
            RejectionCode.CHECKSUM_MISMATCH,
            f"{member.path} declares {member.declared_size} bytes but holds {size}",
        )
    return size, digest.hexdigest()


# --- formats -------------------------------------------------------------------------


def _members(
    source: BinaryIO, archive_format: ArchiveFormat, limits: ArchiveLimits
) -> Iterator[_Member]:
    source.seek(0)
    magic = source.read(4)
    source.seek(0)
    if archive_format is ArchiveFormat.ZIP:
        if not magic.startswith(_ZIP_MAGIC[:2]):
            raise PackageRejected(
                RejectionCode.NOT_AN_ARCHIVE, "the package is named .zip but is not a zip archive"
            )
        yield from _zip_members(source, limits)
    else:
        if not magic.startswith(_GZIP_MAGIC):
            raise PackageRejected(
                RejectionCode.NOT_AN_ARCHIVE,
                "the package is named .tar.gz but is not gzip-compressed",
            )
        yield from _tar_members(source)


def _zip_members(source: BinaryIO, limits: ArchiveLimits) -> Iterator[_Member]:
    try:
        archive = zipfile.ZipFile(source)
    except UnicodeDecodeError:
        raise PackageRejected(
            RejectionCode.BAD_FILE_NAME, "a file name marked UTF-8 is not valid UTF-8"
        ) from None
    except zipfile.BadZipFile as exc:
        raise PackageRejected(
            RejectionCode.CORRUPT, f"the zip archive is truncated or damaged ({exc})"
        ) from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:
            raise PackageRejected(
                RejectionCode.TOO_MANY_ENTRIES,
                f"the package has {len(infos)} entries, over the limit of {limits.max_entries}",
            )
        for info in infos:
            name = _zip_name(info)
            # Unix file type bits, where the archiver recorded them (0: not recorded).
            file_type = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
            if file_type == stat.S_IFLNK:
                raise PackageRejected(RejectionCode.LINK, f"{name!r} is a symbolic link")
            if name.endswith("/") or file_type == stat.S_IFDIR:
                if name.rstrip("/"):
                    normalize_member_path(name.rstrip("/"))
                continue
            path = normalize_member_path(name)
            if file_type not in (0, stat.S_IFREG):
                raise PackageRejected(RejectionCode.SPECIAL_FILE, f"{name!r} is not a regular file")
            if info.flag_bits & 0x1:
                raise PackageRejected(RejectionCode.ENCRYPTED, f"{name!r} is encrypted")

            def opener(
                info: zipfile.ZipInfo = info,
            ) -> contextlib.AbstractContextManager[IO[bytes]]:
                return archive.open(info)

            yield _Member(
                path=path,
                declared_size=info.file_size,
                compressed_size=info.compress_size,
                open=opener,
            )


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as stored, required to be valid UTF-8."""
    raw_name = info.orig_filename
    if info.flag_bits & 0x800:
        return raw_name
    # Without the UTF-8 flag zipfile decodes names as cp437; many tools write UTF-8 anyway.
    try:
        return raw_name.encode("cp437").decode("utf-8")
    except UnicodeError:
        raise PackageRejected(
            RejectionCode.BAD_FILE_NAME, f"file name {raw_name!r} is not valid UTF-8"
        ) from None


def _tar_members(source: BinaryIO) -> Iterator[_Member]:
    with tarfile.open(fileobj=source, mode="r|gz") as archive:
        for info in archive:
            name = info.name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise PackageRejected(
                    RejectionCode.BAD_FILE_NAME,
                    f"file name {name.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8",
                ) from None
            if info.issym() or info.islnk():
                raise PackageRejected(RejectionCode.LINK, f"{name!r} is a link")
            if info.isdir():
                if name.rstrip("/") not in ("", "."):
                    normalize_member_path(name.rstrip("/"))
                continue
            path = normalize_member_path(name)
            if not info.isfile() or info.issparse():
                raise PackageRejected(RejectionCode.SPECIAL_FILE, f"{name!r} is not a regular file")

            @contextlib.contextmanager
            def opener(info: tarfile.TarInfo = info) -> Iterator[IO[bytes]]:
                stream = archive.extractfile(info)
                assert stream is not None  # regular files always have a stream
                yield stream

            yield _Member(path=path, declared_size=info.size, compressed_size=None, open=opener)


@contextlib.contextmanager
def _translate_errors(archive_format: ArchiveFormat, *, reading_members: bool) -> Iterator[None]:
    """Turn the many ways a damaged archive fails into one typed rejection."""
    try:
        yield
    except PackageRejected:
        raise
    except zipfile.BadZipFile as exc:
        code = RejectionCode.CHECKSUM_MISMATCH if "CRC" in str(exc) else RejectionCode.CORRUPT
        raise PackageRejected(code, f"the zip archive is damaged: {exc}") from None
    except gzip.BadGzipFile as exc:
        code = RejectionCode.CHECKSUM_MISMATCH if "CRC" in str(exc) else RejectionCode.CORRUPT
        raise PackageRejected(code, f"the gzip stream is damaged: {exc}") from None
    except EOFError as exc:
        if archive_format is ArchiveFormat.ZIP and reading_members:
            raise PackageRejected(
                RejectionCode.CHECKSUM_MISMATCH,
                f"an entry's stored size does not match its content ({exc})",
            ) from None
        raise PackageRejected(RejectionCode.CORRUPT, f"the archive is truncated ({exc})") from None
    except tarfile.TarError as exc:
        raise PackageRejected(
            RejectionCode.CORRUPT, f"the tar archive is truncated or damaged ({exc})"
        ) from None
    except zlib.error as exc:
        raise PackageRejected(
            RejectionCode.CORRUPT, f"compressed data is damaged ({exc})"
        ) from None
    except NotImplementedError as exc:
        raise PackageRejected(
            RejectionCode.CORRUPT, f"the archive uses an unsupported feature ({exc})"
        ) from None

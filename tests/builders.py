"""Builders for test packages: good ones, and a corpus of crafted bad ones."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from collections.abc import Iterable, Mapping


def zip_bytes(
    files: Mapping[str, bytes] | Iterable[tuple[str, bytes]],
    *,
    mode: int = stat.S_IFREG | 0o644,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """A zip archive with ``files`` (pairs allow duplicate names)."""
    items = files.items() if isinstance(files, Mapping) else files
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in items:
            info = zipfile.ZipInfo(name, date_time=(2024, 6, 2, 21, 20, 0))
            info.create_system = 3
            info.external_attr = mode << 16
            info.compress_type = compression
            archive.writestr(info, data)
    return buffer.getvalue()


def zip_with_symlink(target: str = "/etc/passwd") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", b"<html></html>")
        info = zipfile.ZipInfo("link.html")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, target)
    return buffer.getvalue()


def patch_name(archive: bytes, placeholder: bytes, replacement: bytes) -> bytes:
    """Replace a name in both the local header and the central directory (same length)."""
    assert len(placeholder) == len(replacement)
    assert archive.count(placeholder) == 2
    return archive.replace(placeholder, replacement)


def set_zip_flag(archive: bytes, flag: int) -> bytes:
    """Set a general-purpose flag bit on every entry, in both headers."""
    data = bytearray(archive)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (found := data.find(signature, start)) >= 0:
            flags = int.from_bytes(data[found + offset : found + offset + 2], "little") | flag
            data[found + offset : found + offset + 2] = flags.to_bytes(2, "little")
            start = found + 4
    return bytes(data)


def set_declared_size(archive: bytes, size: int) -> bytes:
    """Lie about the first entry's uncompressed size, in both headers."""
    data = bytearray(archive)
    local = data.find(b"PK\x03\x04")
    data[local + 22 : local + 26] = size.to_bytes(4, "little")
    central = data.find(b"PK\x01\x02")
    data[central + 24 : central + 28] = size.to_bytes(4, "little")
    return bytes(data)


def tar_gz_bytes(members: Iterable[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


SITE = {
    "index.html": b"<!DOCTYPE html><title>PREP</title>",
    "assets/JSON/DIP_LOC/resumen.json": b'{"actas_registradas": 3}',
    "assets/csv/DIP_LOC_BCS_2024.csv": b"DIP_LOC\r\n02/06/2024 21:20 (UTC-07:00)\r\n",
    "assets/actas/DIP_LOC/0301B01002.png": b"\x89PNG\r\n\x1a\n" + bytes(range(200)),
}

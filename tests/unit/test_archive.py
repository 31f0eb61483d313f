"""Archive safety: every kind of bad package is refused with its own reason."""

from __future__ import annotations

import gzip
import hashlib
import io
import stat
import tarfile
import zipfile

import pytest

from difusion.archive import ArchiveLimits, normalize_member_path, read_members, scan_archive
from difusion.errors import PackageRejected, RejectionCode
from difusion.package_name import ArchiveFormat
from tests.builders import (
    SITE,
    patch_name,
    set_declared_size,
    set_zip_flag,
    tar_gz_bytes,
    tar_member,
    zip_bytes,
    zip_with_symlink,
)

ZIP = ArchiveFormat.ZIP
TGZ = ArchiveFormat.TAR_GZ
LIMITS = ArchiveLimits()


def scan(data: bytes, fmt: ArchiveFormat = ZIP, limits: ArchiveLimits = LIMITS):
    return scan_archive(io.BytesIO(data), fmt, limits)


def rejection(data: bytes, fmt: ArchiveFormat = ZIP, limits: ArchiveLimits = LIMITS):
    with pytest.raises(PackageRejected) as caught:
        scan(data, fmt, limits)
    return caught.value


# --- accepted packages -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [ZIP, TGZ])
def test_a_valid_package_yields_every_file_with_its_size_and_sha256(fmt):
    # Given a site packaged as zip or tar.gz
    data = zip_bytes(SITE) if fmt is ZIP else tar_gz_bytes(SITE.items())
    # When it is scanned
    entries = scan(data, fmt)
    # Then every file is listed, sorted, with the hash of its exact bytes
    assert [e.path for e in entries] == sorted(SITE)
    for entry in entries:
        assert entry.size == len(SITE[entry.path])
        assert entry.sha256 == hashlib.sha256(SITE[entry.path]).hexdigest()


def test_directory_entries_and_leading_dot_slash_are_normalized():
    data = tar_gz_bytes(
        [
            tar_member("./", tarfile.DIRTYPE),
            ("./index.html", b"x"),
            tar_member("./assets", tarfile.DIRTYPE),
            ("./assets/a.css", b"y"),
        ]
    )
    assert [e.path for e in scan(data, TGZ)] == ["assets/a.css", "index.html"]


def test_utf8_names_without_the_utf8_flag_are_read_as_utf8():
    # Many zip tools write UTF-8 names without setting bit 11.
    data = patch_name(zip_bytes({"comondu-XX.json": b"{}"}), b"XX", "ú".encode())
    data = set_zip_flag(data, 0)  # no-op, keeps the flag unset
    assert scan(data)[0].path == "comondu-ú.json"


def test_read_members_yields_only_the_wanted_files_with_their_bytes():
    data = zip_bytes(SITE)
    wanted = {"index.html", "assets/csv/DIP_LOC_BCS_2024.csv"}
    got = {
        path: stream.read() for path, stream in read_members(io.BytesIO(data), ZIP, wanted, LIMITS)
    }
    assert got == {path: SITE[path] for path in wanted}


@pytest.mark.parametrize("fmt", [ZIP, TGZ])
def test_a_tap_receives_a_copy_of_the_files_it_asks_for_in_the_same_pass(fmt):
    data = zip_bytes(SITE) if fmt is ZIP else tar_gz_bytes(SITE.items())
    copies: dict[str, io.BytesIO] = {}

    def tap(path: str) -> io.BytesIO | None:
        return copies.setdefault(path, io.BytesIO()) if path.endswith(".csv") else None

    scan_archive(io.BytesIO(data), fmt, LIMITS, tap=tap)
    assert {path: copy.getvalue() for path, copy in copies.items()} == {
        "assets/csv/DIP_LOC_BCS_2024.csv": SITE["assets/csv/DIP_LOC_BCS_2024.csv"]
    }


# --- the corpus of bad packages -------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt", "code"),
    [
        pytest.param(b"", ZIP, RejectionCode.EMPTY, id="zero-byte object"),
        pytest.param(
            b"this is not a zip at all" * 10,
            ZIP,
            RejectionCode.NOT_AN_ARCHIVE,
            id="text named .zip",
        ),
        pytest.param(zip_bytes(SITE)[:300], ZIP, RejectionCode.CORRUPT, id="truncated zip"),
        pytest.param(zip_bytes({}), ZIP, RejectionCode.EMPTY, id="zip without files"),
        pytest.param(b"\x1f\x8b" + b"\x00" * 50, TGZ, RejectionCode.CORRUPT, id="damaged gzip"),
        pytest.param(
            tar_gz_bytes(SITE.items())[:200], TGZ, RejectionCode.CORRUPT, id="truncated tar.gz"
        ),
        pytest.param(
            gzip.compress(b"plain text, no tar inside" * 40),
            TGZ,
            RejectionCode.CORRUPT,
            id="gzip without a tar",
        ),
        pytest.param(zip_bytes(SITE), TGZ, RejectionCode.NOT_AN_ARCHIVE, id="zip named .tar.gz"),
        pytest.param(tar_gz_bytes([]), TGZ, RejectionCode.EMPTY, id="tar without files"),
        pytest.param(
            zip_bytes({"../evil.html": b"x"}), ZIP, RejectionCode.UNSAFE_PATH, id="parent traversal"
        ),
        pytest.param(
            zip_bytes({"assets/../../evil.html": b"x"}),
            ZIP,
            RejectionCode.UNSAFE_PATH,
            id="inner traversal",
        ),
        pytest.param(
            zip_bytes({"/etc/cron.d/evil": b"x"}),
            ZIP,
            RejectionCode.UNSAFE_PATH,
            id="absolute path",
        ),
        pytest.param(
            zip_bytes({"C:/Windows/evil.html": b"x"}),
            ZIP,
            RejectionCode.UNSAFE_PATH,
            id="drive letter",
        ),
        pytest.param(
            zip_bytes({"assets\\evil.html": b"x"}), ZIP, RejectionCode.UNSAFE_PATH, id="backslash"
        ),
        pytest.param(
            zip_bytes({"assets//a.html": b"x"}), ZIP, RejectionCode.UNSAFE_PATH, id="empty segment"
        ),
        pytest.param(
            tar_gz_bytes([("../evil.html", b"x")]),
            TGZ,
            RejectionCode.UNSAFE_PATH,
            id="tar traversal",
        ),
        pytest.param(
            tar_gz_bytes([tar_member("../up", tarfile.DIRTYPE)]),
            TGZ,
            RejectionCode.UNSAFE_PATH,
            id="tar directory traversal",
        ),
        pytest.param(zip_with_symlink(), ZIP, RejectionCode.LINK, id="zip symlink"),
        pytest.param(
            tar_gz_bytes(
                [("index.html", b"x"), tar_member("a.html", tarfile.SYMTYPE, "/etc/passwd")]
            ),
            TGZ,
            RejectionCode.LINK,
            id="tar symlink",
        ),
        pytest.param(
            tar_gz_bytes(
                [("index.html", b"x"), tar_member("b.html", tarfile.LNKTYPE, "index.html")]
            ),
            TGZ,
            RejectionCode.LINK,
            id="tar hard link",
        ),
        pytest.param(
            tar_gz_bytes([tar_member("dev", tarfile.CHRTYPE)]),
            TGZ,
            RejectionCode.SPECIAL_FILE,
            id="tar character device",
        ),
        pytest.param(
            tar_gz_bytes([tar_member("pipe", tarfile.FIFOTYPE)]),
            TGZ,
            RejectionCode.SPECIAL_FILE,
            id="tar fifo",
        ),
        pytest.param(
            zip_bytes({"fifo": b""}, mode=stat.S_IFIFO | 0o644),
            ZIP,
            RejectionCode.SPECIAL_FILE,
            id="zip fifo",
        ),
        pytest.param(
            zip_bytes([("index.html", b"a"), ("index.html", b"b")]),
            ZIP,
            RejectionCode.DUPLICATE_PATH,
            id="duplicate path",
        ),
        pytest.param(
            zip_bytes([("Index.html", b"a"), ("index.html", b"b")]),
            ZIP,
            RejectionCode.DUPLICATE_PATH,
            id="paths differing in case",
        ),
        pytest.param(
            tar_gz_bytes([("a.html", b"a"), ("./a.html", b"b")]),
            TGZ,
            RejectionCode.DUPLICATE_PATH,
            id="duplicate after normalization",
        ),
        pytest.param(
            zip_bytes({"assets": b"a", "assets/x.css": b"b"}),
            ZIP,
            RejectionCode.DUPLICATE_PATH,
            id="file and directory at one path",
        ),
        pytest.param(
            zip_bytes([("a\u00f1o.json", b"a"), ("an\u0303o.json", b"b")]),
            ZIP,
            RejectionCode.DUPLICATE_PATH,
            id="composed and decomposed accents",
        ),
        pytest.param(
            tar_gz_bytes([("Stra\u00dfe.html", b"a"), ("STRASSE.html", b"b")]),
            TGZ,
            RejectionCode.DUPLICATE_PATH,
            id="paths equal under full case folding",
        ),
        pytest.param(
            zip_bytes({"Actas/a.png": b"a", "actas/b.png": b"b"}),
            ZIP,
            RejectionCode.DUPLICATE_PATH,
            id="one directory spelled two ways",
        ),
        pytest.param(
            zip_bytes({"datos": b"a", "Datos/a.csv": b"b"}),
            ZIP,
            RejectionCode.DUPLICATE_PATH,
            id="file and directory differing in case",
        ),
        pytest.param(
            tar_gz_bytes([("index.html.", b"x")]),
            TGZ,
            RejectionCode.BAD_FILE_NAME,
            id="trailing dot",
        ),
        pytest.param(
            zip_bytes({"assets/datos /a.csv": b"x"}),
            ZIP,
            RejectionCode.BAD_FILE_NAME,
            id="directory with a trailing space",
        ),
        pytest.param(
            zip_bytes({"assets/aux.json": b"x"}),
            ZIP,
            RejectionCode.BAD_FILE_NAME,
            id="windows device name",
        ),
        pytest.param(
            tar_gz_bytes([tar_member("assets/CON", tarfile.DIRTYPE), ("index.html", b"x")]),
            TGZ,
            RejectionCode.BAD_FILE_NAME,
            id="windows device name as a directory entry",
        ),
        pytest.param(
            zip_bytes({"resumen:votos.json": b"x"}),
            ZIP,
            RejectionCode.BAD_FILE_NAME,
            id="character windows forbids",
        ),
        pytest.param(
            zip_bytes({"index\u200d.html": b"x"}),
            ZIP,
            RejectionCode.BAD_FILE_NAME,
            id="zero-width joiner",
        ),
        pytest.param(
            patch_name(zip_bytes({"XX.html": b"x"}), b"XX", b"\xff\xfe"),
            ZIP,
            RejectionCode.BAD_FILE_NAME,
            id="name not UTF-8",
        ),
        pytest.param(
            set_zip_flag(patch_name(zip_bytes({"XX.html": b"x"}), b"XX", b"\xc3\x28"), 0x800),
            ZIP,
            RejectionCode.BAD_FILE_NAME,
            id="name flagged UTF-8 but not UTF-8",
        ),
        pytest.param(
            zip_bytes({"a\x07b.html": b"x"}),
            ZIP,
            RejectionCode.BAD_FILE_NAME,
            id="control character",
        ),
        pytest.param(
            zip_bytes({"a\u0085b.html": b"x"}),
            ZIP,
            RejectionCode.BAD_FILE_NAME,
            id="C1 control character",
        ),
        pytest.param(
            tar_gz_bytes([("ok-\udcff.html", b"x")]),
            TGZ,
            RejectionCode.BAD_FILE_NAME,
            id="tar name not UTF-8",
        ),
        pytest.param(
            zip_bytes({".well-known/prep/manifest.json": b"{}"}),
            ZIP,
            RejectionCode.RESERVED_PATH,
            id="reserved path",
        ),
        pytest.param(
            zip_bytes({".Well-Known/PREP/prep.pub": b"k"}),
            ZIP,
            RejectionCode.RESERVED_PATH,
            id="reserved path in other case",
        ),
        pytest.param(
            zip_bytes({".well-\u212anown/prep/prep.pub": b"k"}),
            ZIP,
            RejectionCode.RESERVED_PATH,
            id="reserved path under case folding",
        ),
        pytest.param(
            set_zip_flag(zip_bytes(SITE), 0x1), ZIP, RejectionCode.ENCRYPTED, id="encrypted entries"
        ),
    ],
)
def test_bad_packages_are_rejected_with_a_specific_reason(data, fmt, code):
    caught = rejection(data, fmt)
    assert caught.code is code
    assert caught.reason  # a sentence an operator can act on


@pytest.mark.parametrize("fmt", [ZIP, TGZ])
def test_a_collision_names_both_paths(fmt):
    # Given "año" composed in one file name and decomposed in another (macOS writes the latter)
    files = [("assets/a\u00f1o.csv", b"a"), ("assets/an\u0303o.csv", b"b")]
    data = zip_bytes(files) if fmt is ZIP else tar_gz_bytes(files)
    # When the package is scanned
    caught = rejection(data, fmt)
    # Then the reason names both, so the operator knows which file to rename
    assert caught.code is RejectionCode.DUPLICATE_PATH
    assert all(repr(path) in caught.reason for path, _ in files)


def test_a_corrupted_byte_fails_the_crc_check():
    # Given a stored (uncompressed) entry whose content was altered after zipping
    data = bytearray(
        zip_bytes({"index.html": b"<html>results</html>"}, compression=zipfile.ZIP_STORED)
    )
    position = bytes(data).find(b"results")
    data[position] ^= 0x01
    # Then the stored CRC no longer matches
    caught = rejection(bytes(data))
    assert caught.code is RejectionCode.CHECKSUM_MISMATCH
    assert "index.html" in caught.reason


def test_a_declared_size_that_does_not_match_the_content_is_rejected():
    data = set_declared_size(zip_bytes({"resumen.json": b'{"votos": 1}' * 20}), 5000)
    assert rejection(data).code is RejectionCode.CHECKSUM_MISMATCH


# --- limits against decompression bombs -------------------------------------------------------


def test_an_entry_that_expands_beyond_the_ratio_limit_is_a_bomb():
    limits = ArchiveLimits(max_ratio=20, ratio_floor_bytes=64 * 1024)
    caught = rejection(zip_bytes({"zeros.json": bytes(1024 * 1024)}), limits=limits)
    assert caught.code is RejectionCode.COMPRESSION_RATIO


def test_a_tar_gz_that_expands_beyond_the_ratio_limit_is_a_bomb():
    limits = ArchiveLimits(max_ratio=20, ratio_floor_bytes=64 * 1024)
    data = tar_gz_bytes([("zeros.csv", bytes(1024 * 1024))])
    assert rejection(data, TGZ, limits).code is RejectionCode.COMPRESSION_RATIO


def test_ordinary_compressible_files_under_the_floor_are_not_bombs():
    limits = ArchiveLimits(max_ratio=20, ratio_floor_bytes=64 * 1024)
    assert len(scan(zip_bytes({"small.json": bytes(32 * 1024)}), limits=limits)) == 1


def test_total_uncompressed_size_is_limited():
    limits = ArchiveLimits(max_total_bytes=1000)
    files = {f"f{i}.txt": bytes([i]) * 400 for i in range(3)}
    assert rejection(zip_bytes(files), limits=limits).code is RejectionCode.TOO_LARGE


def test_total_size_is_limited_in_a_tar_stream_too():
    limits = ArchiveLimits(max_total_bytes=1000)
    files = [(f"f{i}.txt", bytes([i]) * 400) for i in range(3)]
    assert rejection(tar_gz_bytes(files), TGZ, limits).code is RejectionCode.TOO_LARGE


def test_per_file_size_is_limited():
    limits = ArchiveLimits(max_file_bytes=100)
    assert rejection(zip_bytes({"big.csv": b"x" * 101}), limits=limits).code is (
        RejectionCode.TOO_LARGE
    )


@pytest.mark.parametrize("fmt", [ZIP, TGZ])
def test_entry_count_is_limited(fmt):
    limits = ArchiveLimits(max_entries=5)
    files = [(f"f{i}.txt", b"x") for i in range(6)]
    data = zip_bytes(files) if fmt is ZIP else tar_gz_bytes(files)
    assert rejection(data, fmt, limits).code is RejectionCode.TOO_MANY_ENTRIES


# --- path rules in isolation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("index.html", "index.html"),
        ("./index.html", "index.html"),
        ("assets/JSON/DIP_LOC/resumen.json", "assets/JSON/DIP_LOC/resumen.json"),
        ("assets/actas/AYUN/0301B0100 3.png", "assets/actas/AYUN/0301B0100 3.png"),
        (".well-known/security.txt", ".well-known/security.txt"),
    ],
)
def test_safe_names_normalize(name, expected):
    assert normalize_member_path(name) == expected


def test_keys_longer_than_s3_allows_are_rejected():
    with pytest.raises(PackageRejected) as caught:
        normalize_member_path("a/" * 600 + "x.html")
    assert caught.value.code is RejectionCode.BAD_FILE_NAME


def test_zip_entries_without_recorded_file_type_are_regular_files():
    # Python's ZipFile.writestr(str, ...) records permissions but no file type bits.
    entries = scan(zip_bytes(SITE, mode=0o600))
    assert len(entries) == len(SITE)


@pytest.mark.parametrize("fmt", [ZIP, TGZ])
def test_peak_memory_does_not_grow_with_package_size(fmt, tmp_path):
    import os
    import tracemalloc

    def peak_for(file_bytes: int) -> int:
        # Incompressible content, written to disk: the scan reads it as a stream.
        files = [(f"assets/actas/{i}.png", os.urandom(file_bytes)) for i in range(6)]
        path = tmp_path / f"p{file_bytes}"
        path.write_bytes(
            zip_bytes(files, compression=zipfile.ZIP_STORED) if fmt is ZIP else tar_gz_bytes(files)
        )
        del files
        with path.open("rb") as stream:
            tracemalloc.start()
            scan_archive(stream, fmt, LIMITS)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        return peak

    small, large = peak_for(2 * 1024 * 1024), peak_for(8 * 1024 * 1024)
    assert large < small * 1.2 + 256 * 1024
    assert large < 8 * 1024 * 1024  # well under the size of one file

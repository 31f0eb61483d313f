"""Paths that mean one file, and the same file, on every disk a site is copied to.

S3 keys are exact strings, but difusores mirror their sites and citizens verify downloads
on NTFS (Windows), APFS or HFS+ (macOS) and ext4 (Linux). Two rules keep a package's
paths meaningful on all of them:

* a name that cannot exist on one of them is refused (:func:`check_portable`);
* two paths that one of them stores as a single file are refused (:class:`PathRegistry`),
  and so is a file that is also the directory of another path.

Control characters, backslashes and drive letters are refused earlier, by
:func:`difusion.archive.normalize_member_path`.
"""

from __future__ import annotations

import unicodedata

from difusion.errors import PackageRejected, RejectionCode

# The longest name (one segment) ext4 and APFS hold, in UTF-8 bytes; NTFS and HFS+ count
# UTF-16 units, never more than UTF-8 bytes.
MAX_SEGMENT_BYTES = 255

# Characters Windows does not allow in a name (":" would even name an NTFS data stream).
WINDOWS_FORBIDDEN = frozenset('<>:"|?*')

# Windows opens the device whatever the extension and letter case: "nul.tar.gz" is NUL.
_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")}
)

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt, 15.1): invisible, and
# HFS+ and APFS drop some of them when comparing names, so "a\u200db" may be "ab".
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


def is_default_ignorable(char: str) -> bool:
    """Is ``char`` a code point that renders as nothing and some file systems ignore?"""
    code = ord(char)
    return any(low <= code <= high for low, high in _DEFAULT_IGNORABLE)


def check_portable(path: str) -> None:
    """Refuse ``path`` (segments joined by "/") if a verifier's disk cannot hold it as is."""
    for char in path:
        if char in WINDOWS_FORBIDDEN:
            raise _bad_name(path, f"contains {char!r}, which Windows does not allow in names")
        if is_default_ignorable(char):
            raise _bad_name(
                path,
                f"contains the invisible character U+{ord(char):04X}, which macOS ignores in "
                "names: it would be the same file as the path without it",
            )
    for segment in path.split("/"):
        # HFS+ stores the decomposed form, which may be longer.
        if len(unicodedata.normalize("NFD", segment).encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _bad_name(
                path,
                f"{segment[:40]!r}… is longer than {MAX_SEGMENT_BYTES} bytes, a file "
                "system's limit for one name",
            )
        kept = segment.rstrip(". ")
        if kept != segment:
            stored = f"stores it as {kept!r}" if kept else "cannot store it"
            raise _bad_name(path, f"{segment!r} ends with a dot or a space: Windows {stored}")
        if segment.split(".", 1)[0].rstrip(" ").upper() in _DEVICE_NAMES:
            raise _bad_name(
                path,
                f"{segment!r} is a device name on Windows (CON, PRN, AUX, NUL, COM0–9, "
                "LPT0–9, with any extension), not a file",
            )


def collision_key(path: str) -> str:
    """The form two paths share when some file system stores them as one file.

    Case-insensitive file systems (NTFS; APFS and HFS+ by default) compare letters
    without case, APFS compares accents however they are encoded and HFS+ stores them
    decomposed. Full case folding after upper-casing covers what each file system folds
    ("ß" is "SS", dotless "ı" upper-cases to "I"); decomposing covers composed "ñ" against
    "n" with a combining tilde. It may merge a pair no file system merges: refusing
    such a pair costs nothing.
    """
    folded = unicodedata.normalize("NFD", path).upper().casefold()
    return unicodedata.normalize("NFD", folded)


def _how_they_collide(first: str, second: str) -> str:
    if unicodedata.normalize("NFD", first) == unicodedata.normalize("NFD", second):
        return "differ only in how accents are encoded (composed or decomposed Unicode)"
    if first.upper().casefold() == second.upper().casefold():
        return "differ only in letter case"
    return "differ only in letter case and in how accents are encoded"


class PathRegistry:
    """The paths of one package so far; refuses one that collides with a path already added.

    Directories count too: "Actas/a.png" and "actas/b.png" put two spellings of one
    directory in the manifest, and a file may not also be a directory ("datos" and
    "Datos/a.csv").
    """

    def __init__(self) -> None:
        self._files: dict[str, str] = {}  # collision key -> path
        self._directories: dict[str, tuple[str, str]] = {}  # key -> (spelling, a path in it)

    def add(self, path: str) -> None:
        key = collision_key(path)
        first = self._files.get(key)
        if first == path:
            raise PackageRejected(RejectionCode.DUPLICATE_PATH, f"the package holds {path!r} twice")
        if first is not None:
            raise _collision("paths", first, path)
        if key in self._directories:
            raise _file_and_directory(path, self._directories[key][1])
        segments = path.split("/")
        for depth in range(1, len(segments)):
            directory = "/".join(segments[:depth])
            directory_key = collision_key(directory)
            if directory_key in self._files:
                raise _file_and_directory(self._files[directory_key], path)
            spelling, example = self._directories.setdefault(directory_key, (directory, path))
            if spelling != directory:
                raise _collision(
                    "directories", spelling, directory, f" (in {example!r} and {path!r})"
                )
        self._files[key] = path


def _collision(kind: str, first: str, second: str, where: str = "") -> PackageRejected:
    return PackageRejected(
        RejectionCode.DUPLICATE_PATH,
        f"the package holds the {kind} {first!r} and {second!r}{where}, which "
        f"{_how_they_collide(first, second)}: the file systems difusores and verifiers use "
        "store them as one",
    )


def _file_and_directory(file: str, inside: str) -> PackageRejected:
    return PackageRejected(
        RejectionCode.DUPLICATE_PATH, f"{file!r} is a file and also the directory of {inside!r}"
    )


def _bad_name(path: str, why: str) -> PackageRejected:
    return PackageRejected(RejectionCode.BAD_FILE_NAME, f"path {path!r}: {why}")

"""Portable paths: a package's names mean one file, the same file, on Windows, macOS and
Linux — names a verifier's disk cannot hold are refused, and so are names it would merge."""

from __future__ import annotations

import unicodedata

import pytest

from difusion.errors import PackageRejected, RejectionCode
from difusion.portable_paths import PathRegistry, check_portable, collision_key

NFC = "a\u00f1o"  # "año", ñ composed (what most tools write)
NFD = unicodedata.normalize("NFD", NFC)  # n + combining tilde (what HFS+ stores)


def refusal(path: str) -> PackageRejected:
    with pytest.raises(PackageRejected) as caught:
        check_portable(path)
    return caught.value


def collision(*paths: str) -> PackageRejected:
    registry = PathRegistry()
    with pytest.raises(PackageRejected) as caught:
        for path in paths:
            registry.add(path)
    return caught.value


# --- names a verifier's disk cannot hold ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "says"),
    [
        pytest.param("CON", "device name", id="CON"),
        pytest.param("con.html", "device name", id="device name with an extension"),
        pytest.param("Nul.tar.gz", "device name", id="device name with two extensions"),
        pytest.param("assets/aux/resumen.json", "device name", id="device name as a directory"),
        pytest.param("PRN.csv", "device name", id="PRN"),
        pytest.param("COM1.json", "device name", id="COM1"),
        pytest.param("lpt9.png", "device name", id="LPT9"),
        pytest.param("COM¹.txt", "device name", id="COM with a superscript digit"),
        pytest.param("CON .txt", "device name", id="device name before spaces"),
        pytest.param("a.html.", "stores it as 'a.html'", id="trailing dot"),
        pytest.param("a.html ", "stores it as 'a.html'", id="trailing space"),
        pytest.param("assets./x.css", "stores it as 'assets'", id="directory with a trailing dot"),
        pytest.param("assets/...", "cannot store it", id="only dots"),
        pytest.param("a<b.html", "'<'", id="less than"),
        pytest.param("a>b.html", "'>'", id="greater than"),
        pytest.param('a"b.html', "'\"'", id="double quote"),
        pytest.param("a|b.html", "'|'", id="pipe"),
        pytest.param("resumen?.json", "'?'", id="question mark"),
        pytest.param("a*.json", "'*'", id="asterisk"),
        pytest.param("index.html:stream", "':'", id="colon (an NTFS data stream)"),
        pytest.param("a\u200db.html", "U+200D", id="zero-width joiner"),
        pytest.param("a\u200bb.html", "U+200B", id="zero-width space"),
        pytest.param("\ufeffindex.html", "U+FEFF", id="byte order mark"),
        pytest.param("re\u00adsumen.json", "U+00AD", id="soft hyphen"),
        pytest.param("acta\u202egnp.exe", "U+202E", id="right-to-left override"),
        pytest.param("a\ufe0f.html", "U+FE0F", id="variation selector"),
        pytest.param("a\U000e0041.html", "U+E0041", id="tag character"),
        pytest.param("x" * 251 + ".html", "longer than 255 bytes", id="name over 255 bytes"),
        pytest.param("ñ" * 100 + ".html", "longer than 255 bytes", id="over 255 bytes decomposed"),
    ],
)
def test_names_a_verifiers_disk_cannot_hold_are_refused(path, says):
    caught = refusal(path)
    assert caught.code is RejectionCode.BAD_FILE_NAME
    assert repr(path) in caught.reason
    assert says in caught.reason


@pytest.mark.parametrize(
    "path",
    [
        "index.html",
        "assets/actas/AYUN/0301B0100 3.png",
        "CONSTANCIA.pdf",
        "console.json",
        "CON_DIP.csv",
        "nul-votos.csv",
        "COM10.txt",
        "LPT.txt",
        "aux-datos/resumen.json",
        " inicio.html",  # Windows keeps leading spaces
        ".well-known/security.txt",
        "Comondú.json",
        f"assets/{NFC}/niño.json",
        f"assets/{NFD}.json",  # one spelling alone is one file everywhere
        "mapa-\u00bd.svg",
        "votos_(2024).csv",
        "x" * 250 + ".html",  # 255 bytes: the longest name
        "/".join(["d" * 200] * 4),  # long paths are S3's limit (1,024 bytes), not a name's
    ],
)
def test_ordinary_names_are_portable(path):
    check_portable(path)  # does not raise


# --- names one disk stores as one file -----------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "says"),
    [
        pytest.param("Index.html", "index.html", "letter case", id="letter case"),
        pytest.param(f"{NFC}.html", f"{NFD}.html", "accents are encoded", id="NFC and NFD"),
        pytest.param(
            f"A{NFC[1:]}.json", f"{NFD}.json", "letter case and", id="case and normalization"
        ),
        pytest.param("Straße.html", "STRASSE.html", "letter case", id="full case folding"),
        pytest.param("\u212aey.json", "key.json", "letter case", id="Kelvin sign"),
        pytest.param("\u0131ndice.html", "indice.html", "letter case", id="dotless i"),
        pytest.param("\u03c3.csv", "\u03c2.csv", "letter case", id="final sigma"),
        pytest.param(
            "Actas/a.png", "actas/b.png", "directories 'Actas' and 'actas'", id="directory case"
        ),
        pytest.param(
            f"assets/{NFC}/a.csv",
            f"assets/{NFD}/b.csv",
            "accents are encoded",
            id="directory normalization",
        ),
        pytest.param("datos", "Datos/a.csv", "is a file and also the directory", id="file first"),
        pytest.param(
            "Datos/a.csv", "datos", "is a file and also the directory", id="directory first"
        ),
        pytest.param("a", "a/b/c", "is a file and also the directory", id="file and subdirectory"),
        pytest.param("index.html", "index.html", "twice", id="the same path"),
    ],
)
def test_paths_one_file_system_stores_as_one_file_are_refused_naming_both(first, second, says):
    caught = collision(first, second)
    assert caught.code is RejectionCode.DUPLICATE_PATH
    assert repr(first) in caught.reason
    assert repr(second) in caught.reason
    assert says in caught.reason


@pytest.mark.parametrize(
    "paths",
    [
        ("index.html", "index.htm"),
        (f"{NFC}.json", "ano.json"),  # an accent is a different letter
        ("ab", "a/b"),
        ("assets/a.css", "assets/b.css", "assets/img/c.png"),
        ("Actas/a.png", "Actas/b.png"),
        ("a.b", "a/b.c"),
    ],
)
def test_paths_that_stay_distinct_everywhere_are_accepted(paths):
    registry = PathRegistry()
    for path in paths:
        registry.add(path)  # does not raise


def test_the_collision_key_ignores_case_and_accent_encoding_but_not_accents():
    assert collision_key(f"A{NFC[1:]}/X.HTML") == collision_key(f"{NFD}/x.html")
    assert collision_key("ano") != collision_key(NFC)
    assert collision_key("a/b").split("/") == ["a", "b"]

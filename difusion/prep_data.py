"""The PREP database a package carries and the acta images it names, read one way for both
readers: ingest, which refuses a package whose images contradict their CODIGO_INTEGRIDAD,
and ``difusion verify``, which checks a difusor's copy for the same thing.

A database (``assets/csv/*.csv``) opens with the election's name, the cut time and a summary;
its per-acta header is found by its column names, whatever lines precede it (RFC 4180
otherwise). An acta image is ``assets/actas/<ELECCION>/<CLAVE_ACTA>.<ext>``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import posixpath
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, BinaryIO, NamedTuple

from difusion.archive import ArchiveEntry, ArchiveLimits, scan_archive
from difusion.errors import PackageRejected, RejectionCode
from difusion.package_name import ArchiveFormat

CSV_PREFIX = "assets/csv/"
ACTAS_PREFIX = "assets/actas/"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".pdf")
INTEGRITY_COLUMNS = ("CODIGO_INTEGRIDAD", "SHA")  # INE 2021–2024; older years
NAMED_IN_REASON = 5  # contradictions spelled out in a rejection; the rest are counted
_SPOOL_IN_MEMORY = 8 * 1024 * 1024  # a database larger than this is copied to disk


class ActaRow(NamedTuple):
    """One acta a database gives an integrity code."""

    casilla: str  # CLAVE_CASILLA ("" in a database without that column)
    acta: str  # CLAVE_ACTA
    code: str  # CODIGO_INTEGRIDAD (SHA in older years), as written


def is_database(path: str) -> bool:
    return path.startswith(CSV_PREFIX) and path.endswith(".csv")


def acta_rows(lines: Iterable[str]) -> Iterator[ActaRow]:
    """The rows of a database (text lines, as ``csv.reader`` takes them) that give an acta a
    code. A row with an empty code names no image (PREP publishes an acta's row when it is
    registered, before or without its image): it is not returned, and nobody checks it."""
    clave_at = code_at = casilla_at = -1
    for row in csv.reader(lines):
        if clave_at < 0:
            names = [c.strip().upper() for c in row]
            if "CLAVE_ACTA" in names and any(c in names for c in INTEGRITY_COLUMNS):
                clave_at = names.index("CLAVE_ACTA")
                code_at = next(names.index(c) for c in INTEGRITY_COLUMNS if c in names)
                casilla_at = names.index("CLAVE_CASILLA") if "CLAVE_CASILLA" in names else -1
            continue
        if len(row) > max(clave_at, code_at) and row[code_at].strip():
            casilla = row[casilla_at] if 0 <= casilla_at < len(row) else ""
            yield ActaRow(_key(casilla), _key(row[clave_at]), row[code_at].strip())


def read_acta_rows(csv_bytes: bytes) -> list[ActaRow]:
    """:func:`acta_rows` of a whole database held in memory."""
    return list(acta_rows(io.StringIO(csv_bytes.decode("utf-8-sig", "replace"), newline="")))


def image_index(paths: Iterable[str]) -> dict[str, list[str]]:
    """Acta images by the CLAVE_ACTA their file is named after."""
    images: dict[str, list[str]] = {}
    for path in paths:
        if path.startswith(ACTAS_PREFIX) and path.lower().endswith(IMAGE_EXTENSIONS):
            stem = posixpath.splitext(posixpath.basename(path))[0]
            images.setdefault(stem, []).append(path)
    return images


def image_for(clave: str, csv_path: str, images: Mapping[str, list[str]]) -> str | None:
    """The image of acta ``clave`` named in the database ``csv_path``, if the site has it."""
    candidates = images.get(clave, [])
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    # The same clave in several elections' folders: the folder the CSV is named after.
    csv_name = posixpath.basename(csv_path)
    for candidate in candidates:
        if csv_name.startswith(posixpath.basename(posixpath.dirname(candidate)) + "_"):
            return candidate
    return None


def _key(text: str) -> str:
    return text.strip().strip("'")


# --- at ingest ------------------------------------------------------------------------------


def scan_package(
    source: BinaryIO, archive_format: ArchiveFormat, limits: ArchiveLimits
) -> list[ArchiveEntry]:
    """Every check a package passes before anything of it is staged: archive safety
    (:func:`~difusion.archive.scan_archive`), then each acta image its databases give a code
    against that code. The images are not read again: their hashes are the manifest's, and
    the databases are copied while they are hashed. Raises :class:`PackageRejected`."""
    with _DatabaseCopies() as databases:
        entries = scan_archive(source, archive_format, limits, tap=databases.tap)
        refuse_contradicted_actas(entries, databases.rows())
    return entries


@dataclass(frozen=True)
class Contradiction:
    """An acta whose image in the package does not hash to its code, or is not there."""

    database: str
    row: ActaRow
    image: str  # "" when the package has no image for the acta
    computed: str  # SHA-256 of the image; "" when there is none

    def describe(self) -> str:
        where = f"casilla {self.row.casilla or '—'}, acta {self.row.acta}"
        if not self.image:
            return (
                f"{where}: {self.database} le da CODIGO_INTEGRIDAD {self.row.code}, "
                "pero el paquete no trae su imagen"
            )
        return (
            f"{where} ({self.image}): CODIGO_INTEGRIDAD {self.row.code}, "
            f"SHA-256 calculado {self.computed}"
        )


def contradicted_actas(
    entries: Iterable[ArchiveEntry], rows: Iterable[tuple[str, ActaRow]]
) -> tuple[int, int, list[Contradiction]]:
    """(actas checked, contradictions, the first :data:`NAMED_IN_REASON` of them) for the
    ``(database path, row)`` pairs against the package's files. Memory: the file index and
    a few contradictions, however many rows."""
    hashes = {entry.path: entry.sha256 for entry in entries}
    images = image_index(hashes)
    checked = count = 0
    named: list[Contradiction] = []
    for database, row in rows:
        checked += 1
        image = image_for(row.acta, database, images) or ""
        computed = hashes.get(image, "")
        if computed and computed == row.code.lower():
            continue
        count += 1
        if len(named) < NAMED_IN_REASON:
            named.append(Contradiction(database, row, image, computed))
    return checked, count, named


def refuse_contradicted_actas(
    entries: Iterable[ArchiveEntry], rows: Iterable[tuple[str, ActaRow]]
) -> None:
    """Refuse a package that contradicts its own databases: published, every verifier of
    every difusor would show NO COINCIDE for those actas, for a fault upstream."""
    checked, count, named = contradicted_actas(entries, rows)
    if not count:
        return
    listed = "; ".join(c.describe() for c in named)
    more = f"; y {count - len(named):,} más" if count > len(named) else ""
    raise PackageRejected(
        RejectionCode.ACTA_INTEGRITY,
        f"{count:,} de {checked:,} actas con CODIGO_INTEGRIDAD en la base de datos del "
        f"paquete no tienen en él una imagen con esa huella: {listed}{more}. Publicado, cada "
        "verificador de "
        "cada difusor mostraría NO COINCIDE en esas actas; no se publicó nada y los difusores "
        "siguen con el último corte aceptado. Qué hacer: que la digitalización y captura de "
        "la UCSI revisen esas actas (la imagen correcta o su código), generen de nuevo el "
        "paquete y lo suban con el mismo nombre (si no se ha aceptado un corte posterior) o "
        "como el corte siguiente; `difusion check PAQUETE` lo valida antes de subirlo.",
    )


class _DatabaseCopies(contextlib.ExitStack):
    """Copies of a package's databases, made while :func:`scan_archive` hashes them, in
    memory up to a size and on disk beyond it; closed with the stack."""

    def __init__(self) -> None:
        super().__init__()
        self._copies: dict[str, IO[bytes]] = {}

    def tap(self, path: str) -> IO[bytes] | None:
        if not is_database(path):
            return None
        spooled = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115 - closed with the stack
        copy = self.enter_context(spooled)
        self._copies[path] = copy
        return copy

    def rows(self) -> Iterator[tuple[str, ActaRow]]:
        for path, copy in sorted(self._copies.items()):
            copy.seek(0)
            text = io.TextIOWrapper(copy, encoding="utf-8-sig", errors="replace", newline="")
            try:
                for row in acta_rows(text):
                    yield path, row
            finally:
                text.detach()  # the copy is closed with the stack, not by its reader

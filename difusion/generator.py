"""A deterministic generator of PREP snapshot series, modelled on Baja California Sur 2024.

A local election: state deputies (16 districts) and five ayuntamientos, around 1,100
casillas, each with one acta per election. Actas arrive over the night in a fixed random
order; each cut publishes the actas registered so far, so successive cuts change a small
share of the site's files, as on a real night. Same parameters, same bytes.

Site layout (mirroring published PREP sites)::

    index.html, diputaciones.html, ayuntamientos.html, leeme.txt
    assets/css/prep.css, assets/js/prep.js
    assets/JSON/<ELECCION>/resumen.json, .../<distrito|municipio>_<n>.json,
    assets/JSON/<ELECCION>/secciones/<seccion>.json
    assets/csv/<ELECCION>_BCS_2024.csv     the database, INE layout
    assets/actas/<ELECCION>/<CLAVE_ACTA>.png  acta images (CODIGO_INTEGRIDAD = SHA-256)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

TIME_ZONE = ZoneInfo("America/Mazatlan")
ELECTION_CODE = "DIP_LOC_BCS"
PARTIES = ("PAN", "PRI", "PRD", "PVEM", "PT", "MC", "MORENA", "PRS")
MUNICIPIOS = ("LA PAZ", "LOS CABOS", "COMONDÚ", "LORETO", "MULEGÉ")
# Share of casillas per municipio (La Paz and Los Cabos hold most of the population).
MUNICIPIO_WEIGHTS = (0.42, 0.40, 0.09, 0.03, 0.06)
DISTRITOS = 16
TIPOS = ("B", "C", "E", "S")
ELECTIONS = {
    "DIP_LOC": "Diputaciones Locales",
    "AYUN": "Ayuntamientos",
}


@dataclass(frozen=True)
class SeriesSpec:
    """Sizes and times of a series. Small for tests, full size for demos and benchmarks."""

    casillas: int = 1100
    cuts: int = 8
    first_cut: datetime = datetime(2024, 6, 2, 20, 0, tzinfo=TIME_ZONE)
    interval: timedelta = timedelta(minutes=20)
    image_bytes: int = 6000
    # Each acta image's size varies by up to this share around ``image_bytes`` (scans do).
    image_spread: float = 0.0
    seed: int = 2024
    election_code: str = ELECTION_CODE
    # Actas arrive over this many minutes after the first cut (most in the first hours);
    # this share of them arrives at all.
    arrival_minutes: int = 360
    final_share: float = 0.97

    @classmethod
    def small(cls, **overrides: object) -> SeriesSpec:
        values: dict[str, object] = {
            "casillas": 24,
            "cuts": 3,
            "image_bytes": 600,
            "arrival_minutes": 40,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def realistic(cls, **overrides: object) -> SeriesSpec:
        """Acta images the size of real scans, 100–300 KB (a BCS package is then ~430 MB):
        for the benchmark."""
        values: dict[str, object] = {"image_bytes": 200_000, "image_spread": 0.5}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Casilla:
    clave: str
    seccion: int
    tipo: str
    id_casilla: int
    ext_contigua: int
    distrito: int
    municipio: int  # 1-based index into MUNICIPIOS
    lista_nominal: int


@dataclass(frozen=True)
class Acta:
    election: str  # DIP_LOC | AYUN
    casilla: Casilla
    votes: tuple[int, ...]
    no_registrados: int
    nulos: int
    minute_offset: int  # minutes after the first cut when it is registered

    @property
    def clave_acta(self) -> str:
        kind = "2" if self.election == "DIP_LOC" else "3"
        return f"{self.casilla.clave}{kind}"

    @property
    def image_path(self) -> str:
        return f"assets/actas/{self.election}/{self.clave_acta}.png"

    @property
    def total(self) -> int:
        return sum(self.votes) + self.no_registrados + self.nulos


@dataclass
class Snapshot:
    """One cut of the site: its package name and every file."""

    cut_time: datetime
    election_code: str
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def snapshot_id(self) -> str:
        return f"{self.cut_time:%Y%m%d_%H%M}_PREP_{self.election_code}"

    def package_name(self, archive_format: str = "zip") -> str:
        return f"{self.snapshot_id}.{archive_format}"

    def write_package(self, directory: Path, archive_format: str = "zip") -> Path:
        """Write the snapshot as UCSI would upload it."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / self.package_name(archive_format)
        if archive_format == "zip":
            with zipfile.ZipFile(path, "w") as archive:
                for name in sorted(self.files):
                    entry = zipfile.ZipInfo(name, date_time=self.cut_time.timetuple()[:6])
                    entry.external_attr = 0o100644 << 16
                    entry.create_system = 3
                    # Images are compressed already; deflating them again only costs time.
                    stored = name.endswith(".png")
                    entry.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                    archive.writestr(entry, self.files[name])
        else:
            with tarfile.open(path, "w:gz") as archive:
                for name in sorted(self.files):
                    member = tarfile.TarInfo(name)
                    member.size = len(self.files[name])
                    member.mtime = int(self.cut_time.timestamp())
                    member.mode = 0o644
                    archive.addfile(member, io.BytesIO(self.files[name]))
        return path


def generate_series(spec: SeriesSpec) -> list[Snapshot]:
    """Every cut of the night, in order."""
    rng = random.Random(spec.seed)
    casillas = _casillas(spec, rng)
    actas = [
        _acta(election, casilla, rng, spec.arrival_minutes, spec.final_share)
        for casilla in casillas
        for election in ELECTIONS
    ]
    images = {acta.clave_acta: _acta_image(acta, spec) for acta in actas}
    snapshots = []
    for index in range(spec.cuts):
        cut_time = spec.first_cut + index * spec.interval
        minutes = index * int(spec.interval.total_seconds() // 60)
        registered = [a for a in actas if a.minute_offset <= minutes]
        snapshots.append(_snapshot(spec, cut_time, actas, registered, images))
    return snapshots


def _casillas(spec: SeriesSpec, rng: random.Random) -> list[Casilla]:
    casillas: list[Casilla] = []
    seccion = 100
    while len(casillas) < spec.casillas:
        seccion += rng.randint(1, 3)
        municipio = rng.choices(range(1, 6), weights=MUNICIPIO_WEIGHTS)[0]
        distrito = 1 + (seccion * 7 + municipio) % DISTRITOS
        for id_casilla in range(1, rng.choice((1, 2, 2, 3)) + 1):
            tipo = "B" if id_casilla == 1 else rng.choice(TIPOS[1:] if id_casilla > 2 else "C")
            ext = 0 if tipo != "C" else id_casilla - 1
            clave = f"03{seccion:04d}{tipo}{id_casilla:02d}{ext:02d}"
            casillas.append(
                Casilla(
                    clave,
                    seccion,
                    tipo,
                    id_casilla,
                    ext,
                    distrito,
                    municipio,
                    rng.randint(350, 750),
                )
            )
            if len(casillas) == spec.casillas:
                break
    return casillas


def _acta(
    election: str, casilla: Casilla, rng: random.Random, night_minutes: int, final_share: float
) -> Acta:
    turnout = rng.uniform(0.45, 0.68)
    voters = int(casilla.lista_nominal * turnout)
    weights = [rng.uniform(0.2, 1.0) * w for w in (1.4, 0.8, 0.2, 0.4, 0.5, 0.6, 2.6, 0.3)]
    total_weight = sum(weights)
    votes = tuple(int(voters * w / total_weight * 0.97) for w in weights)
    nulos = rng.randint(0, 12)
    # Most actas arrive in the first hours; a few never arrive before the last cut.
    if rng.random() < final_share:
        offset = int(night_minutes * rng.betavariate(1.3, 2.2))
    else:
        offset = night_minutes + 10_000
    return Acta(election, casilla, votes, rng.randint(0, 3), nulos, offset)


def _acta_image(acta: Acta, spec: SeriesSpec) -> bytes:
    """A grey-scale PNG of noise standing in for the scanned acta: deterministic, unique,
    about ``image_bytes`` long (noise does not compress, as a scan barely does)."""
    width = 64
    seed = hashlib.sha256(f"{spec.seed}:{acta.clave_acta}".encode()).digest()
    noise = random.Random(seed)
    size = spec.image_bytes * (1 + spec.image_spread * (2 * noise.random() - 1))
    rows = max(int(size) // width, 4)
    raw = b"".join(b"\x00" + noise.randbytes(width) for _ in range(rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, rows, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 1))
        + chunk(b"IEND", b"")
    )


CSV_COLUMNS = (
    "CLAVE_CASILLA",
    "CLAVE_ACTA",
    "ID_ENTIDAD",
    "ENTIDAD",
    "ID_DISTRITO_LOCAL",
    "DISTRITO_LOCAL",
    "ID_MUNICIPIO",
    "MUNICIPIO",
    "SECCION",
    "ID_CASILLA",
    "TIPO_CASILLA",
    "EXT_CONTIGUA",
    "UBICACION_CASILLA",
    "TIPO_ACTA",
    *PARTIES,
    "NO_REGISTRADOS",
    "NULOS",
    "TOTAL_VOTOS_ASENTADO",
    "TOTAL_VOTOS_CALCULADO",
    "LISTA_NOMINAL",
    "REPRESENTANTES_PP_CI",
    "OBSERVACIONES",
    "CONTABILIZADA",
    "MECANISMOS_TRASLADO",
    "CODIGO_INTEGRIDAD",
    "FECHA_HORA_ACOPIO",
    "FECHA_HORA_CAPTURA",
    "FECHA_HORA_VERIFICACION",
    "ORIGEN",
    "DIGITALIZACION",
    "TIPO_DOCUMENTO",
    "COTEJADA",
)
SUMMARY_COLUMNS = (
    "ACTAS_ESPERADAS",
    "ACTAS_REGISTRADAS",
    "ACTAS_FUERA_CATALOGO",
    "ACTAS_CAPTURADAS",
    "PORCENTAJE_ACTAS_CAPTURADAS",
    "ACTAS_CONTABILIZADAS",
    "PORCENTAJE_ACTAS_CONTABILIZADAS",
    "PORCENTAJE_ACTAS_INCONSISTENCIAS",
    "ACTAS_NO_CONTABILIZADAS",
    "LISTA_NOMINAL_ACTAS_CONTABILIZADAS",
    "TOTAL_VOTOS_C_CS",
    "TOTAL_VOTOS_S_CS",
    "PORCENTAJE_PARTICIPACION_CIUDADANA",
)


def _snapshot(
    spec: SeriesSpec,
    cut_time: datetime,
    actas: list[Acta],
    registered: list[Acta],
    images: dict[str, bytes],
) -> Snapshot:
    snapshot = Snapshot(cut_time=cut_time, election_code=spec.election_code)
    files = snapshot.files
    offset = cut_time.strftime("%z")  # e.g. -0700
    cut_label = f"{cut_time:%d/%m/%Y %H:%M} (UTC{offset[:3]}:{offset[3:]})"
    for election, title in ELECTIONS.items():
        expected = [a for a in actas if a.election == election]
        done = [a for a in registered if a.election == election]
        for acta in done:
            files[acta.image_path] = images[acta.clave_acta]
        files[f"assets/csv/{election}_BCS_2024.csv"] = _csv(
            title, cut_label, cut_time, expected, done, images
        )
        files.update(_json_files(election, title, cut_label, expected, done))
    files.update(_site_pages(cut_label))
    return snapshot


def _csv(
    title: str,
    cut_label: str,
    cut_time: datetime,
    expected: list[Acta],
    done: list[Acta],
    images: dict[str, bytes],
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([f"{title} - Baja California Sur - PREP 2024"])
    writer.writerow([cut_label])
    counted = [a for a in done if a.total <= a.casilla.lista_nominal]
    votes = sum(a.total for a in counted)
    nominal = sum(a.casilla.lista_nominal for a in counted)
    writer.writerow(SUMMARY_COLUMNS)
    writer.writerow(
        [
            len(expected),
            len(done),
            0,
            len(done),
            f"{100 * len(done) / len(expected):.4f}",
            len(counted),
            f"{100 * len(counted) / len(expected):.4f}",
            "0.0000",
            len(done) - len(counted),
            nominal,
            votes,
            votes,
            f"{100 * votes / nominal if nominal else 0:.4f}",
        ]
    )
    writer.writerow(CSV_COLUMNS)
    for acta in sorted(done, key=lambda a: a.clave_acta):
        c = acta.casilla
        at = cut_time - timedelta(minutes=5)
        stamp = f"{at:%d/%m/%Y %H:%M:%S}"
        writer.writerow(
            [
                c.clave,
                acta.clave_acta,
                3,
                "BAJA CALIFORNIA SUR",
                c.distrito,
                f"DISTRITO {c.distrito}",
                c.municipio,
                MUNICIPIOS[c.municipio - 1],
                c.seccion,
                c.id_casilla,
                c.tipo,
                c.ext_contigua,
                1,
                2 if acta.election == "DIP_LOC" else 3,
                *acta.votes,
                acta.no_registrados,
                acta.nulos,
                acta.total,
                acta.total,
                c.lista_nominal,
                2,
                "",
                1,
                "F",
                hashlib.sha256(images[acta.clave_acta]).hexdigest(),
                stamp,
                stamp,
                stamp,
                "CATD",
                "ESCANER",
                "ACTA PREP",
                1,
            ]
        )
    return out.getvalue().encode("utf-8")


def _json_files(
    election: str, title: str, cut_label: str, expected: list[Acta], done: list[Acta]
) -> Iterator[tuple[str, bytes]]:
    def dump(value: object) -> bytes:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")

    def totals(actas: list[Acta]) -> dict[str, int]:
        return {p: sum(a.votes[i] for a in actas) for i, p in enumerate(PARTIES)}

    base = f"assets/JSON/{election}"
    yield (
        f"{base}/resumen.json",
        dump(
            {
                "eleccion": title,
                "corte": cut_label,
                "actas_esperadas": len(expected),
                "actas_registradas": len(done),
                "votos": totals(done),
                "nulos": sum(a.nulos for a in done),
            }
        ),
    )
    if election == "DIP_LOC":
        groups = {
            f"distrito_{d:02d}": [a for a in done if a.casilla.distrito == d]
            for d in range(1, DISTRITOS + 1)
        }
    else:
        groups = {
            f"municipio_{m}": [a for a in done if a.casilla.municipio == m]
            for m in range(1, len(MUNICIPIOS) + 1)
        }
    for name, actas in groups.items():
        yield f"{base}/{name}.json", dump({"actas_registradas": len(actas), "votos": totals(actas)})
    by_seccion: dict[int, list[Acta]] = {}
    for acta in done:
        by_seccion.setdefault(acta.casilla.seccion, []).append(acta)
    for seccion, actas in sorted(by_seccion.items()):
        yield (
            f"{base}/secciones/{seccion:04d}.json",
            dump(
                {
                    "seccion": seccion,
                    "casillas": [
                        {
                            "clave_acta": a.clave_acta,
                            "votos": dict(zip(PARTIES, a.votes, strict=True)),
                            "acta": "/" + a.image_path,
                        }
                        for a in sorted(actas, key=lambda a: a.clave_acta)
                    ],
                }
            ),
        )


def _site_pages(cut_label: str) -> dict[str, bytes]:
    def page(title: str, election: str) -> bytes:
        return f"""<!DOCTYPE html>
<html lang="es">
<head><meta charset="utf-8"><title>PREP BCS 2024 — {title}</title>
<link rel="stylesheet" href="/assets/css/prep.css"></head>
<body data-eleccion="{election}">
<header><h1>Programa de Resultados Electorales Preliminares 2024</h1>
<p>Baja California Sur — {title}</p><p class="corte">Corte: {cut_label}</p></header>
<nav><a href="/index.html">Inicio</a> · <a href="/diputaciones.html">Diputaciones</a> ·
<a href="/ayuntamientos.html">Ayuntamientos</a></nav>
<main id="resultados">Cargando resultados…</main>
<footer>Los resultados preliminares son de carácter informativo y no definitivos.</footer>
<script src="/assets/js/prep.js"></script>
</body></html>
""".encode()

    return {
        "index.html": page("Inicio", "DIP_LOC"),
        "diputaciones.html": page("Diputaciones Locales", "DIP_LOC"),
        "ayuntamientos.html": page("Ayuntamientos", "AYUN"),
        "assets/css/prep.css": (
            b"body{font-family:sans-serif;margin:0 auto;max-width:60em}"
            b"header{background:#6d2077;color:#fff;padding:1em}table{border-collapse:collapse}"
            b"td,th{border:1px solid #ccc;padding:.2em .5em}\n"
        ),
        "assets/js/prep.js": (
            b"(async()=>{const e=document.body.dataset.eleccion;"
            b"const r=await fetch(`/assets/JSON/${e}/resumen.json`,{cache:'no-cache'});"
            b"const d=await r.json();const m=document.getElementById('resultados');"
            b"m.innerHTML='<table>'+Object.entries(d.votos).map(([p,v])=>"
            b"`<tr><th>${p}</th><td>${v}</td></tr>`).join('')+'</table>'+"
            b"`<p>Actas registradas: ${d.actas_registradas} de ${d.actas_esperadas}</p>`;})();\n"
        ),
        "leeme.txt": (
            "PREP BCS 2024 — paquete de difusión.\r\n"
            "Contiene el sitio de publicación, la base de datos en CSV (assets/csv) y las\r\n"
            "imágenes de las actas (assets/actas). CODIGO_INTEGRIDAD es el SHA-256 de cada\r\n"
            "imagen.\r\n"
        ).encode(),
    }

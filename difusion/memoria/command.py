"""``difusion memoria``: read the logs (a folder, or the difusor's log bucket), build the
memoria, write the HTML, the PDF, the figures and the JSON."""

from __future__ import annotations

import json
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difusion.memoria.build import MemoriaInput, build_memoria
from difusion.memoria.ledger_export import DifusorHistory
from difusion.memoria.render import figures_of, render_html
from difusion.memoria.traffic import Period, TrafficLog


class MemoriaError(Exception):
    """The memoria cannot be written; the message says why and what to do."""


class LogSourceError(MemoriaError, ValueError):
    """The logs cannot be read from where they were said to be."""


class PdfUnavailable(MemoriaError):
    """WeasyPrint's system libraries are missing: the HTML, JSON and figures are written."""


@dataclass(frozen=True)
class MemoriaFiles:
    html: Path
    pdf: Path | None
    json: Path
    figures: tuple[Path, ...]


def _load_weasyprint() -> Any:
    """WeasyPrint, loaded when a PDF is asked for (it loads Pango through ctypes)."""
    import weasyprint

    return weasyprint


@contextmanager
def log_files(source: str, period: Period) -> Iterator[list[Path]]:
    """The period's log files from ``source``: a local folder (searched recursively for
    ``*.gz``) or ``s3://bucket/prefix/`` (downloaded to a temporary folder, only the files
    whose name says they may hold the period)."""
    if source.startswith("s3://"):
        parsed = urllib.parse.urlparse(source)
        bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
        if not bucket:
            raise LogSourceError(f"{source}: no bucket named")
        from botocore.exceptions import BotoCoreError, ClientError

        from difusion.adapters.sessions import new_session

        s3 = new_session().client("s3")
        with tempfile.TemporaryDirectory(prefix="difusion-memoria-") as scratch:
            files = []
            try:
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for page in pages:
                    for item in page.get("Contents", []):
                        name = item["Key"].rsplit("/", 1)[-1]
                        if period.may_hold(name):
                            target = Path(scratch) / name
                            s3.download_file(bucket, item["Key"], str(target))
                            files.append(target)
            except (ClientError, BotoCoreError) as exc:
                raise LogSourceError(f"{source}: the logs cannot be read ({exc})") from exc
            yield sorted(files)
        return
    folder = Path(source)
    if not folder.is_dir():
        raise LogSourceError(f"{source}: no such folder (or s3://bucket/prefix/)")
    yield sorted(p for p in folder.rglob("*.gz") if period.may_hold(p.name))


def write_memoria(
    source: str,
    period: Period,
    request: MemoriaInput,
    history: DifusorHistory | None,
    out_dir: Path,
    pdf: bool = True,
    database: Path | None = None,
) -> tuple[MemoriaFiles, dict[str, Any]]:
    """Build the memoria and write it to ``out_dir``; returns the files and the figures."""
    with log_files(source, period) as files:
        log = TrafficLog(files, period, database=database)
        try:
            data = build_memoria(log, history, request)
        finally:
            log.close()
    figures = figures_of(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure_dir = out_dir / "figuras"
    figure_dir.mkdir(exist_ok=True)
    figure_paths = []
    for name, svg in figures.items():
        path = figure_dir / name
        path.write_text(svg, encoding="utf-8")
        figure_paths.append(path)
    html = render_html(data, figures)
    html_path = out_dir / "memoria-tecnica.html"
    html_path.write_text(html, encoding="utf-8")
    json_path = out_dir / "memoria-tecnica.json"
    json_path.write_text(
        json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    pdf_path = None
    if pdf:
        try:
            weasyprint = _load_weasyprint()
        except OSError as exc:  # Pango or HarfBuzz not installed
            raise PdfUnavailable(
                f"{html_path} is written, but not the PDF: WeasyPrint needs Pango "
                "(apt install libpango-1.0-0 libpangoft2-1.0-0), or pass --sin-pdf"
                f" ({exc})"
            ) from exc
        pdf_path = out_dir / "memoria-tecnica.pdf"
        weasyprint.HTML(string=html, base_url=str(out_dir)).write_pdf(str(pdf_path))
    return MemoriaFiles(html_path, pdf_path, json_path, tuple(figure_paths)), data

"""The memoria's content and its page: criteria from thresholds, the ledger over the logs,
Spanish and Mexican formats, every file written."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from difusion import vocabulary
from difusion.cli import main
from difusion.memoria import command, spanish
from difusion.memoria.build import MemoriaInput, build_memoria
from difusion.memoria.command import LogSourceError, log_files, write_memoria
from difusion.memoria.criteria import Thresholds, criteria
from difusion.memoria.ledger_export import history_of
from difusion.memoria.render import figures_of, render_html
from difusion.memoria.traffic import TrafficLog
from difusion.records import DeliveryRecord, IncidentRecord
from tests.unit.test_memoria_traffic import PERIOD, logs  # noqa: F401 (a fixture)

GENERATED = datetime(2024, 6, 21, 10, 0)


def _figures(**key: object) -> dict:
    base = {"hits": 1000, "aborted": 0, "cache_hit_ratio": 0.9}
    return {
        "key": {**base, **key},
        "status_by_hour": [],
        "latency": {"time_taken_p95": 0.2},
        "not_found": [],
    }


def test_no_criterion_when_every_figure_is_within_its_threshold():
    assert criteria(_figures(), [], spanish.percent) == []


def test_each_threshold_crossed_is_a_criterion_with_its_figure():
    figures = _figures(aborted=30, cache_hit_ratio=0.5)
    figures["status_by_hour"] = [
        {"hour": "2024-06-02T21:00", "s2xx": 900, "s3xx": 0, "s4xx": 60, "s5xx": 40, "s000": 0},
        {"hour": "2024-06-02T22:00", "s2xx": 90, "s3xx": 0, "s4xx": 50, "s5xx": 0, "s000": 0},
    ]
    figures["latency"] = {"time_taken_p95": 1.75}
    figures["not_found"] = [{"path": "/resultados.html", "hits": 40}, {"path": "/x", "hits": 2}]
    incidents = [
        {
            "started_at": "2024-06-03T03:00:00+00:00",
            "ended_at": "2024-06-03T03:45:00+00:00",
            "cause": "unreachable",
        },
        {"started_at": "2024-06-03T04:00:00+00:00", "ended_at": "2024-06-03T04:10:00+00:00"},
    ]
    found = {c.code: c for c in criteria(figures, incidents, spanish.percent)}
    assert set(found) == {
        "errores-por-hora",
        "tiempo-de-respuesta",
        "caché",
        "abandonos",
        "no-encontrado",
        "incidentes",
    }
    # the quiet hour (140 requests) is not judged, the busy one is: 10 %
    assert found["errores-por-hora"].figure == "1 horas; la peor, 10.0 % (2024-06-02 a las 21:00)"
    assert found["tiempo-de-respuesta"].figure == "p95 de time-taken: 1.75 s"
    assert found["caché"].figure == "50.0 %"
    assert found["abandonos"].figure == "3.0 % de las solicitudes"
    assert "/resultados.html" in found["no-encontrado"].title
    assert found["incidentes"].figure == "1; el más largo, 45 min (sitio inaccesible)"
    # one never closed is the longest
    still_open = [*incidents, {"started_at": "2024-06-03T05:00:00+00:00", "cause": "stale"}]
    found = {c.code: c for c in criteria(figures, still_open, spanish.percent)}
    assert found["incidentes"].figure == "2; el más largo, sin cierre (copia desactualizada)"
    # thresholds are parameters
    assert criteria(figures, incidents, spanish.percent, Thresholds(cache_hit_ratio=0.4)) != []
    loose = Thresholds(1, 1, 10, 0, 1, 1, 600)
    assert criteria(figures, incidents, spanish.percent, loose) == []


def _history():
    return history_of(
        "uabcs",
        "DIP_LOC_BCS",
        datetime(2024, 6, 21, tzinfo=UTC),
        [
            DeliveryRecord(
                "20240601_2005_PREP",
                "uabcs",
                sequence=1,
                status="delivered",
                started_at="2024-06-02T03:04:00+00:00",
                finished_at="2024-06-02T03:05:00+00:00",
            ),
            DeliveryRecord(
                "20240601_2020_PREP",
                "uabcs",
                sequence=2,
                status="delivered",
                started_at="2024-06-02T03:19:00+00:00",
                finished_at="2024-06-02T03:20:00+00:00",
            ),
        ],
        [],
        # around the 404 at 03:00Z: the only request in its window is an error
        [
            IncidentRecord(
                "i1",
                "uabcs",
                "continuity",
                cause="unreachable",
                started_at="2024-06-02T02:55:00+00:00",
                ended_at="2024-06-02T03:10:00+00:00",
                actions=("transmission interrupted",),
                resolution="reinstated by UCSI: sitio restablecido",
            )
        ],
        [],
    )


def test_the_ledger_is_laid_over_the_logs(logs):  # noqa: F811
    data = build_memoria(
        TrafficLog(logs, PERIOD),
        _history(),
        MemoriaInput("uabcs", None, None, ("logs/",), GENERATED),
    )
    # election night from the first delivery: local 2024-06-01 20:04
    assert data["election_night"]["day"] == "2024-06-01"
    assert data["election_night"]["start"] == "2024-06-01T20:00"
    assert len(data["election_night"]["per_minute"]) == 360
    assert data["election"] == "DIP_LOC_BCS"
    assert data["deliveries"]["count"] == 2 and data["deliveries"]["longest_gap_minutes"] == 15
    [incident] = data["incidents"]
    assert incident["local_start"] == "2024-06-01T19:55" and incident["minutes"] == 15
    assert (incident["log_hits"], incident["log_errors"]) == (1, 1)
    assert incident["error_spike"]  # 100 % against the period's 30 %
    figures = figures_of(data)
    night = figures["noche-electoral.svg"]
    assert night.count("Entrega ") == 2 and "Incidente: sitio inaccesible" not in night  # 19:55
    assert set(figures) == {
        "por-dia.svg",
        "por-hora.svg",
        "noche-electoral.svg",
        "hora-del-dia.svg",
        "estados.svg",
    }


def test_the_page_is_in_spanish_with_mexican_formats_and_needs_nothing_else(logs):  # noqa: F811
    data = build_memoria(
        TrafficLog(logs, PERIOD),
        _history(),
        MemoriaInput(
            "uabcs", None, date(2024, 6, 1), ("logs/",), GENERATED, comments="Todo <bien>"
        ),
    )
    html = render_html(data, figures_of(data))
    assert html.startswith('<!DOCTYPE html><html lang="es-MX">')
    assert "del 1 al 2 de junio de 2024" in html
    assert "sábado 1 de junio de 2024" in html and "30.0 %" in html  # the error rate
    assert "best-effort" in html and "America/Mazatlan" in html
    assert "Glosario" in html and "Visitante único" in html
    assert "Todo &lt;bien&gt;" in html  # the difusor's words, escaped
    # the ledger's codes and notes in Spanish
    assert "sitio inaccesible" in html and "transmisión interrumpida" in html
    assert "reincorporado por la UCSI: sitio restablecido" in html
    # nothing fetched: no script, no link, no image, no font
    assert not any(tag in html for tag in ("<script", "<link", "<img", "src=", "url("))
    assert html.count("<svg") == 5


def test_every_file_is_written_and_the_json_holds_every_figure(logs, tmp_path: Path):  # noqa: F811
    source = logs[0].parent
    files, data = write_memoria(
        str(source),
        PERIOD,
        MemoriaInput("uabcs", "DIP_LOC_BCS", None, (str(source),), GENERATED),
        None,
        tmp_path / "out",
    )
    assert files.pdf is not None and files.pdf.read_bytes().startswith(b"%PDF")
    assert json.loads(files.json.read_text(encoding="utf-8"))["key"]["hits"] == 10
    assert sorted(p.name for p in files.figures) == sorted(figures_of(data))
    assert all(p.read_text(encoding="utf-8").startswith("<svg") for p in files.figures)
    assert "No se proporcionó el extracto" in files.html.read_text(encoding="utf-8")


def test_a_log_source_that_is_not_there_is_an_error(tmp_path: Path):
    with (
        pytest.raises(LogSourceError, match="no such folder"),
        log_files(str(tmp_path / "nada"), PERIOD),
    ):
        pass


def test_mexican_formats():
    assert spanish.number(1234567) == "1,234,567" and spanish.percent(0.8777) == "87.8 %"
    assert spanish.size(7_891_922_812) == "7.9 GB" and spanish.size(512) == "512 B"
    assert spanish.day(date(2024, 6, 2)) == "domingo 2 de junio de 2024"
    assert spanish.moment(datetime(2024, 6, 2, 20, 5)) == "2 de junio de 2024, 20:05"
    assert spanish.span(date(2024, 6, 1), date(2024, 6, 10)) == "del 1 al 10 de junio de 2024"
    assert (
        spanish.span(date(2024, 5, 28), date(2024, 6, 3)) == "del 28 de mayo al 3 de junio de 2024"
    )
    assert spanish.span(date(2024, 6, 2), date(2024, 6, 2)) == "del 2 de junio de 2024"


def test_the_ledgers_words_are_read_in_spanish_and_unknown_ones_as_written():
    assert vocabulary.kind("integrity") == "integridad"
    assert vocabulary.cause("stale") == "copia desactualizada"
    assert vocabulary.note("redelivery of 3 altered files requested") == (
        "se pidió reenviar 3 archivos alterados"
    )
    assert vocabulary.note("recovered: served the delivered snapshot") == (
        "recuperado: served the delivered snapshot"
    )
    assert vocabulary.note("something new") == "something new"
    assert vocabulary.note(None) == vocabulary.cause(None) == "—"


def test_without_weasyprints_libraries_the_rest_is_written_and_the_error_says_what_to_do(
    logs,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    def missing() -> None:
        raise OSError("cannot load library 'libpango-1.0-0'")

    monkeypatch.setattr(command, "_load_weasyprint", missing)
    out = tmp_path / "out"
    args = ["memoria", "--difusor", "uabcs", "--logs", str(logs[0].parent), "--out", str(out)]
    assert main([*args, "--desde", "2024-06-01", "--hasta", "2024-06-02"]) == 1
    assert "--sin-pdf" in capsys.readouterr().err
    assert (out / "memoria-tecnica.html").exists() and (out / "memoria-tecnica.json").exists()
    assert not (out / "memoria-tecnica.pdf").exists()
    # and --sin-pdf does not need them
    assert main([*args, "--desde", "2024-06-01", "--hasta", "2024-06-02", "--sin-pdf"]) == 0

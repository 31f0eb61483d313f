"""The memoria técnica as one self-contained HTML page, in Spanish, drawn from its JSON.

No script, no external file: styles and figures (SVG) are inline, so the page opens from a
disk, prints, and renders to PDF as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from html import escape
from typing import Any

from difusion import vocabulary
from difusion.memoria import spanish
from difusion.memoria.charts import Mark, Series, bar_chart, line_chart

CAVEAT = (
    "Las cifras provienen de los registros estándar de CloudFront de la distribución del "
    "sitio. CloudFront los entrega con el mejor esfuerzo (<i>best-effort</i>): algunas "
    "solicitudes pueden no registrarse, y algunos registros llegan hasta 24 horas después. "
    "Las horas de los registros están en UTC; aquí se muestran en la hora local de la "
    "elección ({zone})."
)

GLOSSARY = (
    ("Solicitud (hit)", "Cada solicitud registrada, de cualquier tipo y con cualquier respuesta."),
    (
        "Página",
        "Solicitud GET respondida con 200 o 304 cuyo contenido es HTML (por su tipo de "
        "contenido, o una ruta que termina en .html, .htm o /), hecha por un visitante que no "
        "es un robot.",
    ),
    (
        "Solicitud de datos",
        "Solicitud GET respondida con 200 o 304 de un archivo .json o .csv, sin robots; se "
        "cuenta aparte de las páginas.",
    ),
    (
        "Visita",
        "Las solicitudes de una misma dirección IP con un mismo agente de usuario, sin robots; "
        "una visita nueva empieza tras 30 minutos sin actividad.",
    ),
    (
        "Visitante único",
        "Una misma dirección IP, fecha local y agente de usuario, sin contar respuestas 4xx "
        "ni solicitudes abandonadas (000), como cuenta GoAccess; los robots se cuentan aparte.",
    ),
    (
        "Robot",
        "Agente de usuario reconocido por la lista mantenida crawler-user-agents, o vacío.",
    ),
    ("Error", "Respuesta con estado 400 o mayor."),
    ("Abandonada (000)", "El visitante cerró la conexión antes de recibir la respuesta."),
    (
        "Proporción de aciertos de caché",
        "Respuestas Hit entre Hit, RefreshHit y Miss (x-edge-response-result-type), como las "
        "cuenta CloudFront en sus estadísticas de caché: un RefreshHit consultó al origen; "
        "lo que respondió Origin Shield es un Miss en el borde y se cuenta aparte "
        "(OriginShieldHit).",
    ),
    (
        "time-taken / time-to-first-byte",
        "Segundos, medidos en el servidor de CloudFront, desde que recibe la solicitud hasta "
        "que escribe el último byte de la respuesta / el primero; el visitante percibe algo "
        "más. p50 y p95 son los percentiles 50 y 95.",
    ),
    (
        "Dirección IP",
        "La del campo c-ip: la del visitante o, si llega por un proxy, la del proxy; por eso "
        "una visita o un visitante único puede reunir a varias personas.",
    ),
)

STYLE = """
body{font-family:"DejaVu Sans",Arial,sans-serif;color:#1b1b1b;margin:2rem auto;max-width:60rem;
line-height:1.4;font-size:14px}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{border-bottom:2px solid #1f5f99;padding-bottom:.2rem;
margin-top:2.2rem;break-after:avoid}h3{margin-bottom:.3rem}
.sub{color:#555}.caveat{background:#fff7e0;border-left:4px solid #d68910;padding:.6rem .9rem}
.cards{display:flex;flex-wrap:wrap;gap:.6rem}.card{border:1px solid #ccd;border-radius:6px;
padding:.5rem .8rem;min-width:9rem}.card b{display:block;font-size:1.3rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
svg{max-width:100%;height:auto;display:block;margin:.5rem 0}
.criterion{border-left:4px solid #1f5f99;padding:.2rem .8rem;margin:.6rem 0}
.spike{color:#c0392b;font-weight:bold}
.comments{white-space:pre-wrap;border:1px dashed #999;padding:.8rem}
section{break-inside:auto}
@page{size:letter;margin:1.6cm}
"""


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()
) -> str:
    head = "".join(
        f'<th class="n">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{escape(str(v))}</td>' if i in numeric else f"<td>{escape(str(v))}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    if not body:
        return '<p class="sub">Sin datos en el periodo.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{spanish.number(round(value, 3))} s"


def _moment(iso: str | None) -> str:
    return "—" if not iso else spanish.moment(datetime.fromisoformat(iso))


def _cards(data: dict[str, Any]) -> str:
    key = data["key"]
    ratio = key["cache_hit_ratio"]
    cards = [
        ("Solicitudes (hits)", spanish.number(key["hits"])),
        ("Páginas", spanish.number(key["pages"])),
        ("Solicitudes de datos", spanish.number(key["data_requests"])),
        ("Visitas", spanish.number(key["visits"])),
        ("Visitantes únicos", spanish.number(key["unique_visitors"])),
        ("Datos enviados", spanish.size(key["bytes"])),
        ("Tasa de errores", spanish.percent(key["error_rate"])),
        ("Aciertos de caché", "—" if ratio is None else spanish.percent(ratio)),
        ("Respondidas por Origin Shield", spanish.number(key["origin_shield_hits"])),
        (
            "Minuto pico",
            f"{spanish.number(key['peak_minute_hits'])} — {_moment(key['peak_minute'])}",
        ),
        ("Hora pico", f"{spanish.number(key['peak_hour_hits'])} — {_moment(key['peak_hour'])}"),
        ("Solicitudes de robots", spanish.number(key["robot_hits"])),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card">{escape(label)}<b>{escape(value)}</b></div>'
            for label, value in cards
        )
        + "</div>"
    )


def figures_of(data: dict[str, Any]) -> dict[str, str]:
    """Every figure of the memoria, as SVG, by file name."""
    days = data["per_day"]
    hours = data["per_hour"]
    night = data["election_night"]
    minutes = night["per_minute"]
    start = datetime.fromisoformat(night["start"])
    length = (datetime.fromisoformat(night["end"]) - start).total_seconds()
    marks = [
        Mark(
            (datetime.fromisoformat(d["local_finished"]) - start).total_seconds() / 60,
            "entrega",
            f"Entrega {d['sequence']}: {d['snapshot_id']}",
        )
        for d in data["deliveries"]["items"]
        if d["local_finished"]
        and 0 <= (datetime.fromisoformat(d["local_finished"]) - start).total_seconds() < length
    ] + [
        Mark(
            (datetime.fromisoformat(i["local_start"]) - start).total_seconds() / 60,
            "incidente",
            f"Incidente: {vocabulary.cause(i.get('cause'))}",
        )
        for i in data["incidents"]
        if 0 <= (datetime.fromisoformat(i["local_start"]) - start).total_seconds() < length
    ]
    return {
        "por-dia.svg": bar_chart(
            "Solicitudes y páginas por día",
            [spanish.short_day(date.fromisoformat(d["day"])) for d in days],
            [
                Series("Solicitudes", [d["hits"] for d in days]),
                Series("Páginas", [d["pages"] for d in days]),
            ],
            spanish.number,
        ),
        "por-hora.svg": line_chart(
            "Solicitudes por hora en todo el periodo",
            [h["hour"][5:10] + " " + h["hour"][11:13] + "h" for h in hours],
            [Series("Solicitudes", [h["hits"] for h in hours])],
            spanish.number,
        ),
        "noche-electoral.svg": line_chart(
            f"Noche de la elección, por minuto ({night['start'][11:16]} a {night['end'][11:16]})",
            [m["minute"][11:16] for m in minutes],
            [
                Series("Solicitudes", [m["hits"] for m in minutes]),
                Series("Errores y abandonos", [m["errors"] for m in minutes]),
            ],
            spanish.number,
            marks,
        ),
        "hora-del-dia.svg": bar_chart(
            "Solicitudes por hora del día (todo el periodo)",
            [f"{h['hour']:02d}" for h in data["hour_of_day"]],
            [Series("Solicitudes", [h["hits"] for h in data["hour_of_day"]])],
            spanish.number,
        ),
        "estados.svg": line_chart(
            "Respuestas por clase de estado, por hora",
            [h["hour"][5:10] + " " + h["hour"][11:13] + "h" for h in data["status_by_hour"]],
            [
                Series(label, [h[column] for h in data["status_by_hour"]])
                for label, column in (
                    ("2xx", "s2xx"),
                    ("3xx", "s3xx"),
                    ("4xx", "s4xx"),
                    ("5xx", "s5xx"),
                    ("000 abandonadas", "s000"),
                )
            ],
            spanish.number,
        ),
    }


def _incidents(data: dict[str, Any]) -> str:
    if not data["ledger"]:
        return (
            '<p class="sub">No se proporcionó el extracto de la bitácora del Instituto '
            "(<code>difusion ledger export</code>): esta sección queda sin datos.</p>"
        )
    deliveries = data["deliveries"]
    gap = deliveries["longest_gap_minutes"]
    summary = (
        f"<p>El Instituto registró {spanish.number(deliveries['count'])} entregas a este sitio "
        f"({spanish.number(deliveries.get('delivered', 0))} completas); la primera terminó el "
        f"{escape(_moment(deliveries.get('first')))} y la última el "
        f"{escape(_moment(deliveries.get('last')))}"
        + (
            f"; el mayor intervalo entre dos entregas fue de {spanish.number(gap)} min"
            if gap
            else ""
        )
        + ".</p>"
    )
    rows = [
        (
            "Sitio del difusor" if i["scope"] == "sitio" else "Origen (Instituto)",
            _moment(i["local_start"]),
            _moment(i["local_end"]) if i["local_end"] else "sin cierre",
            "—" if i["minutes"] is None else spanish.number(i["minutes"]),
            vocabulary.kind(i.get("incident_kind")),
            vocabulary.cause(i.get("cause")),
            "; ".join(vocabulary.note(a) for a in i.get("actions") or []) or "—",
            vocabulary.note(i.get("resolution")),
            f"{spanish.percent(i['log_error_rate'])} de {spanish.number(i['log_hits'])}"
            + (" (pico)" if i["error_spike"] else ""),
        )
        for i in data["incidents"]
    ]
    table = _table(
        (
            "Ámbito",
            "Inicio",
            "Fin",
            "Minutos",
            "Tipo",
            "Causa",
            "Acciones",
            "Resolución",
            "Errores en los registros",
        ),
        rows,
        numeric=(3,),
    )
    uncovered = data["errors_without_incident"]
    extra = ""
    if uncovered:
        extra = "<h3>Horas con errores sin incidente registrado</h3>" + _table(
            ("Hora", "Solicitudes", "Tasa de errores"),
            [
                (_moment(u["hour"]), spanish.number(u["hits"]), spanish.percent(u["error_rate"]))
                for u in uncovered
            ],
            numeric=(1, 2),
        )
    return summary + (table if rows else "<p>No hubo incidentes registrados.</p>") + extra


def render_html(data: dict[str, Any], figures: dict[str, str]) -> str:
    period = data["period"]
    first, last = date.fromisoformat(period["first_day"]), date.fromisoformat(period["last_day"])
    key = data["key"]
    latency = data["latency"]
    agents = data["agents"]
    night = data["election_night"]
    sections = [
        f"<h1>Memoria técnica del difusor oficial {escape(data['difusor_id'])}</h1>"
        f'<p class="sub">Elección {escape(data["election"] or "—")} · periodo '
        f"{escape(spanish.span(first, last))} · generada el "
        f"{escape(_moment(data['generated_at'][:16]))}</p>",
        f'<p class="caveat">{CAVEAT.format(zone=escape(period["time_zone"]))} Se leyeron '
        f"{spanish.number(data['lines_read'])} líneas de {spanish.number(data['log_files'])} "
        f"archivos; {spanish.number(key['malformed_lines'])} líneas no tenían el formato de "
        "CloudFront y no se contaron.</p>",
        "<h2>1. Cifras del periodo</h2>" + _cards(data),
        "<h2>2. Por día</h2>"
        + figures["por-dia.svg"]
        + _table(
            ("Día", "Solicitudes", "Páginas", "Datos", "Visitas", "Visitantes únicos", "Enviado"),
            [
                (
                    spanish.day(date.fromisoformat(d["day"])),
                    spanish.number(d["hits"]),
                    spanish.number(d["pages"]),
                    spanish.number(d["data_requests"]),
                    spanish.number(d["visits"]),
                    spanish.number(d["unique_visitors"]),
                    spanish.size(d["bytes"]),
                )
                for d in data["per_day"]
            ],
            numeric=(1, 2, 3, 4, 5, 6),
        ),
        "<h2>3. Por hora y la noche de la elección</h2>"
        + figures["por-hora.svg"]
        + "<p>Detalle por minuto de la noche del "
        + escape(spanish.day(date.fromisoformat(night["day"])))
        + ", "
        "con las entregas del Instituto (líneas punteadas verdes) y los incidentes del sitio "
        "(líneas rojas):</p>" + figures["noche-electoral.svg"] + figures["hora-del-dia.svg"],
        "<h2>4. Páginas y archivos de datos más solicitados</h2>"
        + _table(
            ("Página", "Solicitudes", "Enviado"),
            [
                (p["path"], spanish.number(p["hits"]), spanish.size(p["bytes"]))
                for p in data["top_pages"]
            ],
            numeric=(1, 2),
        )
        + _table(
            ("Archivo de datos", "Solicitudes", "Enviado"),
            [
                (p["path"], spanish.number(p["hits"]), spanish.size(p["bytes"]))
                for p in data["top_data"]
            ],
            numeric=(1, 2),
        ),
        "<h2>5. Respuestas</h2>"
        + figures["estados.svg"]
        + "<h3>Rutas no encontradas (404) más solicitadas</h3>"
        + _table(
            ("Ruta", "Solicitudes"),
            [(p["path"], spanish.number(p["hits"])) for p in data["not_found"]],
            numeric=(1,),
        ),
        "<h2>6. Caché y tiempos de respuesta</h2>"
        + f"<p>En todo el periodo: time-taken p50 {_seconds(latency['time_taken_p50'])}, p95 "
        f"{_seconds(latency['time_taken_p95'])}; time-to-first-byte p50 "
        f"{_seconds(latency['ttfb_p50'])}, p95 {_seconds(latency['ttfb_p95'])}.</p>"
        + _table(
            (
                "Resultado en el borde",
                "Solicitudes",
                "Proporción",
                "time-taken p50",
                "p95",
                "primer byte p50",
                "p95",
            ),
            [
                (
                    r["result"] or "—",
                    spanish.number(r["hits"]),
                    spanish.percent(r["share"]),
                    _seconds(r["time_taken_p50"]),
                    _seconds(r["time_taken_p95"]),
                    _seconds(r["ttfb_p50"]),
                    _seconds(r["ttfb_p95"]),
                )
                for r in data["result_types"]
            ],
            numeric=(1, 2, 3, 4, 5, 6),
        )
        + "<h3>Detalle del resultado (x-edge-detailed-result-type)</h3>"
        + _table(
            ("Detalle", "Solicitudes"),
            [(r["detailed"], spanish.number(r["hits"])) for r in data["detailed_results"]],
            numeric=(1,),
        )
        + "<h3>Ubicaciones de borde</h3>"
        + _table(
            ("Ubicación (código IATA)", "Solicitudes", "Proporción"),
            [
                (e["location"], spanish.number(e["hits"]), spanish.percent(e["share"]))
                for e in data["edge_locations"]
            ],
            numeric=(1, 2),
        ),
        "<h2>7. Visitantes</h2>"
        + "".join(
            f"<h3>{title}</h3>"
            + _table(
                (column, "Solicitudes"),
                [(a["name"], spanish.number(a["hits"])) for a in agents[panel]],
                numeric=(1,),
            )
            for title, column, panel in (
                ("Navegadores", "Navegador", "browsers"),
                ("Sistemas operativos", "Sistema", "systems"),
                ("Dispositivos", "Dispositivo", "devices"),
            )
        )
        + "<h3>Sitios de referencia</h3>"
        + _table(
            ("Sitio", "Solicitudes"),
            [(r["host"], spanish.number(r["hits"])) for r in data["referrers"]],
            numeric=(1,),
        )
        + "<h3>Robots (contados aparte)</h3>"
        + _table(
            ("Agente de usuario", "Solicitudes"),
            [(r["agent"], spanish.number(r["hits"])) for r in data["robots"]],
            numeric=(1,),
        ),
        "<h2>8. Incidencias durante la operación</h2>" + _incidents(data),
        "<h2>9. Criterios de mejora</h2>"
        + (
            "".join(
                f'<div class="criterion"><b>{escape(c["title"])}</b><br>'
                f"Cifra: {escape(c['figure'])}"
                f" · umbral: {escape(c['threshold'])}<br>{escape(c['text'])}</div>"
                for c in data["criteria"]
            )
            or "<p>Ninguna cifra del periodo cruzó los umbrales de revisión.</p>"
        )
        + "<h3>Comentarios y sugerencias del difusor</h3>"
        + (
            f'<div class="comments">{escape(data["comments"])}</div>'
            if data["comments"]
            else '<p class="sub">(Sección para los comentarios del difusor: '
            "<code>--comentarios ARCHIVO</code>.)</p>"
        ),
        "<h2>Glosario</h2><dl>"
        + "".join(f"<dt><b>{escape(t)}</b></dt><dd>{escape(d)}</dd>" for t, d in GLOSSARY)
        + "</dl>",
    ]
    return (
        '<!DOCTYPE html><html lang="es-MX"><head><meta charset="utf-8">'
        f"<title>Memoria técnica — {escape(data['difusor_id'])}</title>"
        f"<style>{STYLE}</style></head><body>"
        + "".join(f"<section>{s}</section>" for s in sections)
        + "</body></html>"
    )

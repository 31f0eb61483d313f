"""What the public reads when a difusor is suspended: the notice on its portal and the
institute's list of difusores with its link disabled. Public text, so in Spanish."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from difusion.models import Difusor, DifusorStatus
from difusion.publication import WELL_KNOWN
from difusion.times import parse_iso

NOTICE_PAGE = "index.html"
STATUS_PATH = WELL_KNOWN + "estado.json"
LIST_JSON = "difusores.json"
LIST_HTML = "difusores.html"

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;"
    "color:#1b1b1b;line-height:1.5}h1{font-size:1.6rem}"
    ".aviso{border-left:6px solid #b00020;background:#fdecee;padding:1rem 1.25rem}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;"
    "padding:.5rem;text-align:left}.suspendido{color:#777}"
)


def local_time(moment: str | datetime, time_zone: str) -> str:
    """``2024-06-02T21:15:00-07:00`` → ``02/06/2024 21:15 (hora local)``."""
    at = parse_iso(moment) if isinstance(moment, str) else moment
    return at.astimezone(ZoneInfo(time_zone)).strftime("%d/%m/%Y %H:%M") + " (hora local)"


def suspension_notice(
    difusor: Difusor, institute: str, list_url: str, since: datetime, time_zone: str
) -> dict[str, tuple[bytes, str]]:
    """The objects that replace a suspended difusor's results: path → (body, content type)."""
    name = html.escape(difusor.name)
    page = f"""<!doctype html>
<html lang="es"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PREP — Transmisión interrumpida</title><style>{_STYLE}</style></head>
<body><main>
<h1>Programa de Resultados Electorales Preliminares</h1>
<div class="aviso" role="alert">
<p><strong>Aviso:</strong> la transmisión del PREP en este sitio ({name}) fue interrumpida
el {html.escape(local_time(since, time_zone))}, porque el sitio no estuvo disponible o no
publicó la información vigente durante tres periodos de actualización consecutivos.</p>
<p>Los resultados que aquí se mostraban no están vigentes. Consulte los resultados
preliminares en el portal de {html.escape(institute)} o en otro difusor oficial:
<a href="{html.escape(list_url)}">lista de difusores oficiales</a>.</p>
</div>
</main></body></html>
"""
    status = {
        "estado": "suspendido",
        "difusor": difusor.difusor_id,
        "desde": since.isoformat(),
        "motivo": "tres periodos de actualización consecutivos con falla",
        "lista_de_difusores": list_url,
    }
    return {
        NOTICE_PAGE: (page.encode("utf-8"), "text/html; charset=utf-8"),
        STATUS_PATH: (
            json.dumps(status, ensure_ascii=False, indent=2).encode("utf-8"),
            "application/json",
        ),
    }


def difusores_list(
    difusores: Sequence[Difusor], institute: str, updated_at: datetime, time_zone: str
) -> dict[str, tuple[bytes, str]]:
    """The institute's public list of difusores oficiales; a suspended one has no link."""
    entries = [
        {
            "difusor": d.difusor_id,
            "nombre": d.name,
            "url": d.public_url,
            "estado": "activo" if d.status is DifusorStatus.ACTIVE else "suspendido",
            **({"desde": d.status_since} if d.status is not DifusorStatus.ACTIVE else {}),
        }
        for d in difusores
        if d.status is not DifusorStatus.RETIRED
    ]
    rows = []
    for d in difusores:
        if d.status is DifusorStatus.RETIRED:
            continue
        name = html.escape(d.name)
        if d.status is DifusorStatus.ACTIVE:
            cell = f'<a href="{html.escape(d.public_url)}">{name}</a>'
            state = "Activo"
        else:
            cell = f'<span class="suspendido" aria-disabled="true">{name}</span>'
            since = local_time(d.status_since, time_zone) if d.status_since else ""
            state = f"Transmisión interrumpida {html.escape(since)}"
        rows.append(f"<tr><td>{cell}</td><td>{state}</td></tr>")
    page = f"""<!doctype html>
<html lang="es"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PREP — Difusores oficiales</title><style>{_STYLE}</style></head>
<body><main>
<h1>Difusores oficiales del PREP</h1>
<p>{html.escape(institute)}. Actualizado el {html.escape(local_time(updated_at, time_zone))}.</p>
<table><thead><tr><th>Difusor</th><th>Estado</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</main></body></html>
"""
    document = {"actualizado": updated_at.isoformat(), "difusores": entries}
    return {
        LIST_JSON: (
            json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8"),
            "application/json",
        ),
        LIST_HTML: (page.encode("utf-8"), "text/html; charset=utf-8"),
    }

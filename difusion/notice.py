"""What the public reads about the difusores: the notice on a suspended difusor's portal, and
the institute's public board (the list of difusores, with each one's last check and the
institute's latest signed snapshot). Public text, so in Spanish."""

from __future__ import annotations

import html
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from difusion import vocabulary
from difusion.models import Difusor, DifusorStatus, Head
from difusion.publication import WELL_KNOWN
from difusion.records import CheckRecord
from difusion.times import parse_iso

NOTICE_PAGE = "index.html"
STATUS_PATH = WELL_KNOWN + "estado.json"
LIST_JSON = "difusores.json"
LIST_HTML = "difusores.html"
VERIFIER_PAGE = "verificador.html"  # the institute's verifier, beside the list
PUBLIC_KEY_FILE = "prep.pub"  # the institute's key, also on its portal

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;"
    "color:#1b1b1b;line-height:1.5}h1{font-size:1.6rem}"
    ".aviso{border-left:6px solid #b00020;background:#fdecee;padding:1rem 1.25rem}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;"
    "padding:.5rem;text-align:left}.suspendido{color:#777}code{font-size:.8rem;word-break:break-all}"
    "[data-resultado=verificado]{color:#1b7f3b;font-weight:600}"
    ".revision:not([data-resultado=verificado]){color:#b00020;font-weight:600}"
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
    difusores: Sequence[Difusor],
    institute: str,
    updated_at: datetime,
    time_zone: str,
    *,
    checks: Mapping[str, CheckRecord] | None = None,
    head: Head | None = None,
) -> dict[str, tuple[bytes, str]]:
    """The institute's public board of difusores oficiales: each one's state (a suspended one
    has no link), the monitor's last check of its site, and the institute's latest signed
    snapshot, so anyone can compare what a difusor serves with what the institute signed."""
    checks = checks or {}
    listed = [d for d in difusores if d.status is not DifusorStatus.RETIRED]
    entries = []
    rows = []
    for d in listed:
        active = d.status is DifusorStatus.ACTIVE
        check = checks.get(d.difusor_id)
        verify = f"{VERIFIER_PAGE}?difusor={urllib.parse.quote(d.difusor_id)}"
        entries.append(
            {
                "difusor": d.difusor_id,
                "nombre": d.name,
                "url": d.public_url,
                "estado": "activo" if active else "suspendido",
                **({"desde": d.status_since} if not active else {}),
                "ultima_revision": _check_json(check, head),
                "verificar": verify,
            }
        )
        name = html.escape(d.name)
        if active:
            cell = f'<a href="{html.escape(d.public_url)}">{name}</a>'
            state = "Activo"
        else:
            cell = f'<span class="suspendido" aria-disabled="true">{name}</span>'
            since = local_time(d.status_since, time_zone) if d.status_since else ""
            state = f"Transmisión interrumpida {html.escape(since)}"
        rows.append(
            f'<tr data-difusor="{html.escape(d.difusor_id)}"><td>{cell}</td><td>{state}</td>'
            f"<td>{_check_html(check, head, time_zone)}</td>"
            f'<td><a href="{html.escape(verify)}">Verificar</a></td></tr>'
        )
    latest = (
        f"secuencia {head.sequence}, corte {html.escape(head.snapshot_id)}, hora de corte "
        f"{html.escape(local_time(head.cut_time, time_zone))}; huella SHA-256 del "
        f"manifiesto <code>{html.escape(head.manifest_sha256)}</code>"
        if head is not None
        else "todavía ninguno"
    )
    page = f"""<!doctype html>
<html lang="es"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PREP — Difusores oficiales</title><style>{_STYLE}</style></head>
<body><main>
<h1>Difusores oficiales del PREP</h1>
<p>{html.escape(institute)}. Actualizado el {html.escape(local_time(updated_at, time_zone))}.</p>
<p id="ultimo-corte"><strong>Último corte firmado por el Instituto:</strong> {latest}.</p>
<p>El Instituto revisa cada sitio en cada periodo de actualización: la firma, el manifiesto
y una muestra de archivos. Cualquier persona puede verificar un sitio completo, con cada acta,
en el <a href="{VERIFIER_PAGE}">verificador del Instituto</a>.</p>
<table><thead><tr><th>Difusor</th><th>Estado</th><th>Última revisión del Instituto</th>
<th></th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</main></body></html>
"""
    document = {
        "actualizado": updated_at.isoformat(),
        "instituto": None
        if head is None
        else {
            "secuencia": head.sequence,
            "corte": head.snapshot_id,
            "hora_de_corte": head.cut_time,
            "huella_manifiesto": head.manifest_sha256,
        },
        "verificador": VERIFIER_PAGE,
        "difusores": entries,
    }
    return {
        LIST_JSON: (
            json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8"),
            "application/json",
        ),
        LIST_HTML: (page.encode("utf-8"), "text/html; charset=utf-8"),
    }


def _check_json(check: CheckRecord | None, head: Head | None) -> dict[str, Any] | None:
    if check is None:
        return None
    code, sentence = vocabulary.outcome(check.outcome)
    return {
        "hora": check.checked_at,
        "periodo": check.period,
        "resultado": code,
        "descripcion": sentence,
        "corte_servido": check.served_snapshot_id or None,
        "secuencia_servida": check.served_sequence,
        "version_del_sitio": check.served_version,
        "archivos_revisados": check.files_checked,
        "es_el_ultimo_corte": None
        if head is None or check.served_sequence is None
        else check.served_sequence == head.sequence,
    }


def _check_html(check: CheckRecord | None, head: Head | None, time_zone: str) -> str:
    if check is None:
        return "Sin revisión todavía"
    code, sentence = vocabulary.outcome(check.outcome)
    at = local_time(check.checked_at, time_zone) if check.checked_at else ""
    label = "Verificado" if code == "verificado" else "No verificado"
    served = ""
    if check.served_snapshot_id:
        served = (
            f"; publica el corte {html.escape(check.served_snapshot_id)} "
            f"(secuencia {check.served_sequence})"
        )
        if head is not None and check.served_sequence is not None:
            served += "" if check.served_sequence == head.sequence else ", no el último"
    files = (
        f"; {check.files_checked:,} archivos revisados"
        if code == "verificado" and check.files_checked
        else ""
    )
    return (
        f'<span class="revision" data-resultado="{html.escape(code)}">{label}</span> '
        f"{html.escape(at)}: {html.escape(sentence)}{served}{files}"
    )

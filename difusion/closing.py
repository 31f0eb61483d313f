"""The closing record: the facts the *acta circunstanciada* of the night needs (RE art. 353).

Built from the ledger alone, once the window has closed and its grace period has passed:
when the window opened and closed, every snapshot published with its cut time and manifest
hash, the final snapshot, and per difusor its deliveries and incidents. Rendered as JSON for
machines and as an HTML page, in Spanish, for the people who sign the acta.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from difusion import vocabulary
from difusion.notice import local_time
from difusion.records import (
    CheckRecord,
    DeliveryRecord,
    IncidentRecord,
    RejectionRecord,
    SnapshotRecord,
    all_rejections,
)
from difusion.times import parse_iso, parse_iso_or_none
from difusion.window import PublicationWindow, WindowRecord

FORMAT = "difusion-closing-record/1"


_at = parse_iso_or_none


def _sequence(snapshot: SnapshotRecord) -> int:
    """An accepted snapshot's place in the chain (accepting one gives it its sequence)."""
    if snapshot.sequence is None:
        raise ValueError(f"accepted snapshot {snapshot.snapshot_id} has no sequence")
    return snapshot.sequence


def final_snapshot(snapshots: Sequence[SnapshotRecord], closing: datetime) -> SnapshotRecord | None:
    """The newest accepted snapshot cut at or before the close: the final publication."""
    candidates = [
        s for s in snapshots if s.accepted and s.cut_time and parse_iso(s.cut_time) <= closing
    ]
    return max(candidates, key=_sequence, default=None)


def retained_package(
    final: SnapshotRecord, snapshots: Sequence[SnapshotRecord]
) -> tuple[str, str] | None:
    """The package (key, version) whose files the final publication publishes, if any: a
    withdrawal entry has none of its own, it publishes the one of the sequence it restores."""
    entry: SnapshotRecord | None = final
    if final.withdraws:
        restores = final.restores_sequence or 0
        entry = next((s for s in snapshots if s.sequence == restores), None)
    if entry is None or not entry.object_key:
        return None
    return entry.object_key, entry.object_version or ""


def build_closing_record(
    *,
    election: str,
    time_zone: str,
    window: PublicationWindow,
    record: WindowRecord,
    snapshots: Sequence[SnapshotRecord],
    refused_reuploads: Sequence[RejectionRecord] = (),
    deliveries: Sequence[DeliveryRecord],
    incidents: Sequence[IncidentRecord],
    checks: Sequence[CheckRecord],
    upstream_incidents: Sequence[IncidentRecord] = (),
    difusores: Sequence[dict[str, Any]],
    retained: Sequence[dict[str, Any]],
    generated_at: datetime,
) -> dict[str, Any]:
    """The closing record of ``election``, from the ledger's records. Its rejections are
    the rejected snapshots, then the ``refused_reuploads`` of accepted ones."""
    closing = window.closing_for(record)
    opened = record.opened_at or window.opening
    delivered = [d for d in deliveries if d.delivered]
    first_published: dict[str, str] = {}
    for d in sorted(delivered, key=lambda d: d.finished_at or ""):
        first_published.setdefault(d.snapshot_id, d.finished_at or "")
    accepted = sorted((s for s in snapshots if s.accepted), key=_sequence)
    published = [
        {
            "sequence": _sequence(s),
            "snapshot_id": s.snapshot_id,
            "cut_time": s.cut_time,
            "manifest_sha256": s.manifest_sha256,
            "package_sha256": s.package_sha256,
            "files": s.file_count,
            "accepted_at": s.accepted_at,
            "first_published_at": first_published.get(s.snapshot_id),
            # a withdrawn snapshot, and the signed entry that withdrew it
            "withdrawn_by_sequence": s.withdrawn_by_sequence,
            "withdraws": s.withdraws,
            "withdrawal_reason": s.withdrawal_reason,
        }
        for s in accepted
    ]
    final = final_snapshot(snapshots, closing)
    cut_times = {s.snapshot_id: _at(s.cut_time) for s in snapshots}
    # Judged as replicate's gate judged it, at the start of the attempt that published it;
    # one that started within the grace and ended after it is inside (window.py says why).
    outside = [
        d
        for d in delivered
        if (start := _at(d.attempt_started_at or d.started_at)) is not None
        and not window.admitted(cut_times.get(d.snapshot_id) or start, start, record)
    ]
    per_difusor = []
    for difusor in difusores:
        did = difusor["difusor_id"]
        mine = [c for c in checks if c.difusor_id == did]
        per_difusor.append(
            {
                "difusor_id": did,
                "name": difusor.get("name", ""),
                "public_url": difusor.get("public_url", ""),
                "status_at_close": difusor.get("status"),
                "status_reason": difusor.get("status_reason") or None,
                "deliveries": [
                    {
                        "snapshot_id": d.snapshot_id,
                        "sequence": d.sequence,
                        # early records lack reason and scope: first deliveries, deltas
                        "reason": "accepted" if d.reason is None else d.reason,
                        "scope": "delta" if d.delivery_scope is None else d.delivery_scope,
                        "status": d.status,
                        "started_at": d.started_at,
                        "finished_at": d.finished_at,
                        "objects_copied": d.objects_copied,
                        "detail": d.detail or d.last_error,
                    }
                    for d in sorted(
                        (d for d in deliveries if d.difusor_id == did),
                        key=lambda d: (d.sequence or 0, d.reason or ""),
                    )
                ],
                "checks": {
                    "periods": len(mine),
                    "ok": sum(1 for c in mine if c.outcome == "ok"),
                    "failed": sum(1 for c in mine if c.outcome not in ("ok", "updating")),
                    # checked while a delivery wrote to the site: counted neither way
                    "updating": sum(1 for c in mine if c.outcome == "updating"),
                },
                "incidents": [_incident(i) for i in incidents if i.difusor_id == did],
            }
        )
    return {
        "format": FORMAT,
        "election": election,
        "time_zone": time_zone,
        "window": {
            "configured_opening": window.opening.isoformat(),
            "configured_closing": window.closing.isoformat(),
            "grace_seconds": int(window.grace.total_seconds()),
            "opened_at": opened.isoformat(),
            "closed_at": closing.isoformat(),
            "closed_early": record.closed_early,
            "close_reason": record.close_reason or None,
        },
        "snapshots_published": published,
        "final_snapshot": None
        if final is None
        else {
            "sequence": _sequence(final),
            "snapshot_id": final.snapshot_id,
            "cut_time": final.cut_time,
            "manifest_sha256": final.manifest_sha256,
            "manifest_key": final.manifest_key,
        },
        "rejections": [
            {
                "snapshot_id": r.snapshot_id,
                "code": r.rejection_code,
                "reason": r.rejection_reason,
                "at": r.rejected_at,
            }
            for r in all_rejections(snapshots, refused_reuploads)
        ],
        "difusores": per_difusor,
        "upstream_incidents": [_incident(i) for i in upstream_incidents],
        "deliveries_outside_window": [
            {"difusor_id": d.difusor_id, "snapshot_id": d.snapshot_id} for d in outside
        ],
        "retained_in_origin": list(retained),
        "generated_at": generated_at.isoformat(),
    }


def _incident(incident: IncidentRecord) -> dict[str, Any]:
    return {
        "incident_id": incident.incident_id,
        "kind": incident.incident_kind,
        "cause": incident.cause,
        "detail": incident.detail,
        "started_at": incident.started_at,
        "ended_at": incident.ended_at,
        "periods_failed": incident.periods_failed,
        "causes": list(incident.causes),
        "actions": list(incident.actions),
        "resolution": incident.resolution,
    }


def closing_record_json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, indent=2, sort_keys=False).encode("utf-8")


_STATUS_ES = {
    "delivered": "entregado",
    "held": "retenido hasta la apertura",
    "refused": "rechazado (fuera del periodo)",
    "skipped": "omitido (difusor suspendido)",
    "superseded": "sustituido por uno más reciente",
    "failed": "fallido",
    "retrying": "reintentando",
    "in_progress": "en curso",
}


def render_closing_record_html(record: dict[str, Any]) -> str:
    """The closing record as a page a person reads and signs (public text: Spanish)."""
    tz = record["time_zone"]
    window = record["window"]

    def t(value: Any) -> str:
        return html.escape(local_time(str(value), tz)) if value else "—"

    def e(value: Any) -> str:
        return html.escape("" if value is None else str(value))

    def note(s: dict[str, Any]) -> str:
        if s.get("withdraws"):
            return f" (retiro de {e(s['withdraws'])}: {e(s.get('withdrawal_reason'))})"
        if s.get("withdrawn_by_sequence"):
            return f" (retirado por el #{e(s['withdrawn_by_sequence'])})"
        return ""

    rows = "\n".join(
        f"<tr><td>{s['sequence']}</td><td>{e(s['snapshot_id'])}{note(s)}</td>"
        f"<td>{t(s['cut_time'])}</td><td>{t(s['first_published_at'])}</td>"
        f"<td><code>{e(s['manifest_sha256'])}</code></td></tr>"
        for s in record["snapshots_published"]
    )
    final = record["final_snapshot"]
    final_text = (
        f"{e(final['snapshot_id'])} (corte {t(final['cut_time'])}), manifiesto "
        f"<code>{e(final['manifest_sha256'])}</code>"
        if final
        else "ninguno"
    )
    sections = []
    for d in record["difusores"]:
        deliveries = "\n".join(
            f"<tr><td>{e(x['snapshot_id'])}</td><td>{e(vocabulary.reason(x['reason']))}</td>"
            f"<td>{e(_STATUS_ES.get(str(x['status']), x['status']))}</td>"
            f"<td>{t(x['finished_at'])}</td></tr>"
            for x in d["deliveries"]
        )
        incidents = (
            "\n".join(
                f"<li>{e(vocabulary.kind(i['kind']))}: {e(vocabulary.cause(i['cause']))} — "
                f"inicio {t(i['started_at'])}, fin {t(i['ended_at'])}, periodos con falla "
                f"{e(i['periods_failed'])}; acciones: "
                f"{e('; '.join(vocabulary.note(a) for a in i['actions']) or 'ninguna')}; "
                f"resolución: {e(vocabulary.note(i['resolution']))}</li>"
                for i in d["incidents"]
            )
            or "<li>Sin incidentes.</li>"
        )
        sections.append(
            f"<h3>{e(d['name'])} ({e(d['difusor_id'])})</h3>"
            f"<p>Estado al cierre: {e(vocabulary.status(d['status_at_close']))}. "
            "Verificaciones de continuidad: "
            f"{d['checks']['periods']} ({d['checks']['ok']} correctas, "
            f"{d['checks']['failed']} con falla"
            + (
                f", {d['checks']['updating']} durante una actualización"
                if d["checks"].get("updating")
                else ""
            )
            + ").</p>"
            f"<table><thead><tr><th>Corte</th><th>Motivo</th><th>Resultado</th>"
            f"<th>Publicado</th></tr></thead><tbody>{deliveries}</tbody></table>"
            f"<ul>{incidents}</ul>"
        )
    rejections = (
        "\n".join(
            f"<li>{e(r['snapshot_id'])}: {e(vocabulary.rejection(r['code']))}</li>"
            for r in record["rejections"]
        )
        or "<li>Ninguno.</li>"
    )
    outside = record["deliveries_outside_window"]
    window_check = (
        "Ninguna entrega se publicó antes de la apertura ni después del cierre."
        if not outside
        else f"ATENCIÓN: {len(outside)} entregas fuera del periodo de publicación."
    )
    early = (
        " (cierre anticipado: " + e(window["close_reason"]) + ")" if window["closed_early"] else ""
    )
    return f"""<!doctype html>
<html lang="es"><head><meta charset="utf-8">
<title>PREP {e(record["election"])} — Registro de cierre</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse;width:100%;font-size:.9rem}}td,th{{border-bottom:1px solid #ddd;
padding:.3rem;text-align:left}}code{{font-size:.75rem;word-break:break-all}}</style></head>
<body><main>
<h1>Registro de cierre del PREP — {e(record["election"])}</h1>
<p>Hechos para el acta circunstanciada, tomados del registro de entregas del sistema de
difusión. Horas locales ({e(tz)}). El detalle técnico de cada hecho está en el registro en
JSON que acompaña a esta página.</p>
<h2>Periodo de publicación</h2>
<ul><li>Apertura: {t(window["opened_at"])} (configurada: {t(window["configured_opening"])})</li>
<li>Cierre: {t(window["closed_at"])}{early}</li>
<li>{e(window_check)}</li></ul>
<h2>Cortes publicados</h2>
<table><thead><tr><th>#</th><th>Corte</th><th>Hora de corte</th><th>Primera publicación</th>
<th>SHA-256 del manifiesto</th></tr></thead><tbody>
{rows}
</tbody></table>
<p><strong>Publicación final:</strong> {final_text}</p>
<h2>Paquetes rechazados</h2><ul>{rejections}</ul>
<h2>Difusores</h2>
{"".join(sections)}
<p>Generado el {t(record["generated_at"])}.</p>
</main></body></html>
"""

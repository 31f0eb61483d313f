"""The demo's memorias técnicas: one per difusor, from logs generated for the demo's own
night (the embedded default has no CloudFront to log anything) and the ledger the demo
wrote. A difusor whose site went down gets 503s in its logs while its incident lasted, so
its memoria shows the incident and the errors side by side."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from difusion.local.pipeline import LocalPipeline
from difusion.memoria.build import MemoriaInput
from difusion.memoria.command import write_memoria
from difusion.memoria.ledger_export import history_of
from difusion.memoria.synthetic import TrafficSpec, generate_logs
from difusion.memoria.traffic import Period
from difusion.times import parse_iso, parse_iso_or_none

REQUESTS_PER_DIFUSOR = 20_000


def write_demo_memorias(
    pipeline: LocalPipeline, out_dir: Path, opening: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Write ``out_dir/<difusor>/`` (the memoria, its logs and its ledger export) for every
    difusor; the night starts at the hour of ``opening``; an incident still open ends at
    ``until``. Returns what each memoria counted."""
    zone_name = pipeline.deployment.time_zone
    zone = ZoneInfo(zone_name)
    local_opening = opening.astimezone(zone)
    night_start = local_opening.time().replace(minute=0, second=0, microsecond=0)
    first_day = local_opening.date()
    period = Period(first_day, (local_opening + timedelta(hours=6)).date(), zone_name)
    ledger = pipeline.ledger
    deliveries, checks = ledger.delivery_records(), ledger.check_records()
    incidents, upstream = ledger.incident_records(), ledger.upstream_incident_records()
    now = pipeline.clock.now()
    summaries = []
    for number, difusor in enumerate(pipeline.deployment.difusores, start=1):
        history = history_of(
            difusor.difusor_id,
            pipeline.deployment.election,
            now,
            deliveries,
            checks,
            incidents,
            upstream,
        )
        outages = tuple(
            (parse_iso(i.started_at), parse_iso_or_none(i.ended_at) or until)
            for i in history.incidents
            if i.started_at and "unreachable" in (i.cause, *i.causes)
        )
        folder = out_dir / difusor.difusor_id
        logs = folder / "registros"
        generate_logs(
            TrafficSpec(
                requests=REQUESTS_PER_DIFUSOR,
                first_day=period.first_day,
                last_day=period.last_day,
                election_day=first_day,
                time_zone=zone_name,
                night_start=night_start,
                distribution=f"E{number}DEMO{difusor.difusor_id.upper().replace('-', '')}"[:14],
                seed=number,
                outages=outages,
            ),
            logs,
        )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bitacora.json").write_text(
            json.dumps(history.to_json(), indent=2, ensure_ascii=False, default=str) + "\n",
            encoding="utf-8",
        )
        files, data = write_memoria(
            str(logs),
            period,
            MemoriaInput(
                difusor_id=difusor.difusor_id,
                election=pipeline.deployment.election,
                election_day=first_day,
                sources=(str(logs),),
                generated_at=now.astimezone(zone).replace(tzinfo=None),
                night_start=night_start,
            ),
            history,
            folder,
        )
        summaries.append(
            {
                "difusor_id": difusor.difusor_id,
                "html": str(files.html),
                "hits": data["key"]["hits"],
                "visits": data["key"]["visits"],
                "incidents": len(data["incidents"]),
                "criteria": [c["code"] for c in data["criteria"]],
            }
        )
    return summaries

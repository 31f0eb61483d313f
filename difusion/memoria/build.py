"""The memoria's content: every figure of the period, the difusor's part of the ledger laid
over the same timeline, and the criteria for improvement. This is ``memoria-tecnica.json``;
the HTML and the PDF are drawn from it alone."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from difusion.memoria import spanish
from difusion.memoria.criteria import Thresholds, criteria, error_hours
from difusion.memoria.ledger_export import DifusorHistory
from difusion.memoria.traffic import TrafficLog
from difusion.records import as_item

FORMAT = "difusion-memoria/1"
NIGHT_START, NIGHT_HOURS = time(20), 6  # the zoom: 20:00 to 02:00 of election night
SPIKE_FACTOR = 2.0  # an incident's error rate this many times the period's is a spike


@dataclass(frozen=True)
class MemoriaInput:
    difusor_id: str
    election: str | None
    election_day: date | None  # None: the ledger's first delivery, else the busiest day
    sources: tuple[str, ...]
    generated_at: datetime
    comments: str | None = None
    night_start: time = NIGHT_START  # the minute chart's start, on election day (local)
    thresholds: Thresholds = field(default_factory=Thresholds)


def _local(iso: str | None, zone: ZoneInfo) -> datetime | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso).astimezone(zone).replace(tzinfo=None)


def _election_day(
    given: date | None,
    history: DifusorHistory | None,
    zone: ZoneInfo,
    days: list[dict[str, Any]],
) -> date:
    if given is not None:
        return given
    starts = [
        moment
        for d in (history.deliveries if history else ())
        if (moment := _local(d.started_at, zone)) is not None
    ]
    if starts:
        first = min(starts)
        # a first cut in the small hours belongs to the night that started the day before
        return first.date() - timedelta(days=1) if first.time() < time(6) else first.date()
    busiest = max(days, key=lambda d: d["hits"])  # the period has one day at least
    return date.fromisoformat(busiest["day"])


def _incidents(
    history: DifusorHistory | None, log: TrafficLog, zone: ZoneInfo, period_rate: float
) -> list[dict[str, Any]]:
    """The difusor's incidents (and the upstream's), each with the logs' errors during it."""
    if history is None:
        return []
    rows = []
    for scope, incidents in (("sitio", history.incidents), ("origen", history.upstream_incidents)):
        for incident in incidents:
            start = _local(incident.started_at, zone)
            if start is None:
                continue
            end = _local(incident.ended_at, zone)
            seen = log.window(start, end or start + timedelta(minutes=15))
            rate = seen["errors"] / seen["hits"] if seen["hits"] else 0.0
            rows.append(
                {
                    **as_item(incident),
                    "scope": scope,
                    "local_start": start.isoformat(timespec="minutes"),
                    "local_end": end.isoformat(timespec="minutes") if end else None,
                    "minutes": round((end - start).total_seconds() / 60, 1) if end else None,
                    "log_hits": seen["hits"],
                    "log_errors": seen["errors"],
                    "log_error_rate": rate,
                    "error_spike": seen["hits"] > 0 and rate > SPIKE_FACTOR * period_rate,
                }
            )
    return sorted(rows, key=lambda r: r["local_start"])


def _deliveries(history: DifusorHistory | None, zone: ZoneInfo) -> dict[str, Any]:
    if history is None:
        return {"count": 0, "items": [], "longest_gap_minutes": None}
    items: list[dict[str, Any]] = []
    for d in history.deliveries:
        finished = _local(d.finished_at, zone)
        items.append(
            {
                "snapshot_id": d.snapshot_id,
                "sequence": d.sequence,
                "reason": d.reason,
                "scope": d.delivery_scope,
                "status": d.status,
                "local_finished": finished.isoformat(timespec="seconds") if finished else None,
            }
        )
    done: list[str] = sorted(str(i["local_finished"]) for i in items if i["local_finished"])
    gaps = [
        (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() / 60
        for a, b in itertools.pairwise(done)
    ]
    return {
        "count": len(items),
        "delivered": sum(1 for i in items if i["status"] == "delivered"),
        "items": items,
        "first": done[0] if done else None,
        "last": done[-1] if done else None,
        "longest_gap_minutes": round(max(gaps), 1) if gaps else None,
    }


def _uncovered_error_hours(
    status_by_hour: list[dict[str, Any]], incidents: list[dict[str, Any]], thresholds: Thresholds
) -> list[dict[str, Any]]:
    """Hours whose error rate crossed the threshold with no incident recorded in them."""
    out = []
    for bad in error_hours(status_by_hour, thresholds):
        hour = datetime.fromisoformat(bad.hour)
        covered = any(
            datetime.fromisoformat(i["local_start"]) < hour + timedelta(hours=1)
            and (i["local_end"] is None or datetime.fromisoformat(i["local_end"]) >= hour)
            for i in incidents
        )
        if not covered:
            out.append({"hour": bad.hour, "hits": bad.hits, "error_rate": bad.error_rate})
    return out


def build_memoria(
    log: TrafficLog, history: DifusorHistory | None, request: MemoriaInput
) -> dict[str, Any]:
    period = log.period
    zone = ZoneInfo(period.time_zone)
    key = log.key_figures().to_json()
    days = [d.to_json() for d in log.per_day()]
    election_day = _election_day(request.election_day, history, zone, days)
    night_start = datetime.combine(election_day, request.night_start)
    night_end = night_start + timedelta(hours=NIGHT_HOURS)
    status_by_hour = log.status_classes_per_hour()
    incidents = _incidents(history, log, zone, key["error_rate"])
    figures: dict[str, Any] = {
        "format": FORMAT,
        "difusor_id": request.difusor_id,
        "election": request.election or (history.election if history else None),
        "period": {
            "first_day": period.first_day.isoformat(),
            "last_day": period.last_day.isoformat(),
            "time_zone": period.time_zone,
        },
        "generated_at": request.generated_at.isoformat(timespec="seconds"),
        "sources": list(request.sources),
        "log_files": len(log.files),
        "lines_read": log.lines_read,
        "key": key,
        "latency": log.latency(),
        "per_day": days,
        "per_hour": log.per_hour(),
        "election_night": {
            "day": election_day.isoformat(),
            "start": night_start.isoformat(timespec="minutes"),
            "end": night_end.isoformat(timespec="minutes"),
            "per_minute": log.per_minute(night_start, night_end),
        },
        "hour_of_day": log.hour_of_day(),
        "top_pages": log.top_paths("html"),
        "top_data": log.top_paths("data"),
        "status_by_hour": status_by_hour,
        "not_found": log.top_not_found(),
        "result_types": log.result_types(),
        "detailed_results": log.detailed_results(),
        "edge_locations": log.edge_locations(),
        "agents": log.agents(),
        "robots": log.robots(),
        "referrers": log.referrers(),
        "ledger": history is not None,
        "deliveries": _deliveries(history, zone),
        "incidents": incidents,
        "errors_without_incident": _uncovered_error_hours(
            status_by_hour, incidents, request.thresholds
        ),
        "comments": request.comments,
    }
    figures["criteria"] = [
        c.to_json() for c in criteria(figures, incidents, spanish.percent, request.thresholds)
    ]
    return figures

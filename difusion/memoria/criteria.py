"""Criteria for improvement (section V, point 3 of the call), from measured thresholds.

Each criterion names the figure behind it and the threshold it crossed, in Spanish, so the
difusor can check it and argue with it. Pure: the figures come in, the criteria go out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from difusion import vocabulary


@dataclass(frozen=True)
class Thresholds:
    hourly_error_rate: float = 0.02  # errors (4xx, 5xx) over hits in one hour
    min_hits_for_an_hour: int = 500  # quieter hours are not judged (too few to tell)
    time_taken_p95_seconds: float = 1.0
    cache_hit_ratio: float = 0.80
    aborted_share: float = 0.01
    not_found_share: float = 0.01  # one missing path's share of every hit
    incident_minutes: int = 15  # one update period of the monitor


@dataclass(frozen=True)
class Criterion:
    code: str
    title: str
    figure: str  # the measured figure, formatted
    threshold: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {
            "code": self.code,
            "title": self.title,
            "figure": self.figure,
            "threshold": self.threshold,
            "text": self.text,
        }


Percent = Callable[[float], str]


@dataclass(frozen=True)
class ErrorHour:
    hour: str  # local, ISO
    hits: int
    error_rate: float


def error_hours(
    status_by_hour: Sequence[dict[str, Any]], thresholds: Thresholds
) -> list[ErrorHour]:
    """Hours busy enough to judge whose 4xx and 5xx share crossed the threshold."""
    out = []
    for row in status_by_hour:
        total = sum(row[c] for c in ("s2xx", "s3xx", "s4xx", "s5xx", "s000"))
        if total < thresholds.min_hits_for_an_hour:
            continue
        rate = (row["s4xx"] + row["s5xx"]) / total
        if rate > thresholds.hourly_error_rate:
            out.append(ErrorHour(row["hour"], total, rate))
    return out


def criteria(
    figures: dict[str, Any],
    incidents: Sequence[dict[str, Any]],
    percent: Percent,
    thresholds: Thresholds = Thresholds(),
) -> list[Criterion]:
    """The criteria the period's ``figures`` (the memoria's JSON: ``key``, ``status_by_hour``,
    ``latency``, ``not_found``) and the difusor's ``incidents`` call for; ``percent``
    formats a ratio the report's way."""
    found: list[Criterion] = []
    key = figures["key"]
    hits = key["hits"]
    bad_hours = error_hours(figures["status_by_hour"], thresholds)
    if bad_hours:
        worst = max(bad_hours, key=lambda h: h.error_rate)
        found.append(
            Criterion(
                "errores-por-hora",
                "Horas con una tasa de errores alta",
                f"{len(bad_hours)} horas; la peor, {percent(worst.error_rate)} "
                f"({_local(worst.hour)})",
                f"más de {percent(thresholds.hourly_error_rate)} de respuestas 4xx o 5xx en "
                f"una hora con al menos {thresholds.min_hits_for_an_hour} solicitudes",
                "Revisar en esas horas las respuestas de error del origen y de CloudFront, y "
                "las rutas que las provocaron (panel de estados y de páginas no encontradas).",
            )
        )
    p95 = figures["latency"].get("time_taken_p95")
    if p95 is not None and p95 > thresholds.time_taken_p95_seconds:
        found.append(
            Criterion(
                "tiempo-de-respuesta",
                "Tiempo de respuesta lento para una parte de las visitas",
                f"p95 de time-taken: {p95:.2f} s",
                f"más de {thresholds.time_taken_p95_seconds:g} s",
                "Revisar la proporción de respuestas servidas desde el origen (Miss) y la "
                "política de caché; Origin Shield reduce las idas al origen.",
            )
        )
    ratio = key.get("cache_hit_ratio")
    if ratio is not None and ratio < thresholds.cache_hit_ratio:
        found.append(
            Criterion(
                "caché",
                "Proporción baja de respuestas desde la caché de CloudFront",
                percent(ratio),
                f"menos de {percent(thresholds.cache_hit_ratio)}",
                "Confirmar que el sitio usa la política de caché por versiones que entrega "
                "el Instituto (cache_mode versioned) y que no se agregan encabezados que la "
                "fragmenten.",
            )
        )
    if hits and key["aborted"] / hits > thresholds.aborted_share:
        found.append(
            Criterion(
                "abandonos",
                "Solicitudes abandonadas por el visitante (estado 000)",
                f"{percent(key['aborted'] / hits)} de las solicitudes",
                f"más de {percent(thresholds.aborted_share)}",
                "Un visitante que cierra la conexión antes de la respuesta suele esperar "
                "demasiado: revisar el tamaño de las páginas y de los archivos de datos.",
            )
        )
    for row in figures["not_found"]:
        if hits and row["hits"] / hits > thresholds.not_found_share:
            found.append(
                Criterion(
                    "no-encontrado",
                    f"Ruta solicitada con frecuencia que no existe: {row['path']}",
                    f"{percent(row['hits'] / hits)} de las solicitudes",
                    f"más de {percent(thresholds.not_found_share)}",
                    "Publicar una redirección o un aviso en esa ruta, o corregir el enlace que "
                    "la difunde.",
                )
            )
    # an incident never closed (a site suspended to the end) lasted longer than any other
    long_ones = [
        i for i in incidents if not i.get("ended_at") or _minutes(i) > thresholds.incident_minutes
    ]
    if long_ones:
        longest = max(long_ones, key=lambda i: (not i.get("ended_at"), _minutes(i)))
        length = "sin cierre" if not longest.get("ended_at") else f"{_minutes(longest):.0f} min"
        found.append(
            Criterion(
                "incidentes",
                "Incidentes que duraron más de un periodo de actualización",
                f"{len(long_ones)}; el más largo, {length} "
                f"({vocabulary.cause(longest.get('cause') or longest.get('incident_kind'))})",
                f"más de {thresholds.incident_minutes} min",
                "Revisar con el Instituto la causa de cada incidente y el tiempo hasta su "
                "reparación; considerar una alarma propia sobre el sitio.",
            )
        )
    return found


def _minutes(incident: dict[str, Any]) -> float:
    start, end = incident.get("started_at"), incident.get("ended_at")
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() / 60


def _local(hour: str) -> str:
    day, time = hour.split("T")
    return f"{day} a las {time}"

"""Synthetic CloudFront standard logs of a difusor's site over an election's period.

For the embedded default (which has no CloudFront to log anything), the demo's memoria and
the benchmark: files in CloudFront's exact format and naming, with what a real election
night brings: most traffic between 20:00 and 02:00 on election night, robots, revalidations
(304), missing files (404), viewers who closed the connection (000), a few origin errors,
several edge locations, records out of time order, and entries delivered late in a second
file for their hour. Deterministic for a seed.
"""

from __future__ import annotations

import gzip
import random
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from difusion.memoria.log_format import HEADER, LogRecord, file_name

# Real browsers' user agents (desktop and phones) and robots'.
BROWSERS: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-A146M) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.6422.113 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0",
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Safari/537.36 Edg/125.0.0.0",
)
ROBOTS: tuple[str, ...] = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "python-requests/2.32.3",
    "curl/8.7.1",
)
EDGES: tuple[str, ...] = ("QRO51-P1", "QRO51-P2", "QRO52-C1", "DFW57-P4", "LAX50-C1", "IAH50-C2")
REFERERS: tuple[str, ...] = (
    "",
    "",
    "https://www.google.com/",
    "https://www.facebook.com/",
    "https://t.co/",
    "https://www.ieebcs.org.mx/",
)
# The site's files and the share of requests each kind gets.
PAGES: tuple[str, ...] = (
    "/",
    "/index.html",
    "/diputaciones/index.html",
    "/diputaciones/distrito-01.html",
    "/diputaciones/distrito-02.html",
    "/ayuntamientos/index.html",
    "/ayuntamientos/la-paz.html",
    "/ayuntamientos/comondú.html",
    "/verificar/index.html",
)
DATA: tuple[str, ...] = (
    "/datos/resultados.json",
    "/datos/avance.json",
    "/datos/BCS_DIP_LOC_2024.csv",
)
ASSETS: tuple[str, ...] = ("/assets/app.js", "/assets/estilos.css", "/assets/logo.png")
MISSING: tuple[str, ...] = ("/favicon.ico", "/wp-login.php", "/resultados.html", "/.env")
CONTENT_TYPES = {
    ".html": "text/html",
    ".json": "application/json",
    ".csv": "text/csv",
    ".js": "application/javascript",
    ".css": "text/css",
    ".png": "image/png",
}
LINES_PER_FILE = 200_000


@dataclass(frozen=True)
class TrafficSpec:
    """What to generate: ``requests`` lines over local dates ``first_day``..``last_day``."""

    requests: int = 20_000
    first_day: date = date(2024, 6, 1)
    last_day: date = date(2024, 6, 10)
    election_day: date = date(2024, 6, 2)
    time_zone: str = "America/Mazatlan"
    night_share: float = 0.8  # of the requests, in the six hours from ``night_start``
    night_start: time = time(20)  # local, on election day (the publication opens at 20:00)
    robot_share: float = 0.06
    late_share: float = 0.02  # delivered late, in a second file for their hour
    distribution: str = "E2DIFUSOREXAMPLE"
    seed: int = 2024
    visitors: int = 0  # 0: one for every ~15 requests
    edges: tuple[str, ...] = field(default=EDGES)
    # (start, end) in UTC when the site failed: every request in them gets a 503
    outages: tuple[tuple[datetime, datetime], ...] = ()


@dataclass(frozen=True)
class GeneratedLogs:
    files: tuple[Path, ...]
    lines: int
    late_lines: int


def _hour_weights(spec: TrafficSpec) -> list[tuple[datetime, float]]:
    """Every UTC hour of the period with its share of the requests: election night's six
    hours share ``night_share``; the rest follows a day's rhythm (quiet at night)."""
    zone = ZoneInfo(spec.time_zone)
    start = datetime.combine(spec.first_day, time(0), zone).astimezone(UTC)
    end = datetime.combine(spec.last_day + timedelta(days=1), time(0), zone).astimezone(UTC)
    night_start = datetime.combine(spec.election_day, spec.night_start, zone).astimezone(UTC)
    night_end = night_start + timedelta(hours=6)
    hours, night, day = [], [], []
    at = start
    while at < end:
        hours.append(at)
        if night_start <= at < night_end:
            night.append(at)
        else:
            local = at.astimezone(zone).hour
            day.append((at, 0.2 if local < 7 else 1.0 if local < 19 else 1.6))
        at += timedelta(hours=1)
    day_total = sum(w for _, w in day) or 1.0
    weights = {h: spec.night_share / len(night) for h in night}
    weights.update({h: (1 - spec.night_share) * w / day_total for h, w in day})
    return [(h, weights[h]) for h in hours]


def _counts(spec: TrafficSpec) -> list[tuple[datetime, int]]:
    """Requests per hour, summing exactly to ``spec.requests`` (largest remainders)."""
    weighted = _hour_weights(spec)
    exact = [(h, spec.requests * w) for h, w in weighted]
    counts = {h: int(x) for h, x in exact}
    short = spec.requests - sum(counts.values())
    for h, _ in sorted(exact, key=lambda e: e[1] - int(e[1]), reverse=True)[:short]:
        counts[h] += 1
    return [(h, counts[h]) for h, _ in weighted]


class _Traffic:
    def __init__(self, spec: TrafficSpec) -> None:
        self.spec = spec
        self.random = random.Random(spec.seed)
        visitors = spec.visitors or max(spec.requests // 15, 1)
        r = self.random
        self.humans = [
            (
                f"189.{r.randrange(130, 250)}.{r.randrange(256)}.{r.randrange(1, 255)}",
                r.choice(BROWSERS),
            )
            for _ in range(visitors)
        ]
        self.robots = [(f"66.249.{r.randrange(64, 80)}.{r.randrange(1, 255)}", ua) for ua in ROBOTS]
        self.sequence = 0

    def record(self, hour: datetime) -> LogRecord:
        r = self.random
        robot = r.random() < self.spec.robot_share
        ip, agent = r.choice(self.robots) if robot else r.choice(self.humans)
        kind = r.random()
        if kind < 0.012:
            path = r.choice(MISSING)
        elif kind < 0.42:
            path = r.choice(PAGES)
        elif kind < 0.82:
            path = r.choice(DATA)
        else:
            path = r.choice(ASSETS)
        at = hour + timedelta(seconds=r.randrange(3600))
        outcome = r.random()
        detailed = ""
        if any(start <= at < end for start, end in self.spec.outages):
            status, result = 503, "Error"
        elif path in MISSING:
            status, result = 404, "Error"
        elif outcome < 0.003:
            status, result = 0, "Error"
        elif outcome < 0.004:
            status, result = r.choice((502, 504)), "Error"
            detailed = r.choice(("OriginConnectError", "OriginReadError"))
        elif outcome < 0.12:
            status, result = 304, r.choice(("Hit", "RefreshHit"))
        else:
            status, result = 200, "Hit" if outcome < 0.88 else "Miss"
            if result == "Miss" and r.random() < 0.5:  # Origin Shield had it
                detailed = "OriginShieldHit"
        suffix = "." + path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ".html"
        content_type = CONTENT_TYPES.get(suffix, "text/html") if status in (200, 304) else ""
        if status == 404:
            content_type = "text/html"
        size = {200: r.randrange(2_000, 180_000), 304: 310, 0: 0}.get(status, 620)
        slow = result == "Miss" or status >= 500
        taken = r.uniform(0.08, 0.9) if slow else r.uniform(0.001, 0.06)
        self.sequence += 1
        return LogRecord(
            at=at,
            edge_location=r.choice(self.spec.edges),
            client_ip=ip,
            method="GET",
            path=urllib.parse.quote(path),  # as the browser sent it
            status=status,
            referer="" if robot else r.choice(REFERERS),
            user_agent=agent,
            result_type=result,
            response_bytes=size,
            time_taken=taken,
            time_to_first_byte=taken * r.uniform(0.5, 0.95),
            content_type=content_type,
            request_id=f"req{self.spec.seed:x}{self.sequence:010d}",
            detailed_result_type="ClientCommError" if status == 0 else detailed,
        )


def _write(
    folder: Path, spec: TrafficSpec, hour: datetime, part: str, records: list[LogRecord]
) -> Path:
    path = folder / file_name(spec.distribution, hour, f"{spec.seed:x}{hour:%m%d%H}{part}")
    with gzip.open(path, "wt", encoding="utf-8", newline="\n") as out:
        out.write(HEADER)
        out.writelines(record.line() + "\n" for record in records)
    return path


def generate_logs(spec: TrafficSpec, out_dir: Path, prefix: str = "cloudfront/") -> GeneratedLogs:
    """Write the period's log files under ``out_dir/prefix``; records within a file are in
    no time order, and a share of each hour's comes in a later file for the same hour."""
    folder = out_dir / prefix
    folder.mkdir(parents=True, exist_ok=True)
    traffic = _Traffic(spec)
    files: list[Path] = []
    lines = late_lines = 0
    for hour, count in _counts(spec):
        late: list[LogRecord] = []
        for number, start in enumerate(range(0, count, LINES_PER_FILE)):
            on_time: list[LogRecord] = []
            for _ in range(min(LINES_PER_FILE, count - start)):
                record = traffic.record(hour)
                (late if traffic.random.random() < spec.late_share else on_time).append(record)
            files.append(_write(folder, spec, hour, f"a{number}", on_time))
        if late:
            files.append(_write(folder, spec, hour, "late", late))
        lines += count
        late_lines += len(late)
    return GeneratedLogs(tuple(files), lines, late_lines)

"""A difusor's traffic over a period, read from its CloudFront logs with DuckDB.

DuckDB reads the gzip'd files itself (``read_csv`` with the 33 columns given, nothing
guessed); Python touches only the distinct user agents, to tell robots apart. Lines that do
not have the 33 fields, or whose time or status does not parse, are counted, not fatal.
Times are the edge's, in UTC; the period is whole local days in the election's time zone.

The definitions (the report's glossary says the same in Spanish):

- *hit*: every request logged.
- *page*: a GET answered 200 or 304 with HTML (its content type, or a path ending in
  ``.html``, ``.htm`` or ``/``), not by a robot.
- *data request*: a GET answered 200 or 304 for a ``.json`` or ``.csv`` file, not by a robot.
- *visit*: the requests of one IP address and user agent, not a robot's; a new visit starts
  after 30 minutes without a request.
- *unique visitor*: one IP address, local date and user agent, 4xx answers and aborted
  requests (000, no answer) left out, as GoAccess counts them (it refuses 000 lines);
  robots are left out here and counted apart.
- *error*: an answer 400 or over; *aborted*: the viewer closed the connection first (000).
- *cache hit ratio*: Hit over Hit, RefreshHit and Miss, by x-edge-response-result-type, as
  CloudFront's own cache statistics count them (a RefreshHit asked the origin; a request that
  Origin Shield answered is a Miss at the edge, ``OriginShieldHit`` in
  x-edge-detailed-result-type, and is counted apart).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import crawleruseragents
import duckdb
import ua_parser

from difusion.memoria.log_format import COLUMNS, hour_of

VISIT_GAP_MINUTES = 30
AGENTS_PARSED = 20_000  # distinct user agents parsed, the most frequent first
MEMORY_LIMIT = "3GB"


@dataclass(frozen=True)
class Period:
    """Local days ``first_day``..``last_day`` (both included) in ``time_zone``."""

    first_day: date
    last_day: date
    time_zone: str

    def __post_init__(self) -> None:
        if self.last_day < self.first_day:
            raise ValueError(
                f"the period ends ({self.last_day}) before it starts ({self.first_day})"
            )

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(0), ZoneInfo(self.time_zone)).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the period."""
        next_day = self.last_day + timedelta(days=1)
        return datetime.combine(next_day, time(0), ZoneInfo(self.time_zone)).astimezone(UTC)

    def may_hold(self, log_file: str) -> bool:
        """Whether a log file's name says it may hold requests of the period (a file is
        named for the hour its requests occurred in, however late it arrived)."""
        hour = hour_of(log_file)
        return hour is not None and self.start - timedelta(hours=1) <= hour < self.end


@dataclass(frozen=True)
class KeyFigures:
    hits: int
    pages: int
    data_requests: int
    visits: int
    unique_visitors: int
    robot_hits: int
    bytes: int
    errors: int
    aborted: int
    error_rate: float
    cache_hit_ratio: float | None
    origin_shield_hits: int
    peak_minute: str | None  # local, ISO
    peak_minute_hits: int
    peak_hour: str | None
    peak_hour_hits: int
    malformed_lines: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DayFigures:
    day: str
    hits: int
    pages: int
    data_requests: int
    visits: int
    unique_visitors: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def describe_agent(agent: str) -> tuple[str, str, str]:
    """A user agent's browser, operating system and kind of device (``computadora``,
    ``teléfono``, ``tableta``)."""
    parsed = ua_parser.parse(agent)
    browser = parsed.user_agent.family if parsed.user_agent else "Otro"
    system = parsed.os.family if parsed.os else "Otro"
    device = parsed.device.family if parsed.device else ""
    if "iPad" in device or "Tablet" in device or ("Tab" in agent and system == "Android"):
        kind = "tableta"
    elif system in ("iOS", "Android") or "Mobile" in agent:
        kind = "teléfono"
    else:
        kind = "computadora"
    return browser, system, kind


def _is_robot(encoded_agent: str) -> bool:
    agent = urllib.parse.unquote(encoded_agent)
    return agent in ("", "-") or crawleruseragents.is_crawler(agent)


class TrafficLog:
    """The period's requests, loaded once into DuckDB (in memory, or in ``database`` for a
    log too large for memory)."""

    def __init__(
        self,
        files: Sequence[Path],
        period: Period,
        database: Path | None = None,
        threads: int = 2,
    ) -> None:
        self.period = period
        self.files = tuple(f for f in files if period.may_hold(f.name))
        self.db = duckdb.connect(str(database) if database else ":memory:")
        for setting in (
            "SET autoinstall_known_extensions = false",  # nothing is ever downloaded
            "SET autoload_known_extensions = false",
            f"SET memory_limit = '{MEMORY_LIMIT}'",
            f"SET threads = {int(threads)}",
            "SET TimeZone = 'UTC'",
            "SET enable_progress_bar = false",
        ):
            self.db.execute(setting)
        self.malformed_lines = self.lines_read = 0
        self._load()

    def _load(self) -> None:
        """Only the columns the figures use are kept: DuckDB parses every line but stores
        a dozen columns, not 33."""
        columns = ", ".join(f"'{c}': 'VARCHAR'" for c in COLUMNS)
        if self.files:
            file_list = "[" + ", ".join(f"'{_sql_string(str(f))}'" for f in self.files) + "]"
            source = f"""read_csv({file_list},
                delim = '	', header = false, comment = '#', quote = '', escape = '',
                auto_detect = false, columns = {{{columns}}}, compression = 'gzip',
                ignore_errors = true, store_rejects = true, null_padding = false)"""
        else:
            nothing = ", ".join(f"NULL::VARCHAR AS {c}" for c in COLUMNS)
            source = f"(SELECT {nothing} LIMIT 0)"
        self.db.execute(
            f"""CREATE TABLE parsed AS SELECT
                TRY_CAST(date || ' ' || time AS TIMESTAMP) AS at_utc,
                TRY_CAST(sc_status AS INTEGER) AS status,
                c_ip AS ip, cs_method AS method, cs_uri_stem AS path,
                cs_user_agent AS agent, cs_referer AS referer,
                x_edge_response_result_type AS result, x_edge_location AS edge,
                x_edge_detailed_result_type AS detailed,
                sc_content_type AS content_type,
                coalesce(TRY_CAST(sc_bytes AS BIGINT), 0) AS bytes,
                TRY_CAST(time_taken AS DOUBLE) AS time_taken,
                TRY_CAST(time_to_first_byte AS DOUBLE) AS time_to_first_byte
            FROM {source}"""
        )
        rejected = 0
        if self.files:  # lines without the 33 fields
            row = self.db.execute(
                "SELECT count(DISTINCT (file_id, line)) FROM reject_errors"
            ).fetchone()
            rejected = int(row[0]) if row else 0
        counts = self.db.execute(
            """SELECT count(*), count(*) FILTER (WHERE at_utc IS NULL OR status IS NULL)
            FROM parsed"""
        ).fetchone()
        parsed, unparsable = (int(counts[0]), int(counts[1])) if counts else (0, 0)
        self.malformed_lines = rejected + unparsable
        self.lines_read = parsed + rejected
        agents = [row[0] for row in self.db.execute("SELECT DISTINCT agent FROM parsed").fetchall()]
        robots = [a for a in agents if a is None or _is_robot(a)]
        self.db.execute("CREATE TABLE robots (agent VARCHAR)")
        if robots:
            self.db.execute("INSERT INTO robots SELECT unnest($1)", [robots])
        start, end = self.period.start.replace(tzinfo=None), self.period.end.replace(tzinfo=None)
        self.db.execute(
            """CREATE TABLE requests AS SELECT p.*,
                timezone($zone, p.at_utc::TIMESTAMPTZ) AS at_local,
                CAST(timezone($zone, p.at_utc::TIMESTAMPTZ) AS DATE) AS local_day,
                r.agent IS NOT NULL AS robot,
                (p.method = 'GET' AND p.status IN (200, 304) AND (
                    p.content_type LIKE 'text/html%' OR lower(p.path) LIKE '%.html'
                    OR lower(p.path) LIKE '%.htm' OR p.path LIKE '%/')) AS html,
                (p.method = 'GET' AND p.status IN (200, 304) AND (
                    lower(p.path) LIKE '%.json' OR lower(p.path) LIKE '%.csv')) AS data
            FROM parsed p LEFT JOIN robots r ON p.agent = r.agent
            WHERE p.at_utc IS NOT NULL AND p.status IS NOT NULL
              AND p.at_utc >= $start AND p.at_utc < $end""",
            {"zone": self.period.time_zone, "start": start, "end": end},
        )
        self.db.execute(
            f"""CREATE TABLE visits AS SELECT ip, agent, at_local AS started, local_day FROM (
                SELECT ip, agent, at_local, local_day,
                    lag(at_local) OVER (PARTITION BY ip, agent ORDER BY at_local) AS previous
                FROM requests WHERE NOT robot)
            WHERE previous IS NULL
               OR at_local - previous > INTERVAL {VISIT_GAP_MINUTES} MINUTE"""
        )
        self.db.execute("DROP TABLE parsed")

    def _one(self, sql: str) -> Any:
        row = self.db.execute(sql).fetchone()
        return row[0] if row else None

    def key_figures(self) -> KeyFigures:
        totals = self.db.execute(
            """SELECT count(*),
                count(*) FILTER (WHERE html AND NOT robot),
                count(*) FILTER (WHERE data AND NOT robot),
                count(*) FILTER (WHERE robot),
                coalesce(sum(bytes), 0),
                count(*) FILTER (WHERE status >= 400),
                count(*) FILTER (WHERE status = 0),
                count(*) FILTER (WHERE result = 'Hit'),
                count(*) FILTER (WHERE result IN ('Hit', 'RefreshHit', 'Miss')),
                count(*) FILTER (WHERE detailed = 'OriginShieldHit')
            FROM requests"""
        ).fetchone()
        assert totals is not None
        hits, pages, data, robot_hits, sent, errors, aborted, cached, cacheable, shield = totals
        minute = self.db.execute(
            """SELECT date_trunc('minute', at_local) AS m, count(*) AS n FROM requests
            GROUP BY m ORDER BY n DESC, m LIMIT 1"""
        ).fetchone()
        hour = self.db.execute(
            """SELECT date_trunc('hour', at_local) AS h, count(*) AS n FROM requests
            GROUP BY h ORDER BY n DESC, h LIMIT 1"""
        ).fetchone()
        return KeyFigures(
            hits=int(hits),
            pages=int(pages),
            data_requests=int(data),
            visits=int(self._one("SELECT count(*) FROM visits")),
            unique_visitors=int(self._one(_UNIQUE_VISITORS)),
            robot_hits=int(robot_hits),
            bytes=int(sent),
            errors=int(errors),
            aborted=int(aborted),
            error_rate=errors / hits if hits else 0.0,
            cache_hit_ratio=cached / cacheable if cacheable else None,
            origin_shield_hits=int(shield),
            peak_minute=minute[0].isoformat(timespec="minutes") if minute else None,
            peak_minute_hits=int(minute[1]) if minute else 0,
            peak_hour=hour[0].isoformat(timespec="minutes") if hour else None,
            peak_hour_hits=int(hour[1]) if hour else 0,
            malformed_lines=self.malformed_lines,
        )

    def per_day(self) -> list[DayFigures]:
        """Every local day of the period, those without traffic too."""
        rows = self.db.execute(
            f"""WITH days AS (
                SELECT CAST(d AS DATE) AS day FROM generate_series(
                    DATE '{self.period.first_day}', DATE '{self.period.last_day}', INTERVAL 1 DAY
                ) t(d)),
            r AS (SELECT local_day, count(*) AS hits,
                    count(*) FILTER (WHERE html AND NOT robot) AS pages,
                    count(*) FILTER (WHERE data AND NOT robot) AS data,
                    coalesce(sum(bytes), 0) AS bytes
                FROM requests GROUP BY local_day),
            v AS (SELECT local_day, count(*) AS visits FROM visits GROUP BY local_day),
            u AS (SELECT local_day, count(*) AS visitors FROM (
                    SELECT DISTINCT ip, local_day, agent FROM requests
                    WHERE NOT robot AND status <> 0 AND NOT (status BETWEEN 400 AND 499))
                GROUP BY local_day)
            SELECT days.day, coalesce(r.hits, 0), coalesce(r.pages, 0), coalesce(r.data, 0),
                coalesce(v.visits, 0), coalesce(u.visitors, 0), coalesce(r.bytes, 0)
            FROM days LEFT JOIN r ON r.local_day = days.day
                LEFT JOIN v ON v.local_day = days.day LEFT JOIN u ON u.local_day = days.day
            ORDER BY days.day"""
        ).fetchall()
        return [
            DayFigures(str(d), int(h), int(p), int(dr), int(v), int(u), int(b))
            for d, h, p, dr, v, u, b in rows
        ]

    def _rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, parameters or {})
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def per_hour(self) -> list[dict[str, Any]]:
        """Hits and pages of every local hour with traffic."""
        return self._rows(
            """SELECT strftime(date_trunc('hour', at_local), '%Y-%m-%dT%H:%M') AS hour,
                count(*) AS hits, count(*) FILTER (WHERE html AND NOT robot) AS pages,
                count(*) FILTER (WHERE data AND NOT robot) AS data_requests
            FROM requests GROUP BY ALL ORDER BY hour"""
        )

    def per_minute(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Hits and errors of every minute from ``start`` to ``end`` (local wall times,
        naive), those without traffic too: election night's zoom."""
        return self._rows(
            """WITH minutes AS (SELECT m FROM generate_series($start::TIMESTAMP,
                    $end::TIMESTAMP - INTERVAL 1 MINUTE, INTERVAL 1 MINUTE) t(m)),
                r AS (SELECT date_trunc('minute', at_local) AS m, count(*) AS hits,
                    count(*) FILTER (WHERE status >= 400 OR status = 0) AS errors
                FROM requests WHERE at_local >= $start AND at_local < $end GROUP BY m)
            SELECT strftime(minutes.m, '%Y-%m-%dT%H:%M') AS minute,
                coalesce(r.hits, 0) AS hits, coalesce(r.errors, 0) AS errors
            FROM minutes LEFT JOIN r USING (m) ORDER BY minutes.m""",
            {"start": start, "end": end},
        )

    def hour_of_day(self) -> list[dict[str, Any]]:
        """Hits by local hour of the day (0-23) over the whole period."""
        return self._rows(
            """SELECT h AS hour, coalesce(n, 0) AS hits FROM range(24) t(h)
            LEFT JOIN (SELECT hour(at_local) AS h, count(*) AS n FROM requests GROUP BY h)
            USING (h) ORDER BY h"""
        )

    def top_paths(self, kind: str, limit: int = 20) -> list[dict[str, Any]]:
        """The most requested pages (``kind="html"``) or data files (``"data"``), robots
        left out."""
        if kind not in ("html", "data"):
            raise ValueError(f"no such kind of path: {kind}")
        return self._rows(
            f"""SELECT url_decode(url_decode(path)) AS path, count(*) AS hits, sum(bytes) AS bytes
            FROM requests WHERE {kind} AND NOT robot
            GROUP BY ALL ORDER BY hits DESC, path LIMIT {int(limit)}"""
        )

    def status_classes_per_hour(self) -> list[dict[str, Any]]:
        return self._rows(
            """SELECT strftime(date_trunc('hour', at_local), '%Y-%m-%dT%H:%M') AS hour,
                count(*) FILTER (WHERE status BETWEEN 200 AND 299) AS s2xx,
                count(*) FILTER (WHERE status BETWEEN 300 AND 399) AS s3xx,
                count(*) FILTER (WHERE status BETWEEN 400 AND 499) AS s4xx,
                count(*) FILTER (WHERE status >= 500) AS s5xx,
                count(*) FILTER (WHERE status = 0) AS s000
            FROM requests GROUP BY ALL ORDER BY hour"""
        )

    def top_not_found(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._rows(
            f"""SELECT url_decode(url_decode(path)) AS path, count(*) AS hits FROM requests
            WHERE status = 404 GROUP BY ALL ORDER BY hits DESC, path LIMIT {int(limit)}"""
        )

    def result_types(self) -> list[dict[str, Any]]:
        """Each edge result type with its share and the p50/p95 of ``time-taken`` and
        ``time-to-first-byte`` (seconds)."""
        return self._rows(
            """SELECT result, count(*) AS hits,
                count(*) / sum(count(*)) OVER () AS share,
                quantile_cont(time_taken, 0.5) AS time_taken_p50,
                quantile_cont(time_taken, 0.95) AS time_taken_p95,
                quantile_cont(time_to_first_byte, 0.5) AS ttfb_p50,
                quantile_cont(time_to_first_byte, 0.95) AS ttfb_p95
            FROM requests GROUP BY result ORDER BY hits DESC, result"""
        )

    def detailed_results(self, limit: int = 20) -> list[dict[str, Any]]:
        """The x-edge-detailed-result-type values that say more than the result type
        (``OriginShieldHit``, ``ClientCommError``, ``OriginConnectError``…)."""
        return self._rows(
            f"""SELECT detailed, count(*) AS hits FROM requests
            WHERE detailed IS NOT NULL AND detailed <> '-' AND detailed <> result
            GROUP BY detailed ORDER BY hits DESC, detailed LIMIT {int(limit)}"""
        )

    def edge_locations(self, limit: int = 20) -> list[dict[str, Any]]:
        """Hits by edge location, grouped by its airport code (``QRO51-P1`` → ``QRO``)."""
        return self._rows(
            f"""SELECT regexp_extract(edge, '^[A-Z]+') AS location, count(*) AS hits,
                count(*) / sum(count(*)) OVER () AS share
            FROM requests GROUP BY ALL ORDER BY hits DESC, location LIMIT {int(limit)}"""
        )

    def robots(self, limit: int = 20) -> list[dict[str, Any]]:
        """The robots' user agents (decoded) with their hits."""
        rows = self._rows(
            f"""SELECT agent, count(*) AS hits FROM requests WHERE robot
            GROUP BY agent ORDER BY hits DESC, agent LIMIT {int(limit)}"""
        )
        return [{"agent": urllib.parse.unquote(r["agent"] or "-"), "hits": r["hits"]} for r in rows]

    def referrers(self, limit: int = 20) -> list[dict[str, Any]]:
        """Hosts of the pages that led viewers to the site (robots and the site's own
        pages left out)."""
        return self._rows(
            f"""SELECT host, count(*) AS hits FROM (
                SELECT regexp_extract(
                    url_decode(url_decode(referer)), '^[a-z]+://([^/:]+)', 1) AS host
                FROM requests WHERE NOT robot AND referer IS NOT NULL AND referer <> '-')
            WHERE host <> '' GROUP BY host ORDER BY hits DESC, host LIMIT {int(limit)}"""
        )

    def latency(self) -> dict[str, float | None]:
        """p50 and p95 of ``time-taken`` and ``time-to-first-byte`` over every request
        (seconds)."""
        [row] = self._rows(
            """SELECT quantile_cont(time_taken, 0.5) AS time_taken_p50,
                quantile_cont(time_taken, 0.95) AS time_taken_p95,
                quantile_cont(time_to_first_byte, 0.5) AS ttfb_p50,
                quantile_cont(time_to_first_byte, 0.95) AS ttfb_p95
            FROM requests"""
        )
        return row

    def window(self, start: datetime, end: datetime) -> dict[str, int]:
        """Hits, errors (4xx, 5xx) and aborted requests from ``start`` to ``end`` (local
        wall times, naive)."""
        [row] = self._rows(
            """SELECT count(*) AS hits,
                count(*) FILTER (WHERE status >= 400) AS errors,
                count(*) FILTER (WHERE status = 0) AS aborted
            FROM requests WHERE at_local >= $start AND at_local < $end""",
            {"start": start, "end": end},
        )
        return {k: int(v) for k, v in row.items()}

    def agents(
        self, limit: int = 10, parsed: int = AGENTS_PARSED
    ) -> dict[str, list[dict[str, Any]]]:
        """Hits by browser, operating system and kind of device (robots left out); each
        distinct user agent is parsed once, the ``parsed`` most frequent of them (a real
        log's long tail of rare agents is counted as ``sin analizar``)."""
        totals: dict[str, dict[str, int]] = {"browsers": {}, "systems": {}, "devices": {}}
        rows = self.db.execute(
            """SELECT agent, count(*) AS hits FROM requests WHERE NOT robot
            GROUP BY agent ORDER BY hits DESC, agent"""
        ).fetchall()
        for rank, (agent, hits) in enumerate(rows):
            if rank < parsed:
                described = describe_agent(urllib.parse.unquote(agent or ""))
            else:
                described = ("sin analizar",) * 3
            for panel, name in zip(("browsers", "systems", "devices"), described, strict=True):
                totals[panel][name] = totals[panel].get(name, 0) + int(hits)
        return {
            panel: [
                {"name": name, "hits": hits}
                for name, hits in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
            ]
            for panel, counts in totals.items()
        }

    def close(self) -> None:
        self.db.close()


_UNIQUE_VISITORS = """SELECT count(*) FROM (SELECT DISTINCT ip, local_day, agent FROM requests
    WHERE NOT robot AND status <> 0 AND NOT (status BETWEEN 400 AND 499))"""


def _sql_string(text: str) -> str:
    return text.replace("'", "''")

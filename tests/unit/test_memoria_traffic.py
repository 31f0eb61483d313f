"""The memoria's traffic figures, checked against ones computed by hand on a small log."""

from __future__ import annotations

import gzip
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from difusion.memoria.log_format import FIELDS, HEADER, LogRecord, file_name, hour_of
from difusion.memoria.traffic import Period, TrafficLog

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/125.0 Safari/537.36"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
# Two local days in Baja California Sur (UTC-7): 2024-06-01T07:00Z to 2024-06-03T07:00Z.
PERIOD = Period(date(2024, 6, 1), date(2024, 6, 2), "America/Mazatlan")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _request(
    at: str, ip: str, agent: str, path: str, status: int, result: str, size: int = 1000
) -> LogRecord:
    return LogRecord(
        at=_at(at),
        edge_location="QRO51-P1",
        client_ip=ip,
        method="GET",
        path=path,
        status=status,
        referer="",
        user_agent=agent,
        result_type=result,
        response_bytes=size,
        time_taken=0.01,
        time_to_first_byte=0.005,
        content_type="text/html" if path.endswith((".html", "/")) and status < 400 else "",
    )


A, B, C = ("189.1.1.1", CHROME), ("189.2.2.2", FIREFOX), ("189.4.4.4", CHROME)
REQUESTS = [
    # local 2024-05-31 23:59:59: before the period
    _request("2024-06-01 06:59:59", *A, "/index.html", 200, "Hit"),
    # local 06-01 00:00:00, the first second: a page, visit 1
    _request("2024-06-01 07:00:00", *A, "/index.html", 200, "Hit", 100),
    _request("2024-06-01 07:10:00", *A, "/datos/resultados.json", 200, "Miss", 200),
    # 31 minutes later: visit 2; a 304 is a page too
    _request("2024-06-01 07:41:00", *A, "/index.html", 304, "RefreshHit", 300),
    _request("2024-06-01 07:42:00", *A, "/favicon.ico", 404, "Error", 400),
    # local 06-01 20:00: B's only request that day is a 404 (no unique visitor), visit 3
    _request("2024-06-02 03:00:00", *B, "/no-existe.html", 404, "Error", 500),
    # local 06-02 00:30: visit 4, a page ("/") and a data file in the same minute
    _request("2024-06-02 07:30:00", *B, "/", 200, "Hit", 600),
    _request("2024-06-02 07:30:40", *B, "/datos/resultados.json", 200, "Hit", 700),
    # a robot: a hit, not a page, visit or visitor
    _request("2024-06-02 08:00:00", "66.249.66.1", GOOGLEBOT, "/index.html", 200, "Hit", 800),
    # local 06-02 05:00: an origin error, A's visit 5 (its day-2 visitor)
    _request("2024-06-02 12:00:00", *A, "/datos/resultados.json", 502, "Error", 900),
    # local 06-02 23:59:59, the last second: aborted (000), visit 6, no unique visitor
    _request("2024-06-03 06:59:59", *C, "/datos/avance.csv", 0, "Error", 0),
    # local 06-03 00:00:00: after the period
    _request("2024-06-03 07:00:00", *C, "/index.html", 200, "Hit"),
]


def _write(folder: Path, hour: datetime, unique: str, lines: list[str]) -> None:
    with gzip.open(folder / file_name("E2TEST", hour, unique), "wt", encoding="utf-8") as out:
        out.write(HEADER + "".join(line + "\n" for line in lines))


@pytest.fixture
def logs(tmp_path: Path) -> list[Path]:
    by_hour: dict[datetime, list[LogRecord]] = {}
    for request in REQUESTS:
        by_hour.setdefault(request.at.replace(minute=0, second=0), []).append(request)
    for hour, records in by_hour.items():
        # out of time order within the file; B's second request arrives late, in a later file
        on_time = [
            r
            for r in reversed(records)
            if r.path != "/datos/resultados.json" or r.client_ip != B[0]
        ]
        late = [r for r in records if r not in on_time]
        _write(tmp_path, hour, "a", [r.line() for r in on_time])
        if late:
            _write(tmp_path, hour, "late", [r.line() for r in late])
    # a cut-short line and one whose date does not parse, in a file of the period
    broken = REQUESTS[1].line().replace("2024-06-01", "2024-13-45")
    _write(
        tmp_path,
        _at("2024-06-01 09:00:00"),
        "x",
        ["2024-06-01\t09:00:01\tQRO51-P1\t10\t1.2.3.4", broken],
    )
    # a file for an hour far outside the period is not read
    _write(tmp_path, _at("2024-05-20 10:00:00"), "old", [REQUESTS[1].line()])
    return sorted(tmp_path.glob("*.gz"))


def test_key_figures_are_the_hand_computed_ones(logs: list[Path]):
    log = TrafficLog(logs, PERIOD)
    figures = log.key_figures()
    assert figures.hits == 10
    assert figures.pages == 3  # 200 and 304 HTML, "/" ; not the robot's
    assert figures.data_requests == 2
    assert figures.robot_hits == 1
    assert figures.visits == 6
    # A day 1, A and B day 2 (B's day-1 404 and C's only request, aborted, left out)
    assert figures.unique_visitors == 3
    assert figures.bytes == sum(range(100, 1000, 100)) + 0
    assert (figures.errors, figures.aborted) == (3, 1)
    assert figures.error_rate == pytest.approx(0.3)
    # Hit over Hit, RefreshHit and Miss (x-edge-response-result-type), as CloudFront counts
    assert figures.cache_hit_ratio == pytest.approx(4 / 6)
    assert (figures.peak_minute, figures.peak_minute_hits) == ("2024-06-02T00:30", 2)
    assert (figures.peak_hour, figures.peak_hour_hits) == ("2024-06-01T00:00", 4)
    assert figures.malformed_lines == 2
    # every line of the files that may hold the period: the hour before its first (a request
    # that started then may have ended in it) up to its last; not the old file, nor 06-03 07h
    assert log.lines_read == 11 + 2


def test_each_local_day_has_its_own_figures(logs: list[Path]):
    days = {d.day: d for d in TrafficLog(logs, PERIOD).per_day()}
    assert list(days) == ["2024-06-01", "2024-06-02"]
    first, second = days["2024-06-01"], days["2024-06-02"]
    assert (first.hits, first.pages, first.data_requests, first.visits) == (5, 2, 1, 3)
    assert first.unique_visitors == 1
    assert (second.hits, second.pages, second.data_requests, second.visits) == (5, 1, 1, 3)
    assert second.unique_visitors == 2
    assert first.bytes + second.bytes == 4500


def test_a_day_without_traffic_is_listed_with_zeros(logs: list[Path]):
    longer = Period(date(2024, 6, 1), date(2024, 6, 4), "America/Mazatlan")
    days = TrafficLog(logs, longer).per_day()
    assert [d.day for d in days] == ["2024-06-01", "2024-06-02", "2024-06-03", "2024-06-04"]
    assert days[2].hits == 1 and days[3].hits == 0 and days[3].visits == 0


def test_no_log_files_give_zeros_not_an_error(tmp_path: Path):
    figures = TrafficLog([], PERIOD).key_figures()
    assert (figures.hits, figures.visits, figures.cache_hit_ratio, figures.peak_hour) == (
        0,
        0,
        None,
        None,
    )


def test_a_line_has_the_33_fields_and_file_names_carry_their_hour():
    line = REQUESTS[1].line()
    assert len(FIELDS) == 33 and len(line.split("\t")) == 33
    assert "Mozilla/5.0%20(Windows" in line  # URL-encoded, as CloudFront writes them
    name = file_name("E2TEST", _at("2024-06-02 03:00:00"), "abc")
    assert name == "E2TEST.2024-06-02-03.abc.gz"
    assert hour_of(f"cloudfront/{name}") == _at("2024-06-02 03:00:00")
    assert hour_of("cloudfront/notes.txt") is None


def test_a_period_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="ends"):
        Period(date(2024, 6, 10), date(2024, 6, 1), "America/Mazatlan")


def test_the_panels_count_what_the_hand_log_holds(logs: list[Path]):
    log = TrafficLog(logs, PERIOD)
    # status classes by local hour: the 000 at 23:59:59 in its own class
    classes = {row["hour"]: row for row in log.status_classes_per_hour()}
    assert classes["2024-06-02T23:00"]["s000"] == 1
    assert classes["2024-06-01T00:00"] == {
        "hour": "2024-06-01T00:00",
        "s2xx": 2,
        "s3xx": 1,
        "s4xx": 1,
        "s5xx": 0,
        "s000": 0,
    }
    assert [(r["path"], r["hits"]) for r in log.top_not_found()] == [
        ("/favicon.ico", 1),
        ("/no-existe.html", 1),
    ]
    pages = {r["path"]: r["hits"] for r in log.top_paths("html")}
    assert pages == {"/index.html": 2, "/": 1}  # the robot's page is not counted
    assert {r["path"]: r["hits"] for r in log.top_paths("data")} == {"/datos/resultados.json": 2}
    results = {r["result"]: r["hits"] for r in log.result_types()}
    assert results == {"Hit": 4, "Error": 4, "Miss": 1, "RefreshHit": 1}
    assert log.robots() == [{"agent": GOOGLEBOT, "hits": 1}]
    assert log.edge_locations() == [{"location": "QRO", "hits": 10, "share": 1.0}]
    by_hour = {row["hour"]: row["hits"] for row in log.hour_of_day()}
    assert len(by_hour) == 24 and sum(by_hour.values()) == 10 and by_hour[0] == 6
    zoom = log.per_minute(datetime(2024, 6, 2, 0, 29), datetime(2024, 6, 2, 0, 32))
    assert zoom == [
        {"minute": "2024-06-02T00:29", "hits": 0, "errors": 0},
        {"minute": "2024-06-02T00:30", "hits": 2, "errors": 0},
        {"minute": "2024-06-02T00:31", "hits": 0, "errors": 0},
    ]


def test_paths_encoded_by_the_browser_and_again_by_cloudfront_are_shown_as_typed(tmp_path):
    # the browser sends /ayuntamientos/comond%C3%BA.html; CloudFront logs %25C3%25BA
    record = _request("2024-06-01 08:00:00", *A, "/ayuntamientos/comond%C3%BA.html", 200, "Hit")
    assert "/ayuntamientos/comond%25C3%25BA.html" in record.line()
    shield = replace(record, result_type="Miss", detailed_result_type="OriginShieldHit")
    _write(tmp_path, _at("2024-06-01 08:00:00"), "a", [record.line(), shield.line()])
    log = TrafficLog(sorted(tmp_path.glob("*.gz")), PERIOD)
    assert log.top_paths("html") == [
        {"path": "/ayuntamientos/comondú.html", "hits": 2, "bytes": 2000}
    ]
    figures = log.key_figures()
    assert (figures.cache_hit_ratio, figures.origin_shield_hits) == (0.5, 1)
    assert log.detailed_results() == [{"detailed": "OriginShieldHit", "hits": 1}]


def test_browsers_systems_and_devices_parse_the_most_frequent_agents(logs: list[Path]):
    log = TrafficLog(logs, PERIOD)
    agents = log.agents()
    # A and C share Chrome on Windows (5 + 1 hits), B is Firefox on Linux (3); not the robot
    assert {a["name"]: a["hits"] for a in agents["browsers"]} == {"Chrome": 6, "Firefox": 3}
    assert {a["name"]: a["hits"] for a in agents["systems"]} == {"Windows": 6, "Linux": 3}
    assert {a["name"]: a["hits"] for a in agents["devices"]} == {"computadora": 9}
    # past the most frequent ones, agents are counted, not parsed
    capped = log.agents(parsed=1)
    assert {a["name"]: a["hits"] for a in capped["browsers"]} == {
        "Chrome": 6,
        "sin analizar": 3,
    }

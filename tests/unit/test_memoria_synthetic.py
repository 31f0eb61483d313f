"""Synthetic CloudFront logs: CloudFront's format and naming, and an election night's shape."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from difusion.cli import main
from difusion.memoria.log_format import FIELDS, HEADER, hour_of
from difusion.memoria.synthetic import TrafficSpec, generate_logs
from difusion.memoria.traffic import Period, TrafficLog

SPEC = TrafficSpec(requests=3000, first_day=date(2024, 6, 1), last_day=date(2024, 6, 3))
# election night, 20:00-02:00 in Baja California Sur (UTC-7)
NIGHT = (datetime(2024, 6, 3, 3, tzinfo=UTC), datetime(2024, 6, 3, 9, tzinfo=UTC))


def _lines(files: tuple[Path, ...]) -> list[tuple[Path, list[str]]]:
    out = []
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            text = f.read()
        assert text.startswith(HEADER)
        out.append((path, text[len(HEADER) :].splitlines()))
    return out


def test_the_files_are_cloudfronts_and_hold_each_request_in_its_hours_file(tmp_path: Path):
    logs = generate_logs(SPEC, tmp_path)
    assert logs.lines == 3000 and 0 < logs.late_lines < 3000
    total, unsorted = 0, 0
    for path, lines in _lines(logs.files):
        hour = hour_of(path.name)
        assert hour is not None and path.parent == tmp_path / "cloudfront"
        stamps = []
        for line in lines:
            fields = line.split("\t")
            assert len(fields) == len(FIELDS) == 33
            at = datetime.fromisoformat(f"{fields[0]}T{fields[1]}+00:00")
            assert hour <= at < hour + timedelta(hours=1)
            assert " " not in line
            stamps.append(at)
        unsorted += stamps != sorted(stamps)
        total += len(lines)
    assert total == 3000
    assert unsorted > len(logs.files) / 2  # records within a file are in no time order
    late = [p for p in logs.files if ".late" in p.name or "late" in p.name.split(".")[2]]
    assert late and all(hour_of(p.name) is not None for p in late)


def test_most_requests_fall_on_election_night_and_robots_errors_and_aborts_appear(tmp_path: Path):
    logs = generate_logs(SPEC, tmp_path)
    night = sum(
        len(lines)
        for path, lines in _lines(logs.files)
        if NIGHT[0] <= hour_of(path.name) < NIGHT[1]
    )
    assert 0.75 * 3000 <= night <= 0.85 * 3000
    figures = TrafficLog(logs.files, Period(SPEC.first_day, SPEC.last_day, SPEC.time_zone))
    key = figures.key_figures()
    assert key.hits == 3000 and key.malformed_lines == 0
    assert key.robot_hits > 0 and key.errors > 0 and key.aborted > 0
    assert {r["result"] for r in figures.result_types()} >= {"Hit", "Miss", "RefreshHit", "Error"}
    assert len(figures.edge_locations()) > 1


def test_the_same_seed_writes_the_same_files(tmp_path: Path):
    first = generate_logs(SPEC, tmp_path / "a")
    second = generate_logs(SPEC, tmp_path / "b")
    assert [p.name for p in first.files] == [p.name for p in second.files]
    assert all(
        gzip.decompress(a.read_bytes()) == gzip.decompress(b.read_bytes())
        for a, b in zip(first.files, second.files, strict=True)
    )


def test_the_command_refuses_a_period_that_misses_the_election_day(tmp_path: Path, capsys):
    out = tmp_path / "logs"
    assert (
        main(["generate-logs", "--out", str(out), "--requests", "50", "--jornada", "2024-07-01"])
        == 2
    )
    assert "--jornada" in capsys.readouterr().err and not out.exists()
    assert (
        main(["generate-logs", "--out", str(out), "--requests", "50", "--zona", "Mars/Olympus"])
        == 2
    )
    assert main(["generate-logs", "--out", str(out), "--requests", "50"]) == 0
    assert "50 requests" in capsys.readouterr().out

"""The benchmark counts S3 requests from the emulator's own request log."""

from __future__ import annotations

from pathlib import Path

from difusion.local.bench import RequestLog, difusores


def test_requests_are_read_from_the_log_after_the_mark_and_filtered_by_bucket(tmp_path: Path):
    log = tmp_path / "emulator.log"
    log.write_text('127.0.0.1 - - [28/Nov/2026 13:05:04] "PUT /origin/early HTTP/1.1" 200 -\n')
    requests = RequestLog(log)
    requests.mark()
    with log.open("a") as out:
        out.write('127.0.0.1 - - [x] "PUT /site-a/index.html HTTP/1.1" 200 -\n')
        out.write('127.0.0.1 - - [x] "GET /origin/manifests/000001_x.json HTTP/1.1" 200 -\n')
        out.write('127.0.0.1 - - [x] "GET /site-b?list-type=2&prefix= HTTP/1.1" 200 -\n')
        out.write('127.0.0.1 - - [x] "POST / HTTP/1.1" 200 -\n')  # SQS, DynamoDB
    seen = requests.since_mark()
    assert len(seen) == 4
    assert RequestLog.s3(seen, {"site-a", "site-b"}) == [
        ("PUT", "/site-a/index.html"),
        ("GET", "/site-b?list-type=2&prefix="),
    ]
    assert RequestLog.s3(seen, {"origin"}) == [("GET", "/origin/manifests/000001_x.json")]


def test_up_to_five_difusores_each_in_its_own_account():
    five = difusores(5)
    assert len(five) == 5 and len({d.account_id for d in five}) == 5
    assert all(len(d.account_id) == 12 for d in five)


def test_the_ingest_subprocess_reports_its_own_peak_memory_not_its_parents():
    import subprocess
    import sys

    from difusion.local.bench import _peak_rss_mb

    # Given a parent holding 300 MB (the bench holds the generated series) when it starts
    # the measuring subprocess
    held = bytearray(300 * 1024 * 1024)
    held[::4096] = b"x" * len(held[::4096])  # touched: resident, not just reserved
    assert _peak_rss_mb() > 300
    child = subprocess.run(
        [sys.executable, "-c", "from difusion.local.bench import _peak_rss_mb as p; print(p())"],
        capture_output=True,
        text=True,
        check=True,
    )
    # Then the subprocess's peak is its own (ru_maxrss would carry the parent's over exec)
    assert 0 < float(child.stdout) < 200
    del held

"""The memoria against independent tools: GoAccess counts the same unique visitors on the
same logs, headless Chromium renders the page, and the logs are read from a log bucket."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from difusion.adapters.sessions import new_session
from difusion.cli import main
from difusion.memoria.synthetic import TrafficSpec, generate_logs
from difusion.memoria.traffic import Period, TrafficLog
from tests.integration.test_verify import ROOT

pytestmark = pytest.mark.integration

SCREENSHOTS = ROOT / "out" / "browser"
# GoAccess reads the logs' dates as they are (UTC) and has no list of robots matching ours:
# the same definition holds on a log without robots, in a period read in UTC.
SPEC = TrafficSpec(
    requests=6000,
    first_day=date(2024, 6, 1),
    last_day=date(2024, 6, 4),
    time_zone="UTC",
    robot_share=0.0,
    seed=11,
)


def _goaccess() -> str:
    path = shutil.which("goaccess")
    assert path, "GoAccess is not installed: `make tools` installs Debian's goaccess"
    return path


def test_goaccess_counts_the_same_unique_visitors_hits_and_bytes(tmp_path: Path):
    logs = generate_logs(SPEC, tmp_path / "logs")
    plain = tmp_path / "all.log"
    with plain.open("wb") as out:
        for path in logs.files:
            out.write(gzip.decompress(path.read_bytes()))
    report = tmp_path / "goaccess.json"
    subprocess.run(
        [_goaccess(), str(plain), "--log-format=CLOUDFRONT", "-o", str(report), "--no-progress"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    general = json.loads(report.read_text())["general"]
    ours = TrafficLog(logs.files, Period(SPEC.first_day, SPEC.last_day, "UTC")).key_figures()
    assert ours.unique_visitors == general["unique_visitors"] > 0
    assert ours.hits == general["total_requests"] == SPEC.requests
    assert ours.bytes == general["bandwidth"]
    # GoAccess refuses the 000 lines (no HTTP status) as failed requests; we count them apart
    assert ours.aborted == general["failed_requests"] > 0


def test_the_page_renders_in_chromium_and_the_logs_come_from_the_log_bucket(
    pipeline, tmp_path: Path, capsys
):
    # Given a difusor's log bucket holding CloudFront's files under cloudfront/
    spec = TrafficSpec(requests=4000, first_day=date(2024, 6, 1), last_day=date(2024, 6, 3))
    logs = generate_logs(spec, tmp_path / "logs")
    s3 = new_session().client("s3")
    s3.create_bucket(Bucket="difusor-logs")
    for path in logs.files:
        s3.upload_file(str(path), "difusor-logs", f"cloudfront/{path.name}")
    s3.put_object(Bucket="difusor-logs", Key="cloudfront/notas.txt", Body=b"no es un log")
    # When the difusor writes its memoria from the bucket
    out = tmp_path / "memoria"
    args = ["memoria", "--difusor", "uabcs", "--logs", "s3://difusor-logs/cloudfront/"]
    assert main([*args, "--desde", "2024-06-01", "--hasta", "2024-06-03", "--out", str(out)]) == 0
    assert "4000 solicitudes" in capsys.readouterr().out
    data = json.loads((out / "memoria-tecnica.json").read_text(encoding="utf-8"))
    assert data["log_files"] == len(logs.files) and data["key"]["malformed_lines"] == 0
    # Then headless Chromium renders the page: every section and figure, nothing fetched
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is not installed: `make tools` installs Debian's chromium"
    flags = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--disable-background-networking",
        "--window-size=1000,2400",
    ]
    url = (out / "memoria-tecnica.html").as_uri()
    dom = subprocess.run(
        [*flags, f"--user-data-dir={tmp_path / 'dom'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert dom.count("<svg") == 5 and "9. Criterios de mejora" in dom and "Glosario" in dom
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "memoria-tecnica.png"
    subprocess.run(
        [*flags, f"--user-data-dir={tmp_path / 'shot'}", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes().startswith(b"\x89PNG")
    # a bucket that is not there is a clear error
    assert (
        main(
            [
                *args[:4],
                "s3://no-existe/cloudfront/",
                "--desde",
                "2024-06-01",
                "--hasta",
                "2024-06-03",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "the logs cannot be read" in capsys.readouterr().err

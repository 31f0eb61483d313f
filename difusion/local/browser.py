"""Headless Chromium, for the verification pages: open a page, let its scripts finish, and
read what it shows (the tests, the benchmark). Debian's ``chromium`` (``make tools``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1000,1100",
)
_VERDICT = re.compile(r'<div id="veredicto" data-estado="([a-z]+)"[^>]*>([^<]*)<')
_SECONDS = re.compile(r'<body[^>]*\sdata-segundos="([0-9.]+)"')
_LONGEST = re.compile(r'<body[^>]*\sdata-tarea-mas-larga="([0-9]+)"')


class ChromiumMissing(RuntimeError):
    """Chromium is not installed."""


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise ChromiumMissing("Chromium is not installed: `make tools` installs Debian's chromium")
    return path


@dataclass(frozen=True)
class PageResult:
    """What a verification page showed when its scripts were done."""

    dom: str
    state: str  # the verdict's data-estado: verificado, fallido, error, pendiente
    verdict: str
    seconds: float | None  # the page's own measure of its check (data-segundos)
    longest_task_ms: int | None = None  # its longest main-thread task while checking


def open_page(
    url: str,
    profile: Path | None = None,
    screenshot: Path | None = None,
    *,
    budget_ms: int = 30_000,
    timeout: float = 180,
) -> PageResult:
    """Open ``url``, wait for its scripts (up to ``budget_ms`` of virtual time), and return
    the verdict; with ``screenshot``, a second load is photographed there."""
    chromium = chromium_path()
    with tempfile.TemporaryDirectory() as scratch:
        base = profile or Path(scratch)
        flags = [chromium, *FLAGS, f"--virtual-time-budget={budget_ms}"]
        dom = subprocess.run(
            [*flags, f"--user-data-dir={base / 'dom'}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [*flags, f"--user-data-dir={base / 'shot'}", f"--screenshot={screenshot}", url],
                capture_output=True,
                timeout=timeout,
                check=True,
            )
    verdict = _VERDICT.search(dom)
    seconds = _SECONDS.search(dom)
    longest = _LONGEST.search(dom)
    return PageResult(
        dom=dom,
        state=verdict[1] if verdict else "",
        verdict=verdict[2] if verdict else "",
        seconds=float(seconds[1]) if seconds else None,
        longest_task_ms=int(longest[1]) if longest else None,
    )

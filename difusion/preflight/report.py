"""Preflight's report: a table for a person, JSON for a script or another preflight."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from difusion.preflight.checks import CheckResult
from difusion.preflight.outputs import OutputsError, read_json

EXIT_OK = 0
EXIT_FAILED = 1  # some line is ✗
EXIT_USAGE = 2


def exit_code(results: Sequence[CheckResult]) -> int:
    return EXIT_OK if results and all(r.ok for r in results) else EXIT_FAILED


def to_json(results: Sequence[CheckResult]) -> str:
    return json.dumps([r.to_json() for r in results], indent=2, ensure_ascii=False)


def print_table(results: Sequence[CheckResult], title: str, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=title, title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("subject", overflow="fold")
    table.add_column("", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for r in results:
        mark = "[green]✓[/green]" if r.ok else "[bold red]✗[/bold red]"
        table.add_row(r.check, r.subject, mark, r.reason)
    console.print(table)
    failed = sum(1 for r in results if not r.ok)
    verdict = "[green]all ✓[/green]" if not failed else f"[bold red]{failed} ✗[/bold red]"
    console.print(f"{len(results)} checks, {verdict}")


def load_report(path: Path) -> list[CheckResult]:
    """A report ``difusion preflight --json`` wrote (difusor mode's, for institute mode)."""
    raw = read_json(path, "preflight report (difusion preflight --json)")
    try:
        if not isinstance(raw, list):
            raise TypeError("not a list")
        return [CheckResult.from_json(item) for item in raw]
    except (KeyError, TypeError, AttributeError) as exc:
        raise OutputsError(
            f"{path}: not a preflight report (a list of check, subject, ok, reason): {exc}"
        ) from None

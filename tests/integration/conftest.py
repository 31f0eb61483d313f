"""One moto server per test worker; every test starts from a freshly provisioned pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from difusion.adapters import factory
from difusion.generator import SeriesSpec, Snapshot, generate_series
from difusion.local.browser import chromium_path
from difusion.local.clock import ControlledClock, PipelineClock, WallClock
from difusion.local.emulator import LocalEmulator
from difusion.local.pipeline import LocalPipeline, PipelineOptions
from difusion.signing import SecretKey

OPTIONS = PipelineOptions()  # accelerated time (pipeline.ACCELERATED), the stacks' receive count


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture(scope="session")
def emulator(work_dir: Path) -> Iterator[LocalEmulator]:
    with LocalEmulator(log_path=work_dir / "emulator.log") as emulator:
        yield emulator


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium for the verification pages (``make tools`` installs it)."""
    return chromium_path()


@pytest.fixture(scope="session")
def secret_key() -> SecretKey:
    return SecretKey.generate()


@pytest.fixture(scope="session")
def _session_pipeline(emulator: LocalEmulator, secret_key: SecretKey, work_dir: Path):
    with open(work_dir / "logs.jsonl", "w", encoding="utf-8") as log:
        pipeline = LocalPipeline(emulator, secret_key, OPTIONS, log_stream=log)
        yield pipeline, {"used": False}
        pipeline.close()


def provision_on(
    pipeline: LocalPipeline, options: PipelineOptions, clock: PipelineClock
) -> LocalPipeline:
    """Provision the session's pipeline anew with ``options`` on ``clock`` (a test's own
    window or clock); :func:`back_to_defaults` after the test."""
    pipeline.options, pipeline.clock = options, clock
    pipeline.reset()
    pipeline.dispatcher.handler_errors.clear()
    return pipeline


def on_election_night_periods(
    session_pipeline: tuple[LocalPipeline, dict], environment: dict[str, str], **options: object
) -> Iterator[LocalPipeline]:
    """The session's pipeline provisioned anew on a controlled clock at the start of a
    15-minute period (election night's), with ``environment`` for the functions; back to
    the defaults after the test. For a fixture to ``yield from``."""
    pipeline, state = session_pipeline
    state["used"] = True
    now = datetime.now(UTC).replace(microsecond=0)
    night = replace(
        OPTIONS,
        monitor_period_seconds=900,
        extra_environment=tuple(environment.items()),
        **options,  # type: ignore[arg-type]
    )
    clock = ControlledClock(now - timedelta(seconds=int(now.timestamp()) % 900))
    yield provision_on(pipeline, night, clock)
    back_to_defaults(pipeline)


def back_to_defaults(pipeline: LocalPipeline) -> None:
    """The default options on the wall clock again (the next test's reset provisions on
    them; the factory's clock is the wall clock from now on)."""
    pipeline.options, pipeline.clock = OPTIONS, WallClock()
    factory.use_clock(factory.wall_clock)


@pytest.fixture
def pipeline(_session_pipeline) -> LocalPipeline:
    pipeline, state = _session_pipeline
    if state["used"]:
        pipeline.reset()
    state["used"] = True
    pipeline.dispatcher.handler_errors.clear()
    return pipeline


@pytest.fixture(scope="session")
def series() -> list[Snapshot]:
    return generate_series(SeriesSpec.small(cuts=3))


@pytest.fixture
def packages(series: list[Snapshot], tmp_path: Path) -> list[Path]:
    return [snapshot.write_package(tmp_path / "packages") for snapshot in series]

"""The fault tier's slice: one moto server for the tier; the functions run in worker
subprocesses (``difusion.local.chaos``), each night on its own fresh deployment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from difusion.local.chaos import CRASH_TIME_SCALE, ChaosHarness, NightSpec, RunResult
from difusion.local.emulator import LocalEmulator

# Seeds of the slice: fixed, so a failure here replays with the command it prints.
NIGHT_SEED = 20240602
CRASH_SEED = 353
SLICE = NightSpec(cuts=3, casillas=8)


@pytest.fixture(scope="session")
def chaos_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEmulator]:
    work = tmp_path_factory.mktemp("chaos-emulator")
    with LocalEmulator(log_path=work / "emulator.log") as emulator:
        yield emulator


@contextmanager
def _environment_kept() -> Iterator[None]:
    """Whatever runs inside may set AWS settings; the environment is restored afterwards
    (the other tiers may share this pytest worker)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def _emulator_environment(chaos_emulator: LocalEmulator) -> Iterator[None]:
    """The tier's AWS settings for each test."""
    with _environment_kept():
        os.environ.update(chaos_emulator.environment())
        yield


@pytest.fixture(scope="session")
def night_harness(
    chaos_emulator: LocalEmulator, tmp_path_factory: pytest.TempPathFactory
) -> ChaosHarness:
    with _environment_kept():
        return ChaosHarness(chaos_emulator, tmp_path_factory.mktemp("chaos-nights"), SLICE)


@pytest.fixture(scope="session")
def crash_harness(
    chaos_emulator: LocalEmulator, tmp_path_factory: pytest.TempPathFactory
) -> ChaosHarness:
    spec = NightSpec(cuts=SLICE.cuts, casillas=SLICE.casillas, time_scale=CRASH_TIME_SCALE)
    with _environment_kept():
        return ChaosHarness(chaos_emulator, tmp_path_factory.mktemp("chaos-crash"), spec)


@pytest.fixture(scope="session")
def clean_night(crash_harness: ChaosHarness) -> tuple[int, RunResult]:
    """A night without faults or crashes: the calls it makes, and what it left."""
    with _environment_kept():
        os.environ.update(crash_harness.emulator.environment())
        return crash_harness.calls_in_a_clean_night()


def explain(result: RunResult, replay: str) -> str:
    """A failure message: every rule broken, and the command that replays the run."""
    return "\n".join(
        [f"{result.name} broke {len(result.findings.violations)} rule(s); replay: {replay}"]
        + [f"  - {v}" for v in result.findings.violations]
    )

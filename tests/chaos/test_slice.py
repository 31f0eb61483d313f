"""The slice of ``make chaos`` that ``make test`` runs: one short night at 5 % faults and a
few kill points, with fixed seeds (``make chaos`` draws new ones every time)."""

from __future__ import annotations

import pytest

from difusion.local.chaos import ChaosHarness, RunResult, draw_kill_points
from tests.chaos.conftest import CRASH_SEED, NIGHT_SEED, SLICE, explain

pytestmark = [pytest.mark.chaos, pytest.mark.xdist_group("chaos")]

KILL_POINTS = 2


def test_a_night_with_5_percent_of_the_functions_calls_failing_converges(
    night_harness: ChaosHarness,
):
    result = night_harness.night(NIGHT_SEED, 0.05)
    replay = (
        f"python -m difusion.local.chaos nights --rate 0.05 --nights 1 --seed {NIGHT_SEED} "
        f"--cuts {SLICE.cuts} --casillas {SLICE.casillas}"
    )
    assert result.ok, explain(result, replay)
    assert result.findings.figures["deliveries"]["made"] == SLICE.cuts * SLICE.difusores


@pytest.mark.parametrize("index", range(KILL_POINTS))
def test_the_functions_killed_at_a_random_call_converge_when_run_again(
    crash_harness: ChaosHarness, clean_night: tuple[int, RunResult], index: int
):
    calls, _ = clean_night
    kill = draw_kill_points(CRASH_SEED, calls, KILL_POINTS)[index]
    result = crash_harness.kill_point(kill)
    replay = (
        f"python -m difusion.local.chaos crash --kill-at {kill.call}"
        f"{' --after' if kill.after else ''} --cuts {SLICE.cuts} --casillas {SLICE.casillas}"
    )
    assert result.ok, explain(result, replay)

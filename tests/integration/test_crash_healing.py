"""A step whose process dies is healed within minutes of election night, by the step's own
retry, not by the monitor: its heartbeat stops, its message, idempotency record and lease
lapse within one hold (``topology.STEP_HOLD_SECONDS``) and the queue hands the work out again.

Measured in story time, from the kill to every difusor serving the cut. SQS's visibility
(the emulator's) runs on the wall clock, so the elapsed time is the wall clock's divided by
the time scale (``PipelineOptions.time_scale``), the one thing here that reads it. A
monitor period runs during each stall: the institute's stall never counts against the
difusor it held back.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from difusion.adapters.ledger.deliveries import DeliveryRecords
from difusion.local.dispatcher import InvocationDied
from difusion.local.pipeline import LocalPipeline, PipelineOptions
from difusion.manifest import Manifest
from difusion.publication import MANIFEST_PATH
from difusion.services.ingest import IngestService
from difusion.services.replicate import ReplicateService
from difusion.services.sign import SignService
from tests.integration.conftest import OPTIONS

pytestmark = pytest.mark.integration

# One hold is 3 s of wall time, one story minute; the queues' visibility timeout 270 s (so
# a crash healed only by it would not finish within the test's bound).
TIME_SCALE = 0.05
# The goal is five story minutes (measured 174-229 s on an idle machine). Story time here is
# wall time over the scale, so a loaded machine stretches it: in `make test` the bound is a
# guard four times the goal, far under the 90 story minutes the queue's own visibility
# timeout took before; `make chaos` runs this file with the goal itself
# (DIFUSION_HEAL_BOUND_SECONDS=300), on a machine left alone.
GOAL_STORY_SECONDS = 5 * 60
BOUND_STORY_SECONDS = float(
    os.environ.get("DIFUSION_HEAL_BOUND_SECONDS", str(4 * GOAL_STORY_SECONDS))
)
VICTIM = "canal-10-los-cabos"


@pytest.fixture
def scaled(_session_pipeline):
    pipeline, state = _session_pipeline
    state["used"] = True
    pipeline.options = PipelineOptions(time_scale=TIME_SCALE)
    pipeline.reset()
    yield pipeline
    pipeline.options = OPTIONS


class KillPoint:
    """Dies once, as a killed Lambda does, where ``patch`` puts it; remembers when."""

    def __init__(self) -> None:
        self.at: float | None = None
        self._lock = threading.Lock()

    def die(self, where: str) -> None:
        with self._lock:
            if self.at is not None:
                return
            self.at = time.monotonic()
        raise InvocationDied(f"killed {where}")


def _dies_in_ingest(monkeypatch: pytest.MonkeyPatch, kill: KillPoint) -> None:
    ingest = IngestService.ingest

    def dying(self: IngestService, *args: Any, **kwargs: Any) -> Any:
        kill.die("in ingest")
        return ingest(self, *args, **kwargs)

    monkeypatch.setattr(IngestService, "ingest", dying)


def _dies_in_sign(monkeypatch: pytest.MonkeyPatch, kill: KillPoint) -> None:
    sign = SignService.sign

    def dying(self: SignService, request: Any) -> Any:
        kill.die("in sign")
        return sign(self, request)

    monkeypatch.setattr(SignService, "sign", dying)


def _dies_holding_the_lease(monkeypatch: pytest.MonkeyPatch, kill: KillPoint) -> None:
    publish = ReplicateService._publish

    def dying(self: ReplicateService, request: Any, site: Any) -> Any:
        if request.difusor_id == VICTIM:
            kill.die("with the lease taken, nothing copied")
        return publish(self, request, site)

    monkeypatch.setattr(ReplicateService, "_publish", dying)


def _dies_mid_copy(monkeypatch: pytest.MonkeyPatch, kill: KillPoint) -> None:
    copy_step = ReplicateService._copy_step
    copied: list[str] = []

    def dying(self: ReplicateService, site: Any, prefix: str, step: Any) -> None:
        if site.difusor.difusor_id == VICTIM:
            copied.append(step.path)
            if len(copied) > 2:
                kill.die("mid-copy")
        copy_step(self, site, prefix, step)

    monkeypatch.setattr(ReplicateService, "_copy_step", dying)


def _dies_after_the_switch(monkeypatch: pytest.MonkeyPatch, kill: KillPoint) -> None:
    finish = DeliveryRecords.finish_delivery

    def dying(self: DeliveryRecords, request: Any, outcome: Any, at: Any) -> None:
        if request.difusor_id == VICTIM:
            kill.die("after the switch, before the ledger's record")
        finish(self, request, outcome, at)

    monkeypatch.setattr(DeliveryRecords, "finish_delivery", dying)


KILLS: dict[str, Callable[[pytest.MonkeyPatch, KillPoint], None]] = {
    "ingest": _dies_in_ingest,
    "sign": _dies_in_sign,
    "replicate-lease-taken": _dies_holding_the_lease,
    "replicate-mid-copy": _dies_mid_copy,
    "replicate-after-switch": _dies_after_the_switch,
}


def _serving(pipeline: LocalPipeline, sequence: int) -> bool:
    """Every difusor's site serves the cut (its live version's manifest), as a visitor
    reads it, and the ledger records it so (a kill after the switch left it behind)."""
    for difusor in pipeline.deployment.difusores:
        published = pipeline.ledger.published(difusor.difusor_id)
        if published is None or published.sequence != sequence:
            return False
        served = pipeline.site_objects(difusor.difusor_id).get(MANIFEST_PATH)
        if served is None or Manifest.from_bytes(served).sequence != sequence:
            return False
    return True


@pytest.mark.parametrize("step", list(KILLS))
def test_a_step_killed_midway_is_healed_within_five_minutes_of_story_time(
    scaled: LocalPipeline, packages, monkeypatch, step
):
    pipeline = scaled
    pipeline.process(packages[0])
    kill = KillPoint()
    # Given the next cut's step killed at a point inside its work
    KILLS[step](monkeypatch, kill)
    pipeline.upload(packages[1])
    checks: list[dict[str, Any]] = []
    period = threading.Thread(target=lambda: checks.append(pipeline.run_monitor_period()))
    deadline = time.monotonic() + 2 * BOUND_STORY_SECONDS * TIME_SCALE  # then it failed
    while not _serving(pipeline, 2):
        pipeline.settle(timeout=60)
        if kill.at is not None and not period.is_alive() and not checks:
            # The institute stalls the cut: a monitor period runs meanwhile, as scheduled
            period.start()
        assert time.monotonic() < deadline, f"{step}: not healed"
    healed_at = time.monotonic()
    period.join()
    # Then the kill happened, and every difusor serves the cut within the bound (the goal,
    # five story minutes, under `make chaos`)
    assert kill.at is not None
    story_seconds = (healed_at - kill.at) / TIME_SCALE
    print(f"{step}: kill to every difusor serving the cut: {story_seconds:.0f} s of story")
    assert story_seconds <= BOUND_STORY_SECONDS
    # without the monitor's catch-up, and with no dead letter
    assert not any("catch_up" in a for report in checks for a in report["actions"])
    assert pipeline.dead_letters("deliveries") == []
    # And the stall counted against no difusor: no failed check, no incident
    assert checks and all(
        c["outcome"] in ("ok", "updating") for report in checks for c in report["checks"]
    ), checks
    ledger = pipeline.ledger
    assert ledger.items("INCIDENT#") == []
    for difusor in pipeline.deployment.difusores:
        assert ledger.monitor_state(difusor.difusor_id).consecutive_failures == 0
        published = ledger.published(difusor.difusor_id)
        assert published is not None and published.sequence == 2

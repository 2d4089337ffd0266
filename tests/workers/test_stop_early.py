"""Stopping a training early through the engine, with the selftest kind (its stop file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.engine import WaitForState, selftest
from tests.helpers.waiting import eventually
from workers.engine import Engine
from workers.errors import PlotError, StopEarlyError
from workers.jobs import Action, JobState
from workers.kinds.base import STOPPED_EARLY


async def test_a_training_stopped_early_keeps_its_model_and_succeeds(
    engine: Engine,
    wait_for_state: WaitForState,
) -> None:
    job = engine.submit(selftest(steps="100000", delay="0.02"))
    await eventually(lambda: (engine.job(job.id).progress.step or 0) >= 3, what="three steps")
    assert engine.stop_early(job.id, dry_run=True).name == "selftest train"
    assert not (engine.workdir(job.id) / "work" / "stop-early").exists()
    step = engine.stop_early(job.id)
    assert step.stops_when == "after its current step"
    done = await wait_for_state(engine, job.id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.summary.startswith("selftest train: stopped early at step ")
    assert done.summary.endswith(" of 100000")
    kept = {o.role: Path(o.path) for o in engine.store.outputs(job.id)}
    assert (kept["model"] / "weights.json").is_file()
    assert (engine.workdir(job.id) / STOPPED_EARLY).read_text().count("selftest train") == 1


async def test_only_a_running_training_stops_early(
    engine: Engine, wait_for_state: WaitForState
) -> None:
    done = engine.submit(selftest(steps="1", delay="0"))
    await wait_for_state(engine, done.id)
    with pytest.raises(StopEarlyError, match="it is succeeded, not training"):
        engine.stop_early(done.id)
    inferring = engine.submit(selftest(Action.INFER, model=str(done.id), steps="1"))
    with pytest.raises(StopEarlyError, match="only training stops early"):
        engine.stop_early(inferring.id)
    await wait_for_state(engine, inferring.id)
    with pytest.raises(PlotError, match="only training jobs have a loss to draw"):
        await engine.plot(inferring.id)
    with pytest.raises(PlotError, match="selftest jobs draw no loss"):
        await engine.plot(done.id)


async def test_a_queued_training_has_nothing_to_stop_or_draw_yet(
    engine: Engine, wait_for_state: WaitForState
) -> None:
    # Two run at a time here, so the third waits in the queue.
    running = [engine.submit(selftest(steps="100000", delay="0.02")) for _ in range(2)]
    queued = engine.submit(selftest(steps="1"))
    with pytest.raises(StopEarlyError, match="it is queued, not training"):
        engine.stop_early(queued.id)
    with pytest.raises(PlotError, match="it has not started yet"):
        await engine.plot(queued.id)
    for job in (queued, *running):
        await engine.cancel(job.id)
    for job in running:
        assert (await wait_for_state(engine, job.id)).state is JobState.CANCELLED

"""Steps on a real one-machine Slurm cluster (one dummy GPU) through the engine: a pending
step cancelled, a restarted engine that re-attaches (also to a step that ended while it was
away), a job Slurm forgot, refusals, and a node that fails. A step that succeeds (its output
redacted, the raw file removed) is in test_clusters.py, as on Ray."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.clusters.slurm_cluster import SlurmCluster
from tests.helpers.clusters import EngineOn, slurm_executor
from tests.helpers.engine import WaitForState, selftest
from tests.helpers.waiting import eventually
from workers.engine import Engine
from workers.errors import ExecutorError, StepLostError
from workers.events import EventType
from workers.executors.base import Launch, Placement
from workers.jobs import JobState

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def slurm_engine(on_slurm: SlurmCluster, engine_on: EngineOn) -> Callable[..., Awaitable[Engine]]:
    """``await slurm_engine(**changes)`` -> a started engine whose steps run on the test
    cluster (``changes`` to its settings)."""

    async def make(**changes: object) -> Engine:
        return await engine_on(slurm_executor(secrets.token_hex(4), **changes))

    return make


async def test_a_step_still_pending_is_cancelled_at_once(
    slurm_engine: Callable[..., Awaitable[Engine]], on_slurm: SlurmCluster
) -> None:
    engine = await slurm_engine(gres="gpu:1")
    first = engine.submit(selftest(steps=400, delay=0.25, gpu="yes"))

    def where(job_id: int) -> tuple[str | None, str | None]:
        place = engine.placement(job_id)
        return (place.waiting, place.node) if place is not None else (None, None)

    await eventually(lambda: where(first.id)[1] == "node1", 60, "the first job to run", every=0.1)
    place = engine.placement(first.id)
    assert place is not None and place.ends_at is not None
    second = engine.submit(selftest(steps=3, gpu="yes"))
    await eventually(
        lambda: where(second.id)[0] == "waiting: Resources", 60, "the second job to wait", every=0.1
    )
    slurm_job = (engine.placement(second.id) or Placement()).job
    cancelled = await asyncio.wait_for(engine.cancel(second.id), 30)
    assert cancelled.state is JobState.CANCELLED
    assert on_slurm.state(slurm_job) == "CANCELLED"
    log = engine.log_path(second.id).read_text()
    assert "selftest: got" not in log  # it never started, so nothing was signalled


async def test_a_restarted_engine_follows_its_steps_again_even_one_that_ended_meanwhile(
    slurm_engine: Callable[..., Awaitable[Engine]],
    on_slurm: SlurmCluster,
    wait_for_state: WaitForState,
) -> None:
    first = await slurm_engine()
    long = first.submit(selftest(steps=16, delay=0.25))
    short = first.submit(selftest(steps=2, delay=0.25))
    await eventually(
        lambda: (first.job(long.id).progress.step or 0) >= 3, 90, "a few steps", every=0.1
    )
    await eventually(
        lambda: bool((first.placement(short.id) or Placement()).job),
        30,
        "the short one to be submitted",
        every=0.1,
    )
    short_slurm_job = (first.placement(short.id) or Placement()).job
    await first.stop()  # a cluster's steps outlive colabot: these detach
    assert first.store.get_job(short.id).state is JobState.RUNNING
    first.store.close()
    # The short one ends on the cluster while no colabot watches.
    await eventually(
        lambda: on_slurm.state(short_slurm_job) == "COMPLETED", 60, "it to end", every=0.1
    )
    second = await slurm_engine()
    for job in (long, short):
        done = await wait_for_state(second, job.id, timeout=120)
        assert done.state is JobState.SUCCEEDED, done.error
        types = [e.type for e in second.store.events_for(job.id)]
        assert types.count(EventType.STARTED) == 1 and types.count(EventType.SUCCEEDED) == 1
    log = second.log_path(long.id).read_text()
    assert log.count("progress 16/16") == 1 and log.count("progress 2/16") == 1
    assert log.count("=== colabot step: selftest train ===") == 1


async def test_a_job_slurm_no_longer_knows_is_lost(on_slurm: SlurmCluster, tmp_path: Path) -> None:
    executor = slurm_executor("t")
    launch = Launch(1, 0, "train", (), {}, tmp_path)
    with pytest.raises(StepLostError, match="no longer says how"):
        await executor.reattach({"slurm_job": "987654", "output": str(tmp_path / "x")}, launch)


async def test_refusals_are_one_line(
    on_slurm: SlurmCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    unknown = slurm_executor("t", partition="gpu-big")
    with pytest.raises(ExecutorError, match=r"no partition 'gpu-big' on this cluster.*debug"):
        await unknown.connect()
    monkeypatch.setenv("PATH", str(tmp_path))
    bare = slurm_executor("t")
    with pytest.raises(ExecutorError, match="sbatch is not on PATH"):
        await bare.connect()


async def test_a_step_whose_node_fails_interrupts_the_job_and_resume_finishes_it(
    slurm_engine: Callable[..., Awaitable[Engine]],
    on_slurm: SlurmCluster,
    wait_for_state: WaitForState,
) -> None:
    engine = await slurm_engine()
    job = engine.submit(selftest(steps=40, delay=0.25))
    await eventually(
        lambda: (engine.job(job.id).progress.step or 0) >= 2, 60, "progress", every=0.1
    )
    down = on_slurm.run("scontrol", "update", "nodename=node1", "state=down", "reason=test")
    assert down.returncode == 0, down.stderr
    try:
        lost = await wait_for_state(engine, job.id, {JobState.INTERRUPTED}, timeout=60)
        assert lost.error is not None and "NODE_FAIL" in lost.error, lost.error
        assert "the node it ran on (node1) failed" in lost.error
    finally:
        on_slurm.run("scontrol", "update", "nodename=node1", "state=resume")
    await eventually(
        lambda: on_slurm.node_state() == "idle", 30, "the node to come back", every=0.1
    )
    engine.resume(job.id)
    done = await wait_for_state(engine, job.id, timeout=120)
    assert done.state is JobState.SUCCEEDED and done.attempt == 2, done.error

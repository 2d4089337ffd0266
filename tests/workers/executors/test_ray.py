"""Steps on a real Ray head (token auth, one logical GPU) through the engine: GPU scheduling,
cancel, a colabot that restarts mid-step, a head that goes away, and refusals. A step that
succeeds and is listed is in test_clusters.py, as on Slurm."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.clusters.ray_head import RayHead
from tests.helpers.clusters import EngineOn, ray_executor, ray_jobs
from tests.helpers.engine import WaitForState, selftest
from tests.helpers.waiting import eventually
from workers.engine import Engine
from workers.errors import ExecutorError
from workers.events import EventType
from workers.executors.base import Placement
from workers.jobs import JobState

pytestmark = pytest.mark.timeout(300)

pytest.importorskip(
    "ray.job_submission", reason="SKIPPED LOUDLY: Ray is not installed (colabot[ray])"
)
from workers.executors.ray import RayExecutor  # noqa: E402
from workers.executors.settings import RaySettings  # noqa: E402


@pytest.fixture
def ray_engine(ray_head: RayHead, engine_on: EngineOn) -> Callable[..., Awaitable[Engine]]:
    """``await ray_engine()`` -> a started engine whose steps run on the session's head."""
    instance = secrets.token_hex(4)  # one colabot (one data folder), restarted

    async def make(head: RayHead = ray_head, lost_after_s: float = 20.0) -> Engine:
        return await engine_on(ray_executor(head, instance, lost_after_s=lost_after_s))

    return make


async def test_two_gpu_jobs_on_one_gpu_the_second_waits_and_says_so(
    ray_engine: Callable[..., Awaitable[Engine]], wait_for_state: WaitForState
) -> None:
    engine = await ray_engine()
    jobs = [engine.submit(selftest(steps=20, delay=0.25, gpu="yes")) for _ in range(2)]

    def on_node(job_id: int) -> bool:
        place = engine.placement(job_id)
        return place is not None and place.node is not None

    # Ray starts either one first; the other must then wait for the only GPU.
    await eventually(lambda: any(on_node(j.id) for j in jobs), 90, "one job to run", every=0.1)
    running, other = jobs if on_node(jobs[0].id) else jobs[::-1]
    waiting = engine.placement(other.id)
    assert waiting is not None and waiting.node is None
    assert waiting.waiting and "waiting for a free GPU on the cluster" in waiting.waiting
    for job in jobs:
        assert (await wait_for_state(engine, job.id, timeout=180)).state is JobState.SUCCEEDED
    ended = [engine.store.get_job(j.id).finished_at or 0 for j in (running, other)]
    assert ended[0] <= ended[1], "the waiting job ran only after the other freed the GPU"


async def test_cancel_stops_the_ray_job(
    ray_engine: Callable[..., Awaitable[Engine]], ray_head: RayHead
) -> None:
    engine = await ray_engine()
    job = engine.submit(selftest(steps=400, delay=0.25))
    await eventually(
        lambda: engine.job(job.id).progress.step is not None, 90, "progress", every=0.1
    )
    submission = (engine.placement(job.id) or Placement()).job
    assert submission.startswith("colabot-")
    cancelled = await asyncio.wait_for(engine.cancel(job.id), 30)
    assert cancelled.state is JobState.CANCELLED
    await eventually(
        lambda: ray_jobs(ray_head)[submission][0] == "STOPPED", 30, "Ray to stop it", every=0.1
    )


async def test_a_restarted_engine_follows_the_step_again_and_events_come_once(
    ray_engine: Callable[..., Awaitable[Engine]], wait_for_state: WaitForState
) -> None:
    first = await ray_engine()
    job = first.submit(selftest(steps=16, delay=0.25))
    await eventually(
        lambda: (first.job(job.id).progress.step or 0) >= 3, 90, "a few steps", every=0.1
    )
    await first.stop()  # a cluster's steps outlive colabot: this one detaches
    assert first.store.get_job(job.id).state is JobState.RUNNING
    first.store.close()
    second = await ray_engine()
    done = await wait_for_state(second, job.id, timeout=120)
    assert done.state is JobState.SUCCEEDED, done.error
    types = [e.type for e in second.store.events_for(job.id)]
    assert types.count(EventType.STARTED) == 1 and types.count(EventType.SUCCEEDED) == 1
    log = second.log_path(job.id).read_text()
    assert log.count("progress 16/16") == 1 and log.count("progress 2/16") == 1
    assert log.count("=== colabot step: selftest train ===") == 1


async def test_a_head_that_goes_away_interrupts_the_job_and_resume_finishes_it(
    ray_engine: Callable[..., Awaitable[Engine]],
    start_ray_head: Callable[..., RayHead],
    wait_for_state: WaitForState,
) -> None:
    doomed = start_ray_head()
    engine = await ray_engine(doomed, lost_after_s=3.0)
    job = engine.submit(selftest(steps=40, delay=0.25))
    await eventually(
        lambda: engine.job(job.id).progress.step is not None, 90, "progress", every=0.1
    )
    await asyncio.to_thread(doomed.stop)
    lost = await wait_for_state(engine, job.id, {JobState.INTERRUPTED}, timeout=60)
    assert lost.state is JobState.INTERRUPTED
    assert "Ray cluster" in (lost.error or "") and "lost" in (lost.error or "")
    await engine.stop()
    engine.store.close()
    fresh = start_ray_head()
    again = await ray_engine(fresh)
    again.resume(job.id)
    done = await wait_for_state(again, job.id, timeout=180)
    assert done.state is JobState.SUCCEEDED and done.attempt == 2


async def test_refusals_are_one_line(ray_head: RayHead) -> None:
    nothing = RayExecutor(RaySettings("http://127.0.0.1:9", "x"), "t", request_timeout_s=5)
    with pytest.raises(
        ExecutorError, match=r"cannot reach the Ray cluster at http://127\.0\.0\.1:9"
    ):
        await nothing.connect()
    wrong = ray_executor(ray_head, token="wrong-token")
    with pytest.raises(ExecutorError, match="refused the token"):
        await wrong.connect()
    missing = ray_executor(ray_head, token="")
    with pytest.raises(ExecutorError, match="needs a token"):
        await missing.connect()


async def test_a_cluster_that_does_not_see_the_data_folder_is_refused(
    start_ray_head: Callable[..., RayHead], tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: hiding a folder from the Ray node needs root (unshare)")
    folder = tmp_path / "not-shared"
    folder.mkdir()
    apart = start_ray_head(hide=folder)
    blind = ray_executor(apart)
    with pytest.raises(ExecutorError, match="does not share colabot's data folder") as caught:
        await blind.probe_shared(folder)
    assert str(folder) in caught.value.reason
    await blind.close()

"""Keeping jobs across runtimes: the snapshot, checkpoint sync, kept uploads, carry-over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers.engine import WaitForState
from workers.engine import Engine, EngineSettings
from workers.jobs import Action, CheckpointNote, Job, JobSpec, JobState, Progress
from workers.kinds.registry import default_registry
from workers.results.durability import JobRecord, Keeper, Snapshot, lost_jobs
from workers.results.local import LocalResults
from workers.sharing.owners import Owner
from workers.store.database import Store


def make_job(job_id: int, state: JobState) -> Job:
    return Job(
        id=job_id,
        spec=JobSpec("selftest", Action.TRAIN, {}, {"steps": 3}, uploads={"input": "a.txt"}),
        state=state,
        created_at=1.0,
        started_at=2.0,
        progress=Progress(step=2, total=3, message="step 2 of 3"),
        origin={"chat_id": 5},
        checkpoint="job-1/checkpoint/step-2.json",
        owner=Owner(5, "@alice") if job_id == 1 else None,
    )


def test_snapshot_round_trip() -> None:
    snapshot = Snapshot(
        10.0,
        [
            JobRecord(
                make_job(1, JobState.RUNNING),
                {"a.txt": "loc"},
                CheckpointNote("loc2", 9.0, "step 2 of 3"),
            ),
            JobRecord(make_job(2, JobState.FAILED), {}, None),
        ],
    )
    assert Snapshot.from_bytes(snapshot.to_bytes()) == snapshot


@pytest.mark.parametrize("data", [b"", b"[]", b'{"version": 99}', b'{"version": 1}', b"\xff"])
def test_a_corrupt_snapshot_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="snapshot"):
        Snapshot.from_bytes(data)


def test_lost_jobs_are_the_unfinished_ones_this_store_lacks() -> None:
    records = [
        JobRecord(make_job(i, s))
        for i, s in enumerate(
            [
                JobState.RUNNING,
                JobState.QUEUED,
                JobState.SUCCEEDED,
                JobState.INTERRUPTED,
                JobState.RUNNING,
            ],
            start=1,
        )
    ]
    lost = lost_jobs(Snapshot(0.0, records), known=lambda job_id: job_id == 5)
    assert [r.job.id for r in lost] == [1, 2, 4]


@pytest.fixture
def results(tmp_path: Path) -> LocalResults:
    return LocalResults(tmp_path / "results")


@pytest.fixture
async def kept(
    engine_settings: EngineSettings, store: Store, results: LocalResults
) -> AsyncIterator[tuple[Engine, Keeper]]:
    engine = Engine(engine_settings, store, default_registry(), results=results)
    keeper = Keeper(engine, results, snapshot_delay_s=0.05)
    await engine.start()
    yield engine, keeper
    await engine.stop()
    await keeper.stop()


async def test_uploads_are_kept_and_restored_before_a_rerun(
    kept: tuple[Engine, Keeper],
    tmp_path: Path,
    results: LocalResults,
    wait_for_state: WaitForState,
) -> None:
    engine, keeper = kept
    upload = tmp_path / "sent.txt"
    upload.write_text("payload")
    job = engine.submit(
        JobSpec("selftest", Action.TRAIN, {}, {"steps": "1", "delay": "0", "fail": "yes"}),
        uploads={"input": upload},
    )
    await wait_for_state(engine, job.id)
    await asyncio.wait_for(asyncio.gather(*keeper._tasks), 10)
    assert (results.root / f"job-{job.id}" / "inputs" / "sent.txt").read_text() == "payload"
    (engine.workdir(job.id) / "inputs" / "sent.txt").unlink()
    engine.resume(job.id)
    done = await wait_for_state(engine, job.id)
    assert done.attempt == 2 and done.error == "the job was told to fail (fail=yes)"
    assert (engine.workdir(job.id) / "inputs" / "sent.txt").read_text() == "payload"


async def test_checkpoints_sync_only_when_they_change(
    kept: tuple[Engine, Keeper],
    results: LocalResults,
) -> None:
    engine, keeper = kept
    reached = asyncio.Event()
    engine.on_progress(lambda j, p: reached.set() if (p.step or 0) >= 2 else None)
    job = engine.submit(JobSpec("selftest", Action.TRAIN, {}, {"steps": "300", "delay": "0.05"}))
    await asyncio.wait_for(reached.wait(), 20)
    assert await keeper.sync_checkpoints() == [job.id]
    note = keeper.checkpoint_note(job.id)
    assert note is not None and note.progress.startswith("step ")
    assert engine.job(job.id).checkpoint == note.location
    assert (results.root / note.location).exists()
    await engine.cancel(job.id)


async def test_a_checkpoint_rotated_while_syncing_is_found_again(
    kept: tuple[Engine, Keeper],
    results: LocalResults,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, keeper = kept
    steps: asyncio.Queue[int] = asyncio.Queue()
    engine.on_progress(lambda j, p: steps.put_nowait(p.step or 0))
    job = engine.submit(
        JobSpec("selftest", Action.TRAIN, {}, {"steps": "100000", "delay": "0.001"})
    )
    saved = []
    for _ in range(40):
        await asyncio.wait_for(steps.get(), 20)
        saved.append(await keeper.sync_checkpoints())
    await engine.cancel(job.id)
    assert saved.count([job.id]) >= 10, saved
    assert "not saved" not in caplog.text
    note = keeper.checkpoint_note(job.id)
    assert note is not None and (results.root / note.location).exists()


async def test_a_new_runtime_carries_over_the_previous_ones_jobs(
    tmp_path: Path,
    results: LocalResults,
    engine_settings: EngineSettings,
) -> None:
    records = [
        JobRecord(
            make_job(7, JobState.RUNNING),
            checkpoint_note=CheckpointNote("job-7/checkpoint/x", 5.0, "step 2 of 3"),
        ),
        JobRecord(make_job(8, JobState.SUCCEEDED)),
    ]
    results.save_snapshot(Snapshot(100.0, records).to_bytes())
    store = Store(tmp_path / "fresh")
    engine = Engine(engine_settings, store, default_registry(), results=results)
    keeper = Keeper(engine, results)
    snapshot, lost = await keeper.carry_over()
    assert snapshot is not None and [r.job.id for r in lost] == [7]
    assert store.get_job(7).state is JobState.INTERRUPTED
    assert store.get_job(7).checkpoint == "job-1/checkpoint/step-2.json"
    assert store.get_job(8).state is JobState.SUCCEEDED
    assert keeper.checkpoint_note(7) == records[0].checkpoint_note
    assert store.add_job(JobSpec("selftest", Action.TRAIN)).id == 9
    _, again_lost = await keeper.carry_over()
    assert again_lost == []
    store.close()


async def test_an_unreadable_snapshot_is_ignored(
    tmp_path: Path,
    results: LocalResults,
    engine_settings: EngineSettings,
) -> None:
    results.save_snapshot(b"garbage")
    engine = Engine(engine_settings, Store(tmp_path / "s"), default_registry(), results=results)
    assert await Keeper(engine, results).carry_over() == (None, [])

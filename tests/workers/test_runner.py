"""The job runner on its own: the one decision from a step's end to its job's outcome, and a
whole job run with a store, an executor and a sink of its own, without an engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.helpers.waiting import eventually
from workers.events import Cancelled, Failed, Notice, Payload, Started, Succeeded
from workers.executors.local import LocalExecutor
from workers.inputs.resolve import InputResolver
from workers.jobs import Action, Job, JobSpec, JobState, Progress
from workers.kinds.registry import default_registry
from workers.runner import EngineSettings, JobRunner, RunnerParts
from workers.steprun import StepOutcome, StepResult, Verdict, step_outcome
from workers.store.database import Store
from workers.store.disk import DiskGuard

OK = StepResult(returncode=0, reason=None)
FAILED = StepResult(returncode=1, reason="exited with code 1")
CANCELLED = StepResult(returncode=-2, reason="cancelled", cancelled=True)
LOST = StepResult(returncode=None, reason="the cluster went away", lost=True)
PREEMPTED = StepResult(returncode=None, reason="preempted", resumable=True)
DISK_FULL = StepResult(returncode=None, reason="disk full", disk_full=True)


@pytest.mark.parametrize(
    ("result", "cancel_requested", "free_mb", "expected"),
    [
        (OK, False, 500.0, StepOutcome(Verdict.NEXT)),
        (OK, False, 0.0, StepOutcome(Verdict.NEXT)),
        (FAILED, False, 500.0, StepOutcome(Verdict.FAILED)),
        (FAILED, False, 0.5, StepOutcome(Verdict.FAILED, disk_full=True)),
        (DISK_FULL, False, 500.0, StepOutcome(Verdict.FAILED, disk_full=True)),
        (CANCELLED, True, 500.0, StepOutcome(Verdict.CANCELLED)),
        (CANCELLED, False, 500.0, StepOutcome(Verdict.LET_GO)),
        (LOST, False, 500.0, StepOutcome(Verdict.INTERRUPTED)),
        (PREEMPTED, False, 500.0, StepOutcome(Verdict.INTERRUPTED)),
        (
            StepResult(returncode=-2, reason="cancelled", cancelled=True, resumable=True),
            True,
            500.0,
            StepOutcome(Verdict.CANCELLED),
        ),
    ],
)
def test_a_step_end_decides_its_job(
    result: StepResult, cancel_requested: bool, free_mb: float, expected: StepOutcome
) -> None:
    assert step_outcome(result, cancel_requested=cancel_requested, free_mb=free_mb) == expected


class Recorder:
    """A sink that records what the runner reports, on a real store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.events: list[Payload] = []
        self.progress_seen: list[Progress] = []
        self.ended = asyncio.Event()

    def state(
        self,
        job_id: int,
        target: JobState,
        *,
        error: str | None = None,
        event: Payload | None = None,
    ) -> Job:
        job = self.store.transition(job_id, target, error=error, event=event)
        if event is not None:
            self.events.append(event)
        if job.finished:
            self.ended.set()
        return job

    def progress(self, job_id: int, progress: Progress) -> None:
        self.progress_seen.append(progress)

    def post(self, job_id: int | None, payload: Payload) -> None:
        self.events.append(payload)


def parts_for(tmp_path: Path, store: Store, sink: Recorder) -> RunnerParts:
    settings = EngineSettings(data_dir=tmp_path / "data")
    return RunnerParts(
        settings=settings,
        store=store,
        kind=default_registry().get("selftest"),
        inputs=InputResolver((), lambda _job, _slot: []),
        executor=LocalExecutor(),
        disk=DiskGuard(settings.data_dir, 0.0),
        sink=sink,
    )


async def test_a_runner_runs_a_job_without_an_engine(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    sink = Recorder(store)
    job = store.add_job(JobSpec("selftest", Action.TRAIN, {}, {"steps": 3, "delay": 0.0}))
    runner = JobRunner(parts_for(tmp_path, store, sink), job.id)
    await asyncio.wait_for(runner.start(), 60)
    assert store.get_job(job.id).state is JobState.SUCCEEDED
    assert [type(e) for e in sink.events][:1] == [Started]
    assert any(isinstance(e, Succeeded) for e in sink.events)
    assert runner.live is not None and runner.live.step == 3
    assert sink.progress_seen[-1] == runner.live
    assert (runner.workdir / "job.log").is_file()
    store.close()


async def test_a_cancelled_runner_ends_its_job_as_cancelled(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    sink = Recorder(store)
    job = store.add_job(JobSpec("selftest", Action.TRAIN, {}, {"steps": 50, "delay": 0.2}))
    runner = JobRunner(parts_for(tmp_path, store, sink), job.id)
    runner.start()
    await eventually(
        lambda: runner.live is not None and (runner.live.step or 0) >= 2, 30, "2 steps", every=0.1
    )
    await asyncio.wait_for(runner.cancel(), 30)
    assert store.get_job(job.id).state is JobState.CANCELLED
    assert isinstance(sink.events[-1], Cancelled)
    assert not any(isinstance(e, Failed | Notice) for e in sink.events)
    store.close()

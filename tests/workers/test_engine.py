"""The engine: submit-time validation, the worker loop, cancel, restart and resume."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.engine import WaitForState, selftest
from workers.engine import Engine, EngineSettings
from workers.errors import JobStateError, QuotaError, SpecError, UnknownJobError
from workers.events import EventType, Failed
from workers.executors.base import Placement
from workers.jobs import Action, JobSpec, JobState
from workers.kinds.base import JobContext, Param, Step
from workers.kinds.registry import KindRegistry, default_registry
from workers.kinds.selftest.kind import SelftestKind
from workers.sharing.owners import Owner
from workers.sharing.quotas import QuotaSettings
from workers.store.database import Store


async def test_a_job_runs_to_success_with_progress_outputs_and_events(
    engine: Engine, wait_for_state: WaitForState
) -> None:
    job = engine.submit(selftest(steps=3, delay=0), origin={"chat_id": 9})
    done = await wait_for_state(engine, job.id)
    assert done.state is JobState.SUCCEEDED
    assert done.progress.message == "step 3 of 3" and done.progress.fraction == 1.0
    assert done.summary == "selftest train: 3 steps"
    result = json.loads((engine.workdir(job.id) / "outputs" / "result.json").read_text())
    assert result["steps"] == 3
    types = [e.type for e in engine.store.events_for(job.id)]
    assert types[:3] == [EventType.QUEUED, EventType.STARTED, EventType.SUCCEEDED]
    log = engine.log_path(job.id).read_text()
    assert "progress 3/3" in log and "=== colabot step: selftest train ===" in log


async def test_the_log_tail_for_the_event_loop_reads_what_log_tail_reads(
    engine: Engine, wait_for_state: WaitForState
) -> None:
    job = engine.submit(selftest(steps=3, delay=0))
    await wait_for_state(engine, job.id)
    tail = await engine.read_log_tail(job.id, 4)
    assert len(tail) == 4 and tail == engine.log_tail(job.id, 4)
    # A log that ends in a line longer than the last block: read in a thread, same answer.
    with engine.log_path(job.id).open("a") as log:
        log.write("y" * 200_000 + "\n")
    long_tail = await engine.read_log_tail(job.id, 2)
    assert long_tail == engine.log_tail(job.id, 2) and long_tail[-1].endswith("yyy")
    with pytest.raises(UnknownJobError):
        await engine.read_log_tail(99, 4)


async def test_a_failing_listener_is_logged_and_the_others_still_hear(
    engine: Engine, wait_for_state: WaitForState, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[JobState] = []

    def broken(job: object) -> None:
        raise RuntimeError("listener bug")

    engine.on_state(broken)
    engine.on_state(lambda job: heard.append(job.state))
    job = engine.submit(selftest(steps=1, delay=0))
    done = await wait_for_state(engine, job.id)
    assert done.state is JobState.SUCCEEDED
    assert heard[0] is JobState.QUEUED and heard[-1] is JobState.SUCCEEDED
    failures = [r for r in caplog.records if r.getMessage().startswith("a listener")]
    assert failures and failures[0].exc_info is not None
    assert "listener bug" in str(failures[0].exc_info[1])


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (JobSpec("nope", Action.TRAIN), "kind", "unknown kind 'nope' (known: "),
        (JobSpec("selftest", Action.INFER), "inputs.model", "missing"),
        (
            JobSpec("selftest", Action.TRAIN, {}, {"steps": "many"}),
            "params.steps",
            "must be a whole number, got 'many'",
        ),
        (
            JobSpec("selftest", Action.TRAIN, {}, {"delay": "soon"}),
            "params.delay",
            "must be a number",
        ),
        (
            JobSpec("selftest", Action.TRAIN, {}, {"fail": "perhaps"}),
            "params.fail",
            "must be yes or no",
        ),
        (
            JobSpec("selftest", Action.TRAIN, {}, {"steps": "0"}),
            "params.steps",
            "must be at least 1",
        ),
        (
            JobSpec("selftest", Action.TRAIN, {}, {"colour": "red"}),
            "params.colour",
            "unknown parameter",
        ),
        (JobSpec("selftest", Action.TRAIN, {"weights": "x"}), "inputs.weights", "unknown input"),
        (
            JobSpec("selftest", Action.TRAIN, {"input": "/etc/passwd"}),
            "inputs.input",
            "outside the allowed input folders",
        ),
        (
            JobSpec("selftest", Action.TRAIN, {"input": "../secret"}),
            "inputs.input",
            "may not contain '..'",
        ),
        (
            JobSpec("selftest", Action.INFER, {"model": "77"}),
            "inputs.model",
            "job 77: there is no such job",
        ),
        (
            JobSpec("selftest", Action.TRAIN, {"input": "file:///etc/passwd"}),
            "inputs.input",
            "file:// URLs are not accepted",
        ),
    ],
)
async def test_bad_specs_are_refused_at_submit_naming_the_field(
    engine: Engine, spec: JobSpec, field: str, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        engine.submit(spec)
    assert caught.value.field == field
    assert message in caught.value.message
    assert engine.jobs() == []


async def test_an_input_inside_the_roots_is_read(
    engine: Engine, input_root: Path, wait_for_state: WaitForState
) -> None:
    (input_root / "data.txt").write_text("hello")
    job = engine.submit(JobSpec("selftest", Action.TRAIN, {"input": "data.txt"}, {"delay": "0"}))
    done = await wait_for_state(engine, job.id)
    assert done.state is JobState.SUCCEEDED
    result = json.loads((engine.workdir(job.id) / "outputs" / "result.json").read_text())
    assert result["input"]["bytes"] == 5


async def test_a_symlink_escaping_the_roots_is_refused(engine: Engine, input_root: Path) -> None:
    (input_root / "escape").symlink_to("/etc")
    with pytest.raises(SpecError, match="outside the allowed input folders"):
        engine.submit(JobSpec("selftest", Action.TRAIN, {"input": "escape/passwd"}))


async def test_uploads_are_moved_into_the_job_folder(
    engine: Engine, tmp_path: Path, wait_for_state: WaitForState
) -> None:
    staged = tmp_path / "staging" / "sent.bin"
    staged.parent.mkdir()
    staged.write_bytes(b"\x00" * 10)
    job = engine.submit(selftest(delay=0), uploads={"input": staged})
    assert job.spec.uploads == {"input": "sent.bin"} and job.spec.inputs == {}
    assert not staged.exists()
    done = await wait_for_state(engine, job.id)
    assert done.state is JobState.SUCCEEDED
    assert (engine.workdir(job.id) / "inputs" / "sent.bin").read_bytes() == b"\x00" * 10


async def test_one_failing_job_does_not_affect_another(
    engine: Engine, wait_for_state: WaitForState
) -> None:
    bad = engine.submit(selftest(steps=4, delay=0.05, fail="yes"))
    good = engine.submit(selftest(steps=4, delay=0.05))
    failed = await wait_for_state(engine, bad.id)
    ok = await wait_for_state(engine, good.id)
    assert failed.state is JobState.FAILED
    assert failed.error == "the job was told to fail (fail=yes)"
    event = engine.store.events_for(bad.id)[-1]
    assert event.type is EventType.FAILED and isinstance(event.payload, Failed)
    assert event.payload.tail[-1] == "selftest: error: told to fail at step 3"
    assert ok.state is JobState.SUCCEEDED


async def test_at_most_max_parallel_jobs_run_at_once(
    engine_settings: EngineSettings, store: Store, wait_for_state: WaitForState
) -> None:
    eng = Engine(engine_settings, store, default_registry())
    seen_running: list[int] = []
    eng.on_state(lambda job: seen_running.append(len(eng.running_jobs())))
    await eng.start()
    try:
        jobs = [eng.submit(selftest(steps=2, delay=0.1)) for _ in range(5)]
        for job in jobs:
            assert (await wait_for_state(eng, job.id)).state is JobState.SUCCEEDED
    finally:
        await eng.stop()
    assert max(seen_running) == engine_settings.max_parallel_jobs


async def test_cancel_a_running_job(engine: Engine, wait_for_state: WaitForState) -> None:
    job = engine.submit(selftest(steps=500, delay=0.05))
    await wait_for_state(engine, job.id, {JobState.RUNNING})
    cancelled = await engine.cancel(job.id)
    assert cancelled.state is JobState.CANCELLED
    assert engine.store.events_for(job.id)[-1].type is EventType.CANCELLED


async def test_cancel_a_queued_job(
    engine_settings: EngineSettings, store: Store, wait_for_state: WaitForState
) -> None:
    eng = Engine(engine_settings, store, default_registry())
    job = eng.submit(selftest())
    assert (await eng.cancel(job.id)).state is JobState.CANCELLED
    await eng.start()
    await eng.stop()
    assert eng.job(job.id).state is JobState.CANCELLED


async def test_cancel_unknown_or_finished_jobs_says_so(
    engine: Engine, wait_for_state: WaitForState
) -> None:
    with pytest.raises(UnknownJobError, match="there is no job 99"):
        await engine.cancel(99)
    job = engine.submit(selftest(steps=1, delay=0))
    await wait_for_state(engine, job.id)
    with pytest.raises(JobStateError, match=f"job {job.id} is succeeded; cannot cancel it"):
        await engine.cancel(job.id)


async def test_timeout_parameter_fails_the_job(
    engine: Engine, wait_for_state: WaitForState
) -> None:
    job = engine.submit(selftest(steps=100, delay=1, timeout=0.005))
    done = await wait_for_state(engine, job.id)
    assert done.state is JobState.FAILED
    assert done.error is not None and done.error.startswith("timed out after")


class MissingProgramKind(SelftestKind):
    """A kind whose program does not exist."""

    name = "missing"

    def steps(self, ctx: JobContext) -> Iterator[Step]:
        yield Step("run", ["/no/such/program"])


class BrokenPlannerKind(SelftestKind):
    """A kind whose planning raises an unexpected error."""

    name = "broken"

    def steps(self, ctx: JobContext) -> Iterator[Step]:
        if ctx.param("planning") != "works":
            raise KeyError("jobs.yaml")
        yield Step("never", ["true"])  # pragma: no cover


class EnvKind(SelftestKind):
    """A kind that prints the environment its step sees."""

    name = "env"

    def params(self, action: Action) -> Mapping[str, Param]:
        return {}

    def steps(self, ctx: JobContext) -> Iterator[Step]:
        code = "import os, json; print(json.dumps(sorted(os.environ)))"
        yield Step("env", [ctx.python, "-c", code])


@pytest.fixture
async def odd_engine(engine_settings: EngineSettings, store: Store) -> AsyncIterator[Engine]:
    registry = KindRegistry([SelftestKind(), MissingProgramKind(), BrokenPlannerKind(), EnvKind()])
    eng = Engine(engine_settings, store, registry)
    await eng.start()
    yield eng
    await eng.stop()


async def test_a_process_that_cannot_start_fails_with_that_reason(
    odd_engine: Engine, wait_for_state: WaitForState
) -> None:
    job = odd_engine.submit(JobSpec("missing", Action.TRAIN))
    done = await wait_for_state(odd_engine, job.id)
    assert done.state is JobState.FAILED
    assert done.error == "cannot start '/no/such/program': executable not found"


async def test_a_planning_bug_fails_only_that_job(
    odd_engine: Engine, wait_for_state: WaitForState
) -> None:
    broken = odd_engine.submit(JobSpec("broken", Action.TRAIN))
    fine = odd_engine.submit(selftest(steps=1, delay=0))
    assert (await wait_for_state(odd_engine, broken.id)).error == "planning: KeyError: 'jobs.yaml'"
    assert (await wait_for_state(odd_engine, fine.id)).state is JobState.SUCCEEDED


async def test_jobs_never_see_chat_or_cloud_secrets(
    odd_engine: Engine, wait_for_state: WaitForState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLABOT_TELEGRAM_TOKEN", "123:secret")
    monkeypatch.setenv("TELEGRAM_TOKEN", "123:secret")
    job = odd_engine.submit(JobSpec("env", Action.TRAIN))
    await wait_for_state(odd_engine, job.id)
    names = json.loads(odd_engine.log_tail(job.id, 1)[0])
    assert "COLABOT_TELEGRAM_TOKEN" not in names and "TELEGRAM_TOKEN" not in names
    assert {"COLABOT_JOB_ID", "PYTHONUNBUFFERED"} <= set(names)


async def test_restart_marks_running_jobs_interrupted_and_resume_continues(
    engine_settings: EngineSettings, wait_for_state: WaitForState
) -> None:
    store = Store(engine_settings.data_dir)
    first = Engine(engine_settings, store, default_registry())
    reached = asyncio.Event()
    first.on_progress(lambda job_id, p: reached.set() if (p.step or 0) >= 5 else None)
    await first.start()
    job = first.submit(selftest(steps=40, delay=0.05))
    await asyncio.wait_for(reached.wait(), 20)
    await first.stop()
    assert first.job(job.id).state is JobState.INTERRUPTED

    second = Engine(engine_settings, Store(engine_settings.data_dir), default_registry())
    await second.start()
    try:
        resumed = second.resume(job.id)
        assert resumed.attempt == 2
        done = await wait_for_state(second, job.id)
    finally:
        await second.stop()
    assert done.state is JobState.SUCCEEDED
    result = json.loads((second.workdir(job.id) / "outputs" / "result.json").read_text())
    assert result["first_step"] > 1
    types = [e.type for e in second.store.events_for(job.id)]
    assert EventType.INTERRUPTED in types and EventType.RESUMED in types


async def test_a_crash_leaves_running_jobs_interrupted_on_next_start(
    engine_settings: EngineSettings,
) -> None:
    store = Store(engine_settings.data_dir)
    job = store.add_job(selftest())
    store.transition(job.id, JobState.RUNNING)
    store.close()
    eng = Engine(engine_settings, Store(engine_settings.data_dir), default_registry())
    interrupted = await eng.start()
    await eng.stop()
    assert [j.id for j in interrupted] == [job.id]
    assert eng.job(job.id).state is JobState.INTERRUPTED


async def test_resume_refuses_succeeded_jobs(engine: Engine, wait_for_state: WaitForState) -> None:
    job = engine.submit(selftest(steps=1, delay=0))
    await wait_for_state(engine, job.id)
    with pytest.raises(JobStateError, match="cannot resume"):
        engine.resume(job.id)


async def test_infer_with_a_finished_training_job_as_model(
    engine: Engine, wait_for_state: WaitForState
) -> None:
    trained = engine.submit(selftest(steps=1, delay=0))
    await wait_for_state(engine, trained.id)
    job = engine.submit(selftest(Action.INFER, steps=2, delay=0, model=str(trained.id)))
    done = await wait_for_state(engine, job.id)
    assert done.state is JobState.SUCCEEDED
    result = json.loads((engine.workdir(job.id) / "outputs" / "result.json").read_text())
    assert result["models"] == [str(engine.workdir(trained.id) / "outputs" / "model")]


# ------------------------------------------------------------------- a lab: owners and quotas

ALICE, BOB = Owner(101, "@alice"), Owner(202, "@bob")
LONG = selftest(steps=1000, delay=1)


async def lab_engine(
    settings: EngineSettings, store: Store, **changes: Any
) -> AsyncIterator[Engine]:
    eng = Engine(dataclasses.replace(settings, **changes), store, default_registry())
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


async def test_a_freed_slot_goes_to_the_person_with_fewer_running_jobs(
    engine_settings: EngineSettings, store: Store, wait_for_state: WaitForState
) -> None:
    async for engine in lab_engine(engine_settings, store, max_parallel_jobs=2):
        first = engine.submit(LONG, owner=ALICE)
        second = engine.submit(LONG, owner=ALICE)
        await wait_for_state(engine, second.id, {JobState.RUNNING})
        third = engine.submit(LONG, owner=ALICE)
        bobs = engine.submit(LONG, owner=BOB)
        await engine.cancel(first.id)
        await wait_for_state(engine, bobs.id, {JobState.RUNNING})
        assert engine.job(third.id).state is JobState.QUEUED
        assert [j.id for j in engine.jobs(owner_id=BOB.user_id)] == [bobs.id]
        assert {j.owner for j in engine.jobs()} == {ALICE, BOB}


async def test_a_person_at_the_running_limit_waits_and_the_status_says_why(
    engine_settings: EngineSettings, store: Store, wait_for_state: WaitForState
) -> None:
    quotas = QuotaSettings(running_per_user=1)
    async for engine in lab_engine(engine_settings, store, quotas=quotas):
        first = engine.submit(LONG, owner=ALICE)
        await wait_for_state(engine, first.id, {JobState.RUNNING})
        held = engine.submit(LONG, owner=ALICE)
        bobs = engine.submit(LONG, owner=BOB)
        await wait_for_state(engine, bobs.id, {JobState.RUNNING})
        where = engine.placement(held.id)
        assert where is not None
        assert where.waiting == "waiting: @alice has 1 running job, the limit is 1"
        await engine.cancel(first.id)
        await wait_for_state(engine, held.id, {JobState.RUNNING})
        assert (engine.placement(held.id) or Placement()).waiting is None


async def test_gpu_hours_are_counted_and_a_used_up_week_refuses_new_jobs(
    engine_settings: EngineSettings, store: Store, wait_for_state: WaitForState
) -> None:
    # 0.0001 GPU-hours is 0.36 s on the one GPU a gpu=yes step holds here.
    quotas = QuotaSettings(gpu_hours_per_user_per_week=0.0001)
    exempt = frozenset({BOB.user_id})
    async for engine in lab_engine(
        engine_settings, store, quotas=quotas, quota_exempt=exempt, local_gpus=1
    ):
        job = engine.submit(selftest(steps=2, delay=0.3, gpu="yes"), owner=ALICE)
        assert (await wait_for_state(engine, job.id)).state is JobState.SUCCEEDED
        cpu = engine.submit(selftest(steps=1, delay=0), owner=BOB)
        assert (await wait_for_state(engine, cpu.id)).state is JobState.SUCCEEDED
        used = {u.owner_id: u for u in engine.usage()}
        assert used[ALICE.user_id].gpu_hours >= 0.6 / 3600
        assert used[BOB.user_id].gpu_hours == 0 and used[BOB.user_id].cpu_hours > 0
        with pytest.raises(QuotaError, match=r"@alice has used 0\.0 of 0\.0001 GPU-hours .*resets"):
            engine.submit(selftest(steps=1, delay=0), owner=ALICE)
        engine.submit(selftest(steps=1, delay=0, gpu="yes"), owner=BOB)
        engine.submit(selftest(steps=1, delay=0))

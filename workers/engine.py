"""The job engine: submit, cancel, resume and list jobs, and the worker loop that hands
queued jobs to runners (:mod:`workers.runner`), up to ``max_parallel_jobs`` at once.

Steps run through an executor (:mod:`workers.executors`): this machine by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from workers.errors import (
    ColabotError,
    JobStateError,
    PlotError,
    SpecError,
    StepLostError,
    StopEarlyError,
)
from workers.events import Cancelled, Interrupted, Notice, Payload, Resumed
from workers.executors.base import Capacity, Executor, Launch, Placement
from workers.executors.containment import find_cgroup_root
from workers.executors.local import LocalExecutor, run_briefly
from workers.inputs.resolve import InputResolver
from workers.jobs import Job, JobSpec, JobState, Operation, Progress, require
from workers.kinds.base import PLOT_REFUSAL, Step
from workers.kinds.registry import KindRegistry
from workers.logfile import tail_lines
from workers.results.base import ResultsBackend
from workers.runner import (
    BeforeRun,
    EngineSettings,
    JobRunner,
    JobTimings,
    Reattach,
    RunnerParts,
    job_wandb,
)
from workers.safety.environment import step_environment
from workers.safety.names import is_plain_name, shown
from workers.store.database import INTERRUPTED_REASON, Store
from workers.store.disk import DiskGuard
from workers.wandb.runs import WandbRun

__all__ = ["Engine", "EngineSettings", "JobTimings"]

log = logging.getLogger(__name__)

PROGRESS_FLUSH_S = 1.0
PLOT_TIMEOUT_S = 120.0


class Engine:
    """Runs jobs from the store through an executor, up to ``max_parallel_jobs`` at once."""

    def __init__(
        self,
        settings: EngineSettings,
        store: Store,
        registry: KindRegistry,
        *,
        results: ResultsBackend | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.results = results
        cgroup_root = find_cgroup_root() if settings.use_cgroups else None
        self.executor: Executor = executor or LocalExecutor(cgroup_root)
        self.inputs = InputResolver(
            settings.input_roots,
            self._job_outputs,
            colabot_roots=(settings.jobs_dir, settings.cache_dir),
        )
        self.disk = DiskGuard(settings.data_dir, settings.min_free_disk_mb)
        self.timings: OrderedDict[int, JobTimings] = OrderedDict()
        self._runners: dict[int, JobRunner] = {}
        self._flushed: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._events = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._event_listeners: list[Callable[[], None]] = []
        self._state_listeners: list[Callable[[Job], None]] = []
        self._progress_listeners: list[Callable[[int, Progress], None]] = []
        self.before_run_hooks: list[BeforeRun] = []

    # lifecycle ------------------------------------------------------------------------------

    async def start(self) -> list[Job]:
        """Pick up the jobs a previous colabot left running: a step the executor still runs
        is followed again; any other job is marked interrupted. Then start the worker loop.

        Returns the interrupted jobs.
        """
        interrupted = []
        for job in self.store.list_jobs(states=[JobState.RUNNING]):
            reason = await self._pick_up(job)
            if reason is not None:
                interrupted.append(
                    self.state(
                        job.id, JobState.INTERRUPTED, error=reason, event=Interrupted(reason)
                    )
                )
        self.disk.keep_reserve()
        self._stopping = False
        self._loop_task = asyncio.create_task(self._worker_loop(), name="colabot-worker-loop")
        return interrupted

    async def stop(self) -> None:
        """Stop the loop; running jobs are stopped and marked interrupted (resumable)."""
        self._stopping = True
        self._wake.set()
        runners = dict(self._runners)
        detach = self.executor.survives_restart
        for runner in runners.values():
            if detach:
                # The cluster keeps running the step; the next colabot follows it again.
                runner.detach()
            else:
                runner.stop()
        await asyncio.gather(
            *(r.task for r in runners.values() if r.task is not None), return_exceptions=True
        )
        if not detach:
            for job_id in runners:
                self._mark_interrupted(job_id)
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        await self.executor.close()

    def _mark_interrupted(self, job_id: int) -> None:
        job = self.store.find_job(job_id)
        if job is not None and job.state is JobState.RUNNING:
            self.state(
                job_id,
                JobState.INTERRUPTED,
                error=INTERRUPTED_REASON,
                event=Interrupted(INTERRUPTED_REASON),
            )

    async def _pick_up(self, job: Job) -> str | None:
        """Follow a running job's open step again if its executor still runs it; else stop
        what is left of it and return why the job is interrupted."""
        reason: str | None = INTERRUPTED_REASON
        for step in self.store.open_steps(job.id):
            workdir = self.workdir(job.id)
            launch = Launch(job.id, step.index, step.name, (), {}, workdir, job_dir=workdir)
            executor = self.executor
            if step.executor != executor.name:
                # Started by another executor (the configuration changed): stop what it left.
                executor = LocalExecutor() if step.executor == "local" else executor
            try:
                handle = await executor.reattach(step.ref, launch)
            except StepLostError as exc:
                handle, reason = None, exc.reason
            except ColabotError as exc:
                handle, reason = None, f"colabot restarted and could not find the step: {exc}"
            if handle is None or executor is not self.executor or step.executor != executor.name:
                self.store.end_step(job.id, step.index)
                continue
            reattach = Reattach(step.index, handle, step.output_offset, step.log_length)
            self._run_job(job, reattach)
            log.info("job %s: following step %s again", job.id, step.index + 1)
            return None
        return reason

    # listeners ------------------------------------------------------------------------------

    def on_events(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever new outbox events are stored."""
        self._event_listeners.append(callback)

    def on_state(self, callback: Callable[[Job], None]) -> None:
        """Call ``callback`` with the job after every state change."""
        self._state_listeners.append(callback)

    def before_run(self, callback: Callable[[Job, Path], Awaitable[None]]) -> None:
        """Await ``callback(job, workdir)`` when a job starts, before its inputs are resolved."""
        self.before_run_hooks.append(callback)

    def checkpoint_of(self, job_id: int) -> Path | None:
        """The newest checkpoint of a running job, as its kind finds it."""
        runner = self._runners.get(job_id)
        return runner.checkpoint() if runner is not None else None

    def on_progress(self, callback: Callable[[int, Progress], None]) -> None:
        """Call ``callback`` with (job id, progress) whenever a running job reports progress."""
        self._progress_listeners.append(callback)

    def _notify_events(self) -> None:
        self._events.set()
        for callback in self._event_listeners:
            _call(callback)

    def state(
        self,
        job_id: int,
        target: JobState,
        *,
        error: str | None = None,
        event: Payload | None = None,
    ) -> Job:
        """Move a job to ``target`` with its event; tell the listeners (a runner's sink)."""
        job = self.store.transition(job_id, target, error=error, event=event)
        if event is not None:
            self._notify_events()
        self._announce(job)
        return job

    def _announce(self, job: Job) -> None:
        for callback in self._state_listeners:
            _call(callback, job)

    def notice(self, job_id: int | None, text: str) -> None:
        """Record a plain-text notice for a person to read (delivered through the outbox)."""
        self.post(job_id, Notice(text))

    def post(self, job_id: int | None, payload: Payload) -> None:
        """Record an event for the chat side to deliver (about a job, or the runtime)."""
        self.store.add_event(job_id, payload)
        self._notify_events()

    # requests -------------------------------------------------------------------------------

    def check(self, spec: JobSpec, upload_names: dict[str, str] | None = None) -> JobSpec:
        """Validate a request fully (kind, action, inputs, params) without submitting it.

        ``upload_names`` maps input slots to the names of files that will be delivered with
        the request (a document sent in the chat), so they are checked as that input.
        """
        for slot, text in spec.inputs.items():
            if any(part.strip().lower().startswith("upload:") for part in text.split(",")):
                raise SpecError(
                    f"inputs.{slot}",
                    "upload: is not a way to name an input; send the file in the chat instead",
                )
        uploads = dict(upload_names or {})
        for slot, name in uploads.items():
            if not is_plain_name(name):
                raise SpecError(f"inputs.{slot}", f"{shown(name)}: not a name a file can have")
        return self._validate(dataclasses.replace(spec, uploads=uploads))

    def _validate(self, spec: JobSpec) -> JobSpec:
        named = spec.named_inputs()
        for name, value in [*named.items(), *spec.params.items()]:
            if "\x00" in str(value):
                field_name = f"inputs.{name}" if name in named else f"params.{name}"
                raise SpecError(field_name, "holds a NUL character, which no file or value can")
        # The kind checks each slot by what names it: a source, or an upload's file name.
        as_typed = dataclasses.replace(spec, inputs=named, uploads={})
        checked = self.registry.validate(as_typed)
        inputs = {k: v for k, v in checked.inputs.items() if k not in spec.uploads}
        clean = dataclasses.replace(checked, inputs=inputs, uploads=dict(spec.uploads))
        self.inputs.check(clean, lambda job_id: self.store.find_job(job_id) is not None)
        self.wandb_run(clean, "check")
        return clean

    def wandb_run(self, spec: JobSpec, name: str) -> WandbRun | None:
        """How a job logs to W&B (None: it does not); SpecError when it cannot."""
        return job_wandb(self.registry.get(spec.kind), spec, self.settings.wandb, name)

    def submit(
        self,
        spec: JobSpec,
        origin: dict[str, Any] | None = None,
        *,
        uploads: dict[str, Path] | None = None,
    ) -> Job:
        """Validate and queue a job; raise SpecError naming the bad field, or DiskSpaceError
        when the data folder is too full to start one.

        ``uploads`` maps input slots to files delivered with the request; they are moved into
        the job's folder.
        """
        submitted = time.time()
        uploads = uploads or {}
        clean = self.check(spec, {slot: path.name for slot, path in uploads.items()})
        self.disk.check_room()
        job = self.store.add_job(clean, origin, now=submitted)
        for path in uploads.values():
            target = self.workdir(job.id) / "inputs" / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target)
        self.timing(job.id).submitted = submitted
        self._announce(job)
        self._notify_events()
        self._wake.set()
        return job

    async def cancel(self, job_id: int) -> Job:
        """Cancel a queued or running job; raise UnknownJobError or JobStateError."""
        job = self.store.get_job(job_id)
        require(job, Operation.CANCEL)
        runner = self._runners.get(job_id)
        if job.state is not JobState.RUNNING:
            return self.state(job_id, JobState.CANCELLED, event=Cancelled())
        if runner is None:
            raise JobStateError(job_id, job.state.value, "cancel")
        await runner.cancel()
        return self.store.get_job(job_id)

    def stop_early(self, job_id: int, *, dry_run: bool = False) -> Step:
        """Ask a running training job to end its training now and keep its model: it then
        goes on to its later steps and succeeds. Returns the step asked; raise
        UnknownJobError, JobStateError, or StopEarlyError when the step cannot stop early."""
        job = self.store.get_job(job_id)
        require(job, Operation.STOP_EARLY)
        runner = self._runners.get(job_id)
        if runner is None:
            raise StopEarlyError(job_id, f"it is {job.state.value}, not training")
        return runner.stop_early(dry_run=dry_run)

    async def plot(self, job_id: int) -> Path:
        """Draw a training job's loss so far (running or finished) into a PNG in its folder
        and return it; raise UnknownJobError, or PlotError saying why there is none."""
        job = self.store.get_job(job_id)
        kind = self.registry.get(job.spec.kind)
        require(job, Operation.PLOT)
        dest = self.workdir(job_id) / "plots" / f"loss-{time.time_ns()}.png"
        step = kind.plot(self.workdir(job_id), self.settings.python, dest)
        if step is None:
            raise PlotError(job_id, f"{kind.name} jobs draw no loss")
        dest.parent.mkdir(parents=True, exist_ok=True)
        ended = await run_briefly(step.argv, step_environment(step.env), PLOT_TIMEOUT_S)
        if ended.returncode == 0 and dest.is_file():
            return dest
        refusal = next(
            (line for line in ended.lines if line.startswith(PLOT_REFUSAL)), ""
        ).removeprefix(PLOT_REFUSAL)
        if not refusal:
            log.warning("the plot of job %s failed: %s", job_id, " | ".join(ended.lines[-5:]))
        raise PlotError(job_id, refusal or f"the picture could not be drawn ({ended.reason})")

    def resume(self, job_id: int) -> Job:
        """Queue an interrupted or failed job again; training continues from its checkpoint."""
        job = self.store.get_job(job_id)
        require(job, Operation.RESUME)
        job = self.state(job_id, JobState.QUEUED, event=Resumed())
        self._wake.set()
        return job

    def job(self, job_id: int) -> Job:
        """A job with its live progress; raise UnknownJobError."""
        return self._with_live(self.store.get_job(job_id))

    def jobs(self, limit: int = 20) -> list[Job]:
        """Recent jobs, newest first, with live progress."""
        return [self._with_live(job) for job in self.store.list_jobs(limit=limit)]

    def running_jobs(self) -> list[Job]:
        """Jobs running now."""
        return [self._with_live(j) for j in self.store.list_jobs(states=[JobState.RUNNING])]

    def queued_jobs(self) -> list[Job]:
        """Jobs waiting to run, oldest first."""
        return list(reversed(self.store.list_jobs(states=[JobState.QUEUED])))

    def placement(self, job_id: int) -> Placement | None:
        """Where a running job's step is: waiting for resources, or on which node (and on a
        cluster, the cluster's own name for it)."""
        runner = self._runners.get(job_id)
        return runner.placement() if runner is not None else None

    async def capacity(self) -> Capacity | None:
        """What the executor's machines offer now (None for this machine alone)."""
        return await self.executor.capacity()

    def current_step(self, job_id: int) -> str:
        """The name of the step a running job is in, or ''."""
        runner = self._runners.get(job_id)
        return runner.step if runner else ""

    def _with_live(self, job: Job) -> Job:
        runner = self._runners.get(job.id)
        live = runner.shown if runner is not None else None
        if live is None or job.state is not JobState.RUNNING:
            return job
        return dataclasses.replace(job, progress=live)

    def workdir(self, job_id: int) -> Path:
        """The job's folder."""
        return self.settings.jobs_dir / str(job_id)

    def log_path(self, job_id: int) -> Path:
        """The job's log file."""
        return self.workdir(job_id) / "job.log"

    def log_tail(self, job_id: int, lines: int) -> list[str]:
        """The last lines of a job's log; raise UnknownJobError."""
        self.store.get_job(job_id)
        return tail_lines(self.log_path(job_id), lines)

    def _job_outputs(self, job_id: int, slot: str) -> list[Path]:
        wanted = "model" if slot == "model" else "predictions"
        chosen = [Path(o.path) for o in self.store.outputs(job_id) if o.role == wanted]
        return [p for p in chosen if p.exists()]

    def timing(self, job_id: int) -> JobTimings:
        """The phase times of a job (kept for the last 1000 jobs)."""
        timing = self.timings.get(job_id)
        if timing is None:
            timing = self.timings[job_id] = JobTimings()
            while len(self.timings) > 1000:
                self.timings.popitem(last=False)
        return timing

    # the loop -------------------------------------------------------------------------------

    async def _worker_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                self._start_ready_jobs()
            except Exception:
                log.exception("the worker loop hit an error; it keeps going")
            await self._wake.wait()

    def _start_ready_jobs(self) -> None:
        while len(self._runners) < self.settings.max_parallel_jobs and not self._stopping:
            job = self.store.next_queued(exclude=self._runners)
            if job is None:
                return
            self._run_job(job)

    def _run_job(self, job: Job, reattach: Reattach | None = None) -> None:
        """Hand a job to a runner of its own; the engine holds it until it ends."""
        parts = RunnerParts(
            settings=self.settings,
            store=self.store,
            kind=self.registry.get(job.spec.kind),
            inputs=self.inputs,
            executor=self.executor,
            disk=self.disk,
            sink=self,
            results=self.results,
            before_run=tuple(self.before_run_hooks),
            timings=self.timing(job.id),
        )
        runner = JobRunner(parts, job.id)
        self._runners[job.id] = runner
        runner.start(reattach).add_done_callback(lambda task: self._ended(job.id, task))

    def _ended(self, job_id: int, task: asyncio.Task[None]) -> None:
        self._runners.pop(job_id, None)
        self._flushed.pop(job_id, None)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("job %s's runner failed", job_id, exc_info=task.exception())

    # progress -------------------------------------------------------------------------------

    def progress(self, job_id: int, progress: Progress) -> None:
        """A running job's new progress (a runner's sink): told to listeners, stored now and
        then."""
        if progress.updated_at == 0.0:
            progress = dataclasses.replace(progress, updated_at=time.time())
        for callback in self._progress_listeners:
            _call(callback, job_id, progress)
        if progress.updated_at - self._flushed.get(job_id, 0.0) >= PROGRESS_FLUSH_S:
            self._flushed[job_id] = progress.updated_at
            self.store.set_progress(job_id, progress)


def _call(callback: Callable[..., None], *args: object) -> None:
    """Call a listener; one that fails is logged, and the others still hear the news."""
    try:
        callback(*args)
    except Exception:
        log.exception("a listener (%r) failed", callback)

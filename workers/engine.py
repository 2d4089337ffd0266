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
from workers.executors.local import LocalExecutor
from workers.inputs.resolve import InputResolver, upload_source
from workers.jobs import Action, Job, JobSpec, JobState, Progress
from workers.kinds.base import PLOT_REFUSAL, Step
from workers.kinds.registry import KindRegistry
from workers.logfile import tail_lines
from workers.results.base import ResultsBackend
from workers.runner import (
    ActiveJob,
    EngineSettings,
    JobRunner,
    JobTimings,
    Reattach,
    run_briefly,
)
from workers.safety.environment import step_environment
from workers.store.database import INTERRUPTED_REASON, Store
from workers.store.disk import DiskGuard
from workers.wandb.runs import PARAM as WANDB_PARAM
from workers.wandb.runs import WandbRun, run_for
from workers.wandb.runs import installed as wandb_installed

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
        self._active: dict[int, ActiveJob] = {}
        self._live: dict[int, Progress] = {}
        self._wake = asyncio.Event()
        self._events = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._event_listeners: list[Callable[[], None]] = []
        self._state_listeners: list[Callable[[Job], None]] = []
        self._progress_listeners: list[Callable[[int, Progress], None]] = []
        self.before_run_hooks: list[Callable[[Job, Path], Awaitable[None]]] = []

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
                    self.set_state(
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
        actives = dict(self._active)
        detach = self.executor.survives_restart
        for active in actives.values():
            if detach:
                # The cluster keeps running the step; the next colabot follows it again.
                active.detach()
            else:
                active.stop()
        await asyncio.gather(*(a.task for a in actives.values()), return_exceptions=True)
        if not detach:
            for job_id in actives:
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
            self.set_state(
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
            # The task starts on the loop's next turn, when the engine already holds it.
            task = asyncio.create_task(
                self._run_job(job.id, reattach), name=f"colabot-job-{job.id}"
            )
            self._active[job.id] = ActiveJob(task=task)
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
        active = self._active.get(job_id)
        if active is None or active.ctx is None or active.kind is None:
            return None
        return active.kind.checkpoint(active.ctx)

    def on_progress(self, callback: Callable[[int, Progress], None]) -> None:
        """Call ``callback`` with (job id, progress) whenever a running job reports progress."""
        self._progress_listeners.append(callback)

    def _notify_events(self) -> None:
        self._events.set()
        for callback in self._event_listeners:
            _call(callback)

    def set_state(
        self,
        job_id: int,
        target: JobState,
        *,
        error: str | None = None,
        event: Payload | None = None,
    ) -> Job:
        """Move a job to ``target`` with its event; tell the listeners."""
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
        return self._validate(self._with_uploads(spec, upload_names or {}))

    def _with_uploads(self, spec: JobSpec, upload_names: dict[str, str]) -> JobSpec:
        """The spec with upload slots filled by colabot's own markers.

        Only colabot writes ``upload:`` markers: a spec that holds one already came from
        outside (typed in the chat) and is refused, since it could name any file.
        """
        for slot, text in spec.inputs.items():
            if any(part.strip().lower().startswith("upload:") for part in text.split(",")):
                raise SpecError(
                    f"inputs.{slot}",
                    "upload: is not a way to name an input; send the file in the chat instead",
                )
        uploads = {slot: upload_source(name) for slot, name in upload_names.items()}
        return JobSpec(spec.kind, spec.action, {**spec.inputs, **uploads}, spec.params)

    def _validate(self, spec: JobSpec) -> JobSpec:
        for name, value in [*spec.inputs.items(), *spec.params.items()]:
            if "\x00" in str(value):
                field_name = f"inputs.{name}" if name in spec.inputs else f"params.{name}"
                raise SpecError(field_name, "holds a NUL character, which no file or value can")
        clean = self.registry.validate(spec)
        self.inputs.check(clean, lambda job_id: self.store.find_job(job_id) is not None)
        self.wandb_run(clean, "check")
        return clean

    def wandb_run(self, spec: JobSpec, name: str) -> WandbRun | None:
        """How a job logs to W&B (None: it does not); SpecError when it cannot."""
        kind = self.registry.get(spec.kind)
        if spec.action is not Action.TRAIN or WANDB_PARAM not in kind.params(spec.action):
            return None
        asked = spec.params.get(WANDB_PARAM)
        return run_for(
            self.settings.wandb,
            asked if isinstance(asked, bool) else None,
            name,
            available=wandb_installed(),
        )

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
        if not job.can_cancel:
            raise JobStateError(job_id, job.state.value, "cancel")
        active = self._active.get(job_id)
        if job.state is not JobState.RUNNING:
            return self.set_state(job_id, JobState.CANCELLED, event=Cancelled())
        if active is None:
            raise JobStateError(job_id, job.state.value, "cancel")
        active.cancel_requested = True
        active.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(active.task)
        return self.store.get_job(job_id)

    def stop_early(self, job_id: int, *, dry_run: bool = False) -> Step:
        """Ask a running training job to end its training now and keep its model: it then
        goes on to its later steps and succeeds. Returns the step asked; raise
        UnknownJobError, JobStateError, or StopEarlyError when the step cannot stop early."""
        job = self.store.get_job(job_id)
        if job.spec.action is not Action.TRAIN:
            raise StopEarlyError(job_id, "only training stops early (/cancel stops it now)")
        active = self._active.get(job_id)
        if job.state is not JobState.RUNNING or active is None:
            raise StopEarlyError(job_id, f"it is {job.state.value}, not training")
        return active.stop_early(job_id, dry_run=dry_run)

    async def plot(self, job_id: int) -> Path:
        """Draw a training job's loss so far (running or finished) into a PNG in its folder
        and return it; raise UnknownJobError, or PlotError saying why there is none."""
        job = self.store.get_job(job_id)
        kind = self.registry.get(job.spec.kind)
        if job.spec.action is not Action.TRAIN:
            raise PlotError(job_id, "only training jobs have a loss to draw")
        if job.state is JobState.QUEUED:
            raise PlotError(job_id, "it has not started yet")
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
        if not job.can_resume:
            raise JobStateError(job_id, job.state.value, "resume")
        job = self.set_state(job_id, JobState.QUEUED, event=Resumed())
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
        """Where a running job's step is: waiting for resources, or on which node."""
        active = self._active.get(job_id)
        if active is None or active.run is None or active.run.handle is None:
            return None
        return active.run.handle.placement()

    def cluster_job(self, job_id: int) -> str:
        """The cluster's own id of a running job's step ('' on this machine)."""
        active = self._active.get(job_id)
        if active is None or active.run is None or active.run.handle is None:
            return ""
        if not self.executor.survives_restart:
            return ""
        ref = active.run.handle.ref
        return str(ref.get("submission_id") or ref.get("slurm_job") or "")

    async def capacity(self) -> Capacity | None:
        """What the executor's machines offer now (None for this machine alone)."""
        return await self.executor.capacity()

    def current_step(self, job_id: int) -> str:
        """The name of the step a running job is in, or ''."""
        active = self._active.get(job_id)
        return active.step if active else ""

    def _with_live(self, job: Job) -> Job:
        live = self._live.get(job.id)
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
        while len(self._active) < self.settings.max_parallel_jobs and not self._stopping:
            job = self.store.next_queued(exclude=self._active)
            if job is None:
                return
            task = asyncio.create_task(self._run_job(job.id), name=f"colabot-job-{job.id}")
            self._active[job.id] = ActiveJob(task=task)

    async def _run_job(self, job_id: int, reattach: Reattach | None = None) -> None:
        try:
            await JobRunner(self, job_id, self._active[job_id]).run(reattach)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            self._active.pop(job_id, None)
            self._live.pop(job_id, None)
            self._wake.set()

    # progress -------------------------------------------------------------------------------

    def progress(self, job_id: int, progress: Progress) -> None:
        """A running job's new progress: kept live, told to listeners, stored now and then."""
        if progress.updated_at == 0.0:
            progress = dataclasses.replace(progress, updated_at=time.time())
        self._live[job_id] = progress
        for callback in self._progress_listeners:
            _call(callback, job_id, progress)
        active = self._active.get(job_id)
        if active is not None and progress.updated_at - active.last_flush >= PROGRESS_FLUSH_S:
            active.last_flush = progress.updated_at
            self.store.set_progress(job_id, progress)

    def live(self, job_id: int) -> Progress | None:
        """A running job's latest progress, if it reported any."""
        return self._live.get(job_id)

    def restore_live(self, job_id: int, progress: Progress) -> None:
        """Show ``progress`` again (after a passing message such as an upload's)."""
        self._live[job_id] = progress


def _call(callback: Callable[..., None], *args: object) -> None:
    """Call a listener; one that fails is logged, and the others still hear the news."""
    try:
        callback(*args)
    except Exception:
        log.exception("a listener (%r) failed", callback)

"""The job engine: submit, cancel, resume and list jobs, and the worker loop that hands
queued jobs to runners (:mod:`workers.runner`), up to ``max_parallel_jobs`` at once.

Steps run through an executor (:mod:`workers.executors`): this machine by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import shutil
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.errors import (
    ColabotError,
    CompareError,
    JobStateError,
    PlotError,
    QuotaError,
    SpecError,
    StepLostError,
    StopEarlyError,
)
from workers.events import Cancelled, Interrupted, Notice, Payload, Resumed
from workers.executors.base import Capacity, Executor, Launch, Placement
from workers.executors.containment import find_cgroup_root
from workers.executors.local import LocalExecutor, run_briefly
from workers.inputs.resolve import InputResolver
from workers.jobs import Action, Job, JobSpec, JobState, Operation, Progress, require
from workers.kinds.base import PLOT_REFUSAL, Step
from workers.kinds.registry import KindRegistry
from workers.logfile import short_tail_lines, tail_lines
from workers.quality import Quality
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
from workers.sharing.accounting import Usage, usage, used_gpu_hours
from workers.sharing.fairshare import pick_next
from workers.sharing.owners import Owner
from workers.sharing.quotas import submit_refusal, week_start
from workers.store.database import INTERRUPTED_REASON, Store
from workers.store.disk import DiskGuard
from workers.waits import Foreground
from workers.wandb.runs import WandbRun

__all__ = ["Comparison", "Engine", "EngineSettings", "JobTimings", "compare_refusal"]

log = logging.getLogger(__name__)

PROGRESS_FLUSH_S = 1.0
PLOT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Comparison:
    """Two finished trainings of one kind, for ``/compare``: each job with the held-out
    scores it kept (None: it kept none), and the picture of both loss curves (None, with
    ``picture_note`` saying why, when it could not be drawn)."""

    first: Job
    second: Job
    first_quality: Quality | None
    second_quality: Quality | None
    picture: Path | None = None
    picture_note: str = ""


def compare_refusal(first: Job, second: Job) -> str | None:
    """Why two jobs cannot be compared (None: they can): each must be a training that
    finished well, and both of the same kind."""
    if first.id == second.id:
        return "that is the same job twice; name two different trainings"
    for job in (first, second):
        if job.state in (JobState.QUEUED, JobState.RUNNING):
            return f"job {job.id} is {job.state.value}; compare it once it has finished"
        if job.spec.action is not Action.TRAIN:
            return f"job {job.id} is an inference, not a training: only trainings are compared"
        if job.state is not JobState.SUCCEEDED:
            return (
                f"job {job.id} is {job.state.value}: only trainings that finished well are compared"
            )
    if first.spec.kind != second.spec.kind:
        return (
            f"job {first.id} is a {first.spec.kind} training and job {second.id} a "
            f"{second.spec.kind} training: only jobs of the same kind are compared"
        )
    return None


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
        foreground: Foreground | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.results = results
        cgroup_root = find_cgroup_root() if settings.use_cgroups else None
        self.executor: Executor = executor or LocalExecutor(cgroup_root, settings.local_gpus)
        self.inputs = InputResolver(
            settings.input_roots,
            self._job_outputs,
            colabot_roots=(settings.jobs_dir, settings.cache_dir),
        )
        self.disk = DiskGuard(settings.data_dir, settings.min_free_disk_mb)
        self.timings: OrderedDict[int, JobTimings] = OrderedDict()
        self.foreground = foreground or Foreground()
        """Work someone waits on (the chat's answers), which the jobs' output lets go first."""
        self._runners: dict[int, JobRunner] = {}
        self._flushed: dict[int, float] = {}
        self._held: dict[int, str] = {}
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

    def on_state(self, callback: Callable[[Job], None]) -> Callable[[], None]:
        """Call ``callback`` with the job after every state change; returns what stops it."""
        self._state_listeners.append(callback)
        return lambda: _remove(self._state_listeners, callback)

    def before_run(self, callback: Callable[[Job, Path], Awaitable[None]]) -> None:
        """Await ``callback(job, workdir)`` when a job starts, before its inputs are resolved."""
        self.before_run_hooks.append(callback)

    def checkpoint_of(self, job_id: int) -> Path | None:
        """The newest checkpoint of a running job, as its kind finds it."""
        runner = self._runners.get(job_id)
        return runner.checkpoint() if runner is not None else None

    def on_progress(self, callback: Callable[[int, Progress], None]) -> Callable[[], None]:
        """Call ``callback`` with (job id, progress) whenever a running job reports progress;
        returns what stops it."""
        self._progress_listeners.append(callback)
        return lambda: _remove(self._progress_listeners, callback)

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
        owner: Owner | None = None,
        uploads: dict[str, Path] | None = None,
    ) -> Job:
        """Validate and queue a job for ``owner``; raise SpecError naming the bad field,
        QuotaError when the owner has used this week's GPU-hours, or DiskSpaceError when
        the data folder is too full to start one.

        ``uploads`` maps input slots to files delivered with the request; they are moved into
        the job's folder.
        """
        submitted = time.time()
        uploads = uploads or {}
        clean = self.check(spec, {slot: path.name for slot, path in uploads.items()})
        self.check_quota(owner, now=submitted)
        self.disk.check_room()
        job = self.store.add_job(clean, origin, now=submitted, owner=owner)
        for path in uploads.values():
            target = self.workdir(job.id) / "inputs" / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target)
        self.timing(job.id).submitted = submitted
        self._announce(job)
        self._notify_events()
        self._wake.set()
        return job

    def check_quota(self, owner: Owner | None, *, now: float | None = None) -> None:
        """Raise QuotaError when ``owner`` may not queue a job now: they have used this
        week's GPU-hours (``quotas.gpu_hours_per_user_per_week``)."""
        quotas = self.settings.quotas
        if owner is None or quotas.gpu_hours_per_user_per_week is None:
            return
        if owner.user_id in self.settings.quota_exempt:
            return
        now = time.time() if now is None else now
        since = week_start(now)
        used = used_gpu_hours(self.store.step_spans(since), owner.user_id, since=since, now=now)
        refusal = submit_refusal(owner.label, used, quotas, now)
        if refusal is not None:
            raise QuotaError(refusal)

    def usage(self, *, since: float = 0.0, now: float | None = None) -> list[Usage]:
        """Each person's GPU-hours and CPU wall-hours since ``since``, most first."""
        now = time.time() if now is None else now
        return usage(self.store.step_spans(since), since=since, now=now)

    async def usage_chart(self, rows: list[Usage], title: str) -> Path | None:
        """A bar chart of each person's GPU-hours (None when it could not be drawn)."""
        dest = self.settings.data_dir / "usage" / "usage.png"
        await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
        data = json.dumps([[u.name or f"user {u.owner_id}", round(u.gpu_hours, 3)] for u in rows])
        argv = [self.settings.python, "-m", "workers.sharing.chart", str(dest), title, data]
        ended = await run_briefly(argv, step_environment({}), PLOT_TIMEOUT_S)
        if ended.returncode == 0 and await asyncio.to_thread(dest.is_file):
            return dest
        log.warning("the usage chart failed: %s", " | ".join(ended.lines[-5:]))
        return None

    def held(self, job_id: int) -> str | None:
        """Why a queued job waits although a slot is free (a quota), or None."""
        return self._held.get(job_id)

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
        self.registry.get(job.spec.kind)  # a kind this colabot lacks is refused first
        require(job, Operation.PLOT)
        dest = self.workdir(job_id) / "plots" / f"loss-{time.time_ns()}.png"
        return await self._draw(job, dest)

    async def compare(self, first_id: int, second_id: int) -> Comparison:
        """Two finished trainings of one kind side by side: the held-out scores each kept,
        and one picture with both loss curves (None, with why, when it cannot be drawn).
        Raise UnknownJobError, or CompareError saying why the two cannot be compared."""
        first, second = self.store.get_job(first_id), self.store.get_job(second_id)
        reason = compare_refusal(first, second)
        if reason is not None:
            raise CompareError(first_id, second_id, reason)
        dest = self.workdir(first_id) / "plots" / f"compare-{second_id}-{time.time_ns()}.png"
        picture, note = None, ""
        try:
            picture = await self._draw(first, dest, compare=self.workdir(second_id))
        except (PlotError, SpecError) as exc:
            note = exc.reason if isinstance(exc, PlotError) else str(exc)
        return Comparison(
            first,
            second,
            self.store.quality(first_id),
            self.store.quality(second_id),
            picture,
            note,
        )

    async def _draw(self, job: Job, dest: Path, compare: Path | None = None) -> Path:
        """Run a job's kind's plot step into ``dest`` (with ``compare``: another job's
        folder, drawn beside it); the picture, or PlotError saying why there is none."""
        job_id = job.id
        kind = self.registry.get(job.spec.kind)
        workdir, python = self.workdir(job_id), self.settings.python
        step = (
            kind.plot(workdir, python, dest)
            if compare is None
            else kind.plot(workdir, python, dest, compare=compare)
        )
        if step is None:
            raise PlotError(job_id, f"{kind.name} jobs draw no loss")
        dest.parent.mkdir(parents=True, exist_ok=True)
        ended = await run_briefly(step.argv, step_environment(step.env), PLOT_TIMEOUT_S)
        if ended.returncode == 0 and await asyncio.to_thread(dest.is_file):
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

    def quality(self, job_id: int) -> Quality | None:
        """How good a training job's models are on held-out data, as it kept them (None:
        it kept nothing)."""
        return self.store.quality(job_id)

    def jobs(self, limit: int = 20, *, owner_id: int | None = None) -> list[Job]:
        """Recent jobs, newest first, with live progress; with ``owner_id``, only that
        person's (and jobs without an owner)."""
        found = self.store.list_jobs(limit=limit, owner_id=owner_id)
        return [self._with_live(job) for job in found]

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
        if runner is not None:
            return runner.placement()
        held = self._held.get(job_id)
        return Placement(waiting=held) if held is not None else None

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
        """The last lines of a job's log, read here however far back they go; raise
        UnknownJobError."""
        self.store.get_job(job_id)
        return tail_lines(self.log_path(job_id), lines)

    async def read_log_tail(self, job_id: int, lines: int) -> list[str]:
        """The last lines of a job's log, as :meth:`log_tail`, for the event loop: the job is
        looked up here (the store's thread), lines within the log's last block are read here
        too (a thread hop costs more than that read), and longer ones in a thread."""
        self.store.get_job(job_id)
        path = self.log_path(job_id)
        found = short_tail_lines(path, lines)
        if found is None:
            found = await asyncio.to_thread(tail_lines, path, lines)
        return found

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
        """Fill free slots, choosing across people (:func:`pick_next`); remember why the
        jobs that wait for a quota wait, and tell the chat when that changes."""
        held: dict[int, str] = {}
        while len(self._runners) < self.settings.max_parallel_jobs and not self._stopping:
            queued = [j for j in self.queued_jobs() if j.id not in self._runners]
            running = self.store.list_jobs(states=[JobState.RUNNING])
            pick = pick_next(queued, running, self.settings.quotas, self.settings.quota_exempt)
            held = pick.held
            if pick.job is None:
                break
            self._run_job(pick.job)
        changed = {i for i in held.keys() | self._held.keys() if held.get(i) != self._held.get(i)}
        self._held = held
        for job_id in changed:
            job = self.store.find_job(job_id)
            if job is not None and job.state is JobState.QUEUED:
                for callback in self._state_listeners:
                    _call(callback, job)

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
            foreground=self.foreground,
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


def _remove(listeners: list[Any], callback: Any) -> None:
    """Stop calling a listener (once it is gone, nothing happens)."""
    with contextlib.suppress(ValueError):
        listeners.remove(callback)

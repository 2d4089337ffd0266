"""Job records and their life cycle: pure data and one table of allowed state changes."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from workers.errors import (
    ColabotError,
    InvalidTransitionError,
    JobStateError,
    PlotError,
    StopEarlyError,
)
from workers.sharing.owners import Owner

ParamValue = str | int | float | bool


class Action(StrEnum):
    """What a job does with its kind: train a model or run one."""

    TRAIN = "train"
    INFER = "infer"


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


# The one place that says which state changes are legal.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED}
    ),
    JobState.INTERRUPTED: frozenset({JobState.QUEUED, JobState.CANCELLED}),
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


def can_transition(source: JobState, target: JobState) -> bool:
    """Whether the table allows ``source -> target``."""
    return target in TRANSITIONS[source]


def check_transition(source: JobState, target: JobState) -> None:
    """Raise InvalidTransitionError unless the table allows ``source -> target``."""
    if not can_transition(source, target):
        raise InvalidTransitionError(source.value, target.value)


class Operation(StrEnum):
    """What a person can ask of a job once it exists."""

    CANCEL = "cancel"
    RESUME = "resume"
    STOP_EARLY = "stop early"
    PLOT = "plot"


def refusal(job: Job, operation: Operation) -> ColabotError | None:
    """Why ``job`` cannot do ``request`` now (None: it can), from its state and action: the
    one place the chat's buttons, the handlers and the engine learn what a job may do."""
    state, training = job.state, job.spec.action is Action.TRAIN
    match operation:
        case Operation.CANCEL:
            if not can_transition(state, JobState.CANCELLED):
                return JobStateError(job.id, state.value, "cancel")
        case Operation.RESUME:
            if not can_transition(state, JobState.QUEUED):
                return JobStateError(job.id, state.value, "resume")
        case Operation.STOP_EARLY:
            if not training:
                return StopEarlyError(job.id, "only training stops early (/cancel stops it now)")
            if state is not JobState.RUNNING:
                return StopEarlyError(job.id, f"it is {state.value}, not training")
        case Operation.PLOT:
            if not training:
                return PlotError(job.id, "only training jobs have a loss to draw")
            if state is JobState.QUEUED:
                return PlotError(job.id, "it has not started yet")
    return None


def require(job: Job, operation: Operation) -> None:
    """Raise the error :func:`refusal` gives, if any."""
    refused = refusal(job, operation)
    if refused is not None:
        raise refused


LEGACY_UPLOAD = "upload:"
"""How records written before uploads were typed marked an upload in ``inputs``."""


@dataclass(frozen=True)
class JobSpec:
    """What to run: a kind (``selftest``, ``sleap``, ``spacy``), an action, named inputs,
    uploads, params.

    Inputs are source strings: a path on the machine, a URL, a Drive link or a job reference
    (``job:12``). Uploads are the input slots a file delivered with the request fills (a
    document sent in the chat): slot -> the file's name in the job's ``inputs`` folder.
    """

    kind: str
    action: Action
    inputs: dict[str, str] = field(default_factory=dict)
    params: dict[str, ParamValue] = field(default_factory=dict)
    uploads: dict[str, str] = field(default_factory=dict)

    def named_inputs(self) -> dict[str, str]:
        """Every filled input slot with what names it: a source, or an upload's file name
        (what a kind checks an input's form by)."""
        return {**self.inputs, **self.uploads}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "kind": self.kind,
            "action": self.action.value,
            "inputs": dict(self.inputs),
            "params": dict(self.params),
            "uploads": dict(self.uploads),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        """The inverse of :meth:`to_dict`; also reads records from before uploads were
        typed (a database or a snapshot of an older colabot)."""
        inputs = {str(k): str(v) for k, v in dict(data.get("inputs", {})).items()}
        uploads = {str(k): str(v) for k, v in dict(data.get("uploads", {})).items()}
        for slot, text in list(inputs.items()):
            if text.startswith(LEGACY_UPLOAD):
                uploads[slot] = text.removeprefix(LEGACY_UPLOAD)
                del inputs[slot]
        return cls(
            kind=str(data["kind"]),
            action=Action(data["action"]),
            inputs=inputs,
            params=dict(data.get("params", {})),
            uploads=uploads,
        )


@dataclass(frozen=True)
class Progress:
    """The latest known progress of a running job; every field is optional."""

    fraction: float | None = None
    message: str = ""
    eta_s: float | None = None
    step: int | None = None
    total: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    updated_at: float = 0.0
    link: str = ""
    """Where the run can be followed live (its W&B run page), when there is such a place."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Progress:
        """The inverse of :meth:`to_dict`; tolerates missing keys."""
        if not data:
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Link:
    """Where a result can be fetched: a URL or a path, with a label and a size."""

    label: str
    url: str
    size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Link:
        """The inverse of :meth:`to_dict`."""
        return cls(label=str(data["label"]), url=str(data["url"]), size=data.get("size"))


@dataclass(frozen=True)
class Job:
    """A job as the store records it."""

    id: int
    spec: JobSpec
    state: JobState
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    progress: Progress = field(default_factory=Progress)
    links: tuple[Link, ...] = ()
    error: str | None = None
    origin: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    checkpoint: str | None = None
    summary: str = ""
    owner: Owner | None = None
    """Who started it (None: a job from before owners were recorded, open to everyone)."""

    @property
    def finished(self) -> bool:
        """True once the job can no longer run (unless resumed)."""
        return self.state in FINISHED_STATES

    @property
    def active(self) -> bool:
        """True while the job waits or runs: it can still end, and its status can change."""
        return self.state in (JobState.QUEUED, JobState.RUNNING)

    @property
    def can_cancel(self) -> bool:
        """Whether the job can be cancelled now."""
        return refusal(self, Operation.CANCEL) is None

    @property
    def can_resume(self) -> bool:
        """Whether the job can be queued again (interrupted, failed)."""
        return refusal(self, Operation.RESUME) is None

    @property
    def can_stop_early(self) -> bool:
        """Whether the job trains now, so that its training may be asked to end early (its
        current step decides whether it can)."""
        return refusal(self, Operation.STOP_EARLY) is None

    def elapsed(self, now: float | None = None) -> float | None:
        """Seconds spent running so far (or in total once finished)."""
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else (now or time.time())
        return max(0.0, end - self.started_at)


@dataclass(frozen=True)
class CheckpointNote:
    """When a job's checkpoint was last saved off the machine, and how far the job was."""

    location: str
    saved_at: float
    progress: str


@dataclass(frozen=True)
class KeptOutput:
    """An output a finished job left on this machine, by role (``model``, ``predictions``...);
    later jobs can name it as an input (``job:12``)."""

    role: str
    path: str


@dataclass(frozen=True)
class StepRecord:
    """A step a job started: which executor runs it, and the executor's own reference to it
    (a process group here, a Ray job or a Slurm job), so a restarted colabot can find it."""

    job_id: int
    index: int
    name: str
    executor: str
    ref: dict[str, Any]
    started_at: float
    ended_at: float | None = None
    output_offset: int = 0
    """Bytes of the step's output already in the job log."""
    log_length: int = -1
    """How long the job log was when ``output_offset`` was recorded (-1: not known)."""
    gpus: float = 0.0
    """The GPUs the step holds, for accounting (0: it runs on CPUs)."""

"""The small protocol every job kind implements, and the shared parameter validation.

A kind validates a spec, plans its steps (argv lists run as subprocesses), reads progress from
their output lines, explains known failures and collects the outputs worth keeping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from workers.errors import SpecError
from workers.jobs import Action, Job, JobSpec, ParamValue, Progress
from workers.kinds.plans import read_json, write_json
from workers.quality import Quality
from workers.wandb.runs import WandbRun

ProgressParser = Callable[[str, str], Progress | None]
"""Given (source, line) from a step, return new progress or None."""

LIVE_SOURCE = "live"
"""The source name a parser sees for messages that came over a step's live channel."""
PLOT_REFUSAL = "colabot-plot: "
"""How a plot step begins the line that says why it drew nothing."""
STOPPED_EARLY = "stopped-early.json"
"""The file in a job's folder that lists the steps whose training was stopped early."""


@dataclass(frozen=True)
class LiveLink:
    """How a step talks to colabot while it runs on this machine.

    ``args`` turns the addresses of colabot's two private sockets (``ipc://`` paths in a
    0700 folder; progress in, commands out) into the arguments that tell the step about
    them; ``stop_command`` is the message that asks it to end its training early and keep
    its model.
    """

    args: Callable[[str, str], list[str]]
    stop_command: str


@dataclass(frozen=True)
class Param:
    """One parameter a kind accepts: its type, default and a line of help."""

    type: type[ParamValue]
    default: ParamValue | None
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class InputSlot:
    """A named input of an action, e.g. ``model`` and ``input`` for inference."""

    name: str
    help: str
    required: bool = True


@dataclass(frozen=True)
class Step:
    """One subprocess of a job: an argv list and what the engine needs to run it.

    ``wants_gpu`` tells a cluster executor to reserve a GPU for the step. A training step
    that can be stopped early says how: over its ``live`` link (where it runs on this
    machine), or by the appearance of its ``stop_file`` (anywhere the job's folder is seen).
    """

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    watch: tuple[Path, ...] = ()
    parser: ProgressParser | None = None
    wants_gpu: bool = False
    live: LiveLink | None = None
    stop_file: Path | None = None
    stops_when: str = "at its next check"
    """When a stop-early request takes effect, in words (``after the current batch``)."""


@dataclass(frozen=True)
class Output:
    """A file or folder worth keeping. ``role`` says what it is (model, predictions, ...).

    Small files are also sent into the chat unless ``send`` is off (checkpoints never are);
    ``send_as_photo`` sends an image as a photo, ``send_as_video`` an MP4 as a video that
    plays in the chat. Pictures that share an ``album`` name go together as one album (in
    their order), its title the name.
    """

    path: Path
    role: str
    label: str = ""
    send_as_photo: bool = False
    send: bool = True
    send_as_video: bool = False
    album: str = ""


@dataclass(frozen=True)
class Outcome:
    """What a finished job leaves: outputs to keep, a summary for the chat, metrics, and for
    a training job how good its models are on held-out data (:mod:`workers.quality`)."""

    outputs: list[Output] = field(default_factory=list)
    summary: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    quality: Quality | None = None


@dataclass
class JobContext:
    """Everything a kind may use while planning and collecting one run of a job."""

    job: Job
    workdir: Path
    inputs: dict[str, list[Path]]
    python: str
    notify: Callable[[str], None]
    resume_from: Path | None = None
    input_roots: tuple[Path, ...] = ()
    wandb: WandbRun | None = None
    cache_dir: Path | None = None
    """colabot's cache folder, where tools may keep what they can use again."""

    @property
    def spec(self) -> JobSpec:
        """The job's (validated) spec."""
        return self.job.spec

    @property
    def outputs_dir(self) -> Path:
        """Where this run writes what it produces."""
        return self.workdir / "outputs"

    @property
    def scratch_dir(self) -> Path:
        """Where this run keeps intermediate files."""
        return self.workdir / "work"

    def input(self, name: str) -> Path:
        """The (first) local path of a resolved input."""
        return self.inputs[name][0]

    def param(self, name: str) -> ParamValue | None:
        """A validated parameter (defaults filled in)."""
        return self.spec.params.get(name)

    @property
    def stopped_early(self) -> list[str]:
        """The names of this run's steps whose training was asked to stop early."""
        names = read_json(self.workdir / STOPPED_EARLY)
        return [str(n) for n in names] if isinstance(names, list) else []

    def mark_stopped_early(self, step: str) -> None:
        """Record that ``step`` was asked to stop early (kept across a restart)."""
        names = self.stopped_early
        if step not in names:
            write_json(self.workdir / STOPPED_EARLY, [*names, step])


class JobKind(Protocol):
    """A pluggable kind of job."""

    name: str
    summary: str
    actions: frozenset[Action]

    def inputs(self, action: Action) -> tuple[InputSlot, ...]:
        """The inputs this action takes, in command-line order."""
        ...

    def params(self, action: Action) -> Mapping[str, Param]:
        """The parameters this action accepts."""
        ...

    def validate(self, spec: JobSpec) -> JobSpec:
        """Check a spec and return it normalised; raise SpecError naming the field."""
        ...

    def steps(self, ctx: JobContext) -> Iterator[Step]:
        """The steps to run, lazily: later steps may read what earlier ones wrote."""
        ...

    def explain_failure(self, ctx: JobContext, step: Step, tail: list[str]) -> str | None:
        """A plain-words cause for a failed step, recognised from its last lines."""
        ...

    def collect(self, ctx: JobContext) -> Outcome:
        """The outputs and summary of a successful run."""
        ...

    def checkpoint(self, ctx: JobContext) -> Path | None:
        """The newest checkpoint a resumed run could continue from, if any."""
        ...

    def plot(
        self, workdir: Path, python: str, dest: Path, compare: Path | None = None
    ) -> Step | None:
        """A step that draws a training job's loss so far into ``dest`` (a PNG), from the
        files in its folder; None when this kind draws no loss. With ``compare`` (another
        job's folder, of the same kind) both jobs' loss curves are drawn in one picture,
        each named by its folder's name (the job id). The step exits with 2 and prints
        :data:`PLOT_REFUSAL` and the reason when there is nothing to draw yet."""
        ...


WANDB_PARAM = Param(
    bool, None, "log this training to Weights & Biases (default: the [wandb] setting)"
)

GENERIC_PARAMS: dict[str, Param] = {
    "timeout": Param(
        float, None, "stop the job after this many minutes", minimum=0.0, maximum=60 * 24 * 30
    ),
}
# Numbers beyond this are refused even where a parameter names no maximum of its own.
LARGEST_NUMBER = 10**12

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


def coerce_param(name: str, param: Param, raw: ParamValue) -> ParamValue:
    """Turn a raw value (usually chat text) into the parameter's type, or raise SpecError."""
    field_name = f"params.{name}"
    value: ParamValue
    if param.type is bool:
        if isinstance(raw, bool):
            value = raw
        elif str(raw).strip().lower() in _TRUE:
            value = True
        elif str(raw).strip().lower() in _FALSE:
            value = False
        else:
            raise SpecError(field_name, f"must be yes or no, got {raw!r}")
    elif param.type is int:
        if isinstance(raw, bool) or not re.fullmatch(r"[+-]?\d+", str(raw).strip()):
            raise SpecError(field_name, f"must be a whole number, got {raw!r}")
        value = int(str(raw).strip())
    elif param.type is float:
        try:
            if isinstance(raw, bool):
                raise ValueError
            value = float(str(raw).strip())
        except ValueError:
            raise SpecError(field_name, f"must be a number, got {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise SpecError(field_name, f"must be a finite number, got {raw!r}")
    else:
        value = str(raw)
        if param.choices and value not in param.choices:
            raise SpecError(field_name, f"must be one of {', '.join(param.choices)}, got {raw!r}")
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if param.minimum is not None and numeric and float(value) < param.minimum:
        raise SpecError(field_name, f"must be at least {param.minimum:g}, got {raw!r}")
    maximum = LARGEST_NUMBER if param.maximum is None else param.maximum
    if numeric and abs(float(value)) > maximum:
        shown = shorten(repr(raw), 24)
        raise SpecError(field_name, f"must be at most {_number(maximum)}, got {shown}")
    return value


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def shorten(text: str, limit: int = 200) -> str:
    """``text`` stripped, and cut to ``limit`` characters with an ellipsis when longer."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validate_common(
    spec: JobSpec,
    slots: tuple[InputSlot, ...],
    params: Mapping[str, Param],
    *,
    extra_param: Callable[[str], bool] | None = None,
) -> JobSpec:
    """Check inputs against ``slots`` and params against ``params``; fill defaults.

    ``extra_param`` accepts additional names (such as dotted config overrides) as strings.
    """
    known = {slot.name for slot in slots}
    for name in spec.inputs:
        if name not in known:
            expected = ", ".join(sorted(known)) or "none"
            raise SpecError(f"inputs.{name}", f"unknown input (expected: {expected})")
    for slot in slots:
        value = spec.inputs.get(slot.name, "").strip()
        if slot.required and not value:
            raise SpecError(f"inputs.{slot.name}", f"missing ({slot.help})")
    allowed = {**GENERIC_PARAMS, **params}
    clean: dict[str, ParamValue] = {}
    for name, raw in spec.params.items():
        if name in allowed:
            clean[name] = coerce_param(name, allowed[name], raw)
        elif extra_param is not None and extra_param(name):
            clean[name] = str(raw)
        else:
            choices = ", ".join(sorted(allowed))
            raise SpecError(f"params.{name}", f"unknown parameter (known: {choices})")
    for name, param in allowed.items():
        if name not in clean and param.default is not None:
            clean[name] = param.default
    inputs = {k: v.strip() for k, v in spec.inputs.items() if v.strip()}
    return JobSpec(kind=spec.kind, action=spec.action, inputs=inputs, params=clean)


EXAMPLE = "example"


def validate_with_example(
    spec: JobSpec,
    slots: tuple[InputSlot, ...],
    params: Mapping[str, Param],
    *,
    extra_param: Callable[[str], bool] | None = None,
) -> tuple[JobSpec, bool]:
    """:func:`validate_common` where the word ``example`` as the first input means
    ``example=yes`` (and that input becomes optional). Returns the clean spec and whether the
    built-in example was asked for."""
    first = slots[0].name
    inputs, raw = dict(spec.inputs), dict(spec.params)
    if inputs.get(first, "").strip().lower() == EXAMPLE:
        del inputs[first]
        raw.setdefault(EXAMPLE, True)
    example = EXAMPLE in raw and bool(coerce_param(EXAMPLE, params[EXAMPLE], raw[EXAMPLE]))
    if example:
        slots = (InputSlot(first, slots[0].help, required=False), *slots[1:])
    clean = validate_common(
        JobSpec(spec.kind, spec.action, inputs, raw), slots, params, extra_param=extra_param
    )
    return clean, example

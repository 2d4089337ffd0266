"""Pure parsing: chat text (and button data) into typed requests, or a UsageError.

Nothing here talks to Telegram or the engine; the kinds' input and parameter tables are
passed in as plain data.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import assert_never

from bot.errors import UsageError
from workers.jobs import Action
from workers.kinds.base import InputSlot, Param
from workers.kinds.registry import KindRegistry

MAX_LOG_LINES = 2000
DEFAULT_LOG_LINES = 30
DEFAULT_JOB_LIST = 10


@dataclass(frozen=True)
class HelpRequest:
    """/start or /help, optionally about one command or kind."""

    topic: str = ""
    welcome: bool = False


@dataclass(frozen=True)
class SubmitRequest:
    """/train or /infer: a job to submit. ``document_slot`` is filled by an attached file."""

    action: Action
    kind: str
    inputs: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    document_slot: str | None = None


@dataclass(frozen=True)
class JobsRequest:
    """/jobs [all] [n]: the caller's recent jobs, or everyone's."""

    limit: int = DEFAULT_JOB_LIST
    everyone: bool = False


@dataclass(frozen=True)
class UsageRequest:
    """/usage: GPU-hours this week and in total."""


@dataclass(frozen=True)
class StatusRequest:
    """/status <id>."""

    job_id: int


@dataclass(frozen=True)
class LogsRequest:
    """/logs <id> [n]."""

    job_id: int
    lines: int = DEFAULT_LOG_LINES


@dataclass(frozen=True)
class CancelRequest:
    """/cancel <id> (asks first) or a confirmed cancel from its button."""

    job_id: int
    confirmed: bool = False


@dataclass(frozen=True)
class CancelDeclined:
    """The "keep it running" button of a cancel confirmation."""

    job_id: int


@dataclass(frozen=True)
class StopEarlyRequest:
    """/stop <id> (asks first) or a confirmed stop from its button: end training early and
    keep the model."""

    job_id: int
    confirmed: bool = False


@dataclass(frozen=True)
class StopEarlyDeclined:
    """The "keep training" button of a stop-early confirmation."""

    job_id: int


@dataclass(frozen=True)
class PlotRequest:
    """/plot <id>: a picture of a training job's loss so far."""

    job_id: int


@dataclass(frozen=True)
class CompareRequest:
    """/compare <id> <id>: two finished trainings side by side."""

    first: int
    second: int


@dataclass(frozen=True)
class ResultsRequest:
    """/results <id>."""

    job_id: int


@dataclass(frozen=True)
class ResumeRequest:
    """/resume <id>."""

    job_id: int


@dataclass(frozen=True)
class RuntimeRequest:
    """/runtime."""


@dataclass(frozen=True)
class ReleaseRequest:
    """The idle-release offer's button: ``confirmed`` releases, otherwise it is dismissed."""

    confirmed: bool


Request = (
    HelpRequest
    | SubmitRequest
    | JobsRequest
    | StatusRequest
    | LogsRequest
    | CancelRequest
    | CancelDeclined
    | StopEarlyRequest
    | StopEarlyDeclined
    | PlotRequest
    | CompareRequest
    | ResultsRequest
    | ResumeRequest
    | RuntimeRequest
    | ReleaseRequest
    | UsageRequest
)

USAGE = {
    "start": "/start",
    "help": "/help [command or kind]",
    "train": "/train <kind> <input> [key=value ...]",
    "infer": "/infer <kind> <model> <input> [key=value ...]",
    "jobs": "/jobs [all] [how many]",
    "status": "/status <job id>",
    "logs": "/logs <job id> [lines]",
    "cancel": "/cancel <job id>",
    "stop": "/stop <job id>",
    "plot": "/plot <job id>",
    "compare": "/compare <job id> <job id>",
    "results": "/results <job id>",
    "resume": "/resume <job id>",
    "runtime": "/runtime",
    "usage": "/usage",
}

SUMMARY = {
    "start": "say hello and show what colabot can do",
    "help": "this help, or help on one command or job kind",
    "train": "start a training job",
    "infer": "run a trained model on new data",
    "jobs": "list your recent jobs (/jobs all: everyone's, with their owners)",
    "status": "state, progress, time left and last log lines of a job",
    "logs": "the last lines of a job's log (a file when long)",
    "cancel": "stop a job now, keeping nothing new (asks to confirm)",
    "stop": "end a training early and keep its model; later steps still run (asks to confirm)",
    "plot": "a picture of a training job's loss so far",
    "compare": "two finished trainings side by side: held-out scores, differing parameters "
    "and both loss curves",
    "results": "links to a job's results",
    "resume": "continue an interrupted or failed job from its last checkpoint",
    "runtime": "GPU, CPU, memory, disk and the runtime's age and time left",
    "usage": "GPU-hours used this week and in total (admins see everyone's)",
}


def command_name(text: str) -> str:
    """``/Status@my_bot 3`` -> ``status``; '' when the text is not a command."""
    if not text.startswith("/"):
        return ""
    return text.split(maxsplit=1)[0][1:].split("@", 1)[0].lower()


def _split(text: str, usage: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"could not read the command: {exc}", usage) from None


def parse_job_id(text: str, usage: str) -> int:
    """``12``, ``#12`` or ``job:12`` -> 12; anything else is a UsageError."""
    raw = text.strip()
    for prefix in ("#", "job:"):
        raw = raw.removeprefix(prefix)
    if not raw.isdigit() or len(raw) > 12:
        raise UsageError(f"{text!r} is not a job id (a number, like 12)", usage)
    return int(raw)


def _one_job_id(name: str, args: list[str]) -> int:
    usage = USAGE[name]
    if not args:
        raise UsageError(f"/{name} needs a job id", usage)
    if len(args) > 1:
        raise UsageError(f"/{name} takes one job id, got {len(args)} arguments", usage)
    return parse_job_id(args[0], usage)


def _compare(args: list[str]) -> CompareRequest:
    usage = USAGE["compare"]
    if len(args) != 2:
        raise UsageError(f"/compare takes two job ids, got {len(args)}", usage)
    first, second = (parse_job_id(arg, usage) for arg in args)
    if first == second:
        raise UsageError("name two different jobs", usage)
    return CompareRequest(first, second)


def kind_usage(
    action: Action, kind: str, slots: tuple[InputSlot, ...], params: Mapping[str, Param]
) -> str:
    """``/train selftest [input] [steps=5] ...`` from a kind's tables."""
    parts = [f"/{action.value}", kind]
    for slot in slots:
        parts.append(f"<{slot.name}>" if slot.required else f"[{slot.name}]")
    for name, param in params.items():
        default = "" if param.default is None else str(param.default).lower()
        parts.append(f"[{name}={default or '...'}]")
    return " ".join(parts)


def parse_submit(
    action: Action, args: list[str], registry: KindRegistry, *, has_document: bool
) -> SubmitRequest:
    """Arguments of /train or /infer -> a SubmitRequest (types are checked later, per kind)."""
    usage = USAGE[action.value]
    if not args:
        kinds = ", ".join(k.name for k in registry.all() if action in k.actions)
        raise UsageError(f"/{action.value} needs a job kind ({kinds})", usage)
    kind_name = args[0].lower()
    try:
        kind = registry.get(kind_name)
    except Exception as exc:
        raise UsageError(str(exc), usage) from None
    if action not in kind.actions:
        raise UsageError(f"{kind_name} jobs cannot {action.value}", usage)
    slots = kind.inputs(action)
    usage = kind_usage(action, kind_name, slots, kind.params(action))
    slot_names = [slot.name for slot in slots]
    positional: list[str] = []
    inputs: dict[str, str] = {}
    params: dict[str, str] = {}
    for arg in args[1:]:
        key, sep, value = arg.partition("=")
        if sep and key and "/" not in key and not key.startswith(("http", "~")):
            target = inputs if key in slot_names else params
            if key in target:
                raise UsageError(f"{key} is given twice", usage)
            if not value:
                raise UsageError(f"{key}= needs a value", usage)
            target[key] = value
        else:
            positional.append(arg)
    free = [name for name in slot_names if name not in inputs]
    if len(positional) > len(free):
        extra = " ".join(positional[len(free) :])
        raise UsageError(f"too many arguments: {extra}", usage)
    inputs.update(zip(free, positional, strict=False))
    document_slot = None
    if has_document:
        still_free = free[len(positional) :]
        if not still_free:
            raise UsageError(
                "the command already names every input, so the attached file would be unused; "
                "leave one input out to use the file",
                usage,
            )
        document_slot = still_free[0]
    return SubmitRequest(action, kind_name, inputs, params, document_slot)


def parse_command(text: str, registry: KindRegistry, *, has_document: bool = False) -> Request:
    """Parse one chat command; raise UsageError (with the right usage) when it is malformed."""
    name = command_name(text)
    if not name:
        raise UsageError("that is not a command; commands start with /", USAGE["help"])
    if name not in USAGE:
        raise UsageError(f"unknown command /{name}", "/help lists the commands")
    args = _split(text, USAGE[name])[1:]
    if name in ("start", "help"):
        if len(args) > 1:
            raise UsageError(f"/{name} takes at most one topic", USAGE[name])
        return HelpRequest(
            topic=(args[0].lstrip("/").lower() if args else ""), welcome=name == "start"
        )
    if name in ("train", "infer"):
        return parse_submit(Action(name), args, registry, has_document=has_document)
    if name == "jobs":
        everyone = bool(args) and args[0].lower() == "all"
        args = args[1:] if everyone else args
        if len(args) > 1:
            raise UsageError("/jobs takes 'all' and at most one number", USAGE["jobs"])
        if args and (not args[0].isdigit() or not 1 <= int(args[0]) <= 50):
            raise UsageError(f"{args[0]!r} is not a count from 1 to 50", USAGE["jobs"])
        return JobsRequest(int(args[0]) if args else DEFAULT_JOB_LIST, everyone)
    if name == "usage":
        if args:
            raise UsageError("/usage takes nothing after it", USAGE["usage"])
        return UsageRequest()
    if name == "logs":
        if not args or len(args) > 2:
            raise UsageError("/logs needs a job id and, optionally, a line count", USAGE["logs"])
        job_id = parse_job_id(args[0], USAGE["logs"])
        lines = DEFAULT_LOG_LINES
        if len(args) == 2:
            if not args[1].isdigit() or not 1 <= int(args[1]) <= MAX_LOG_LINES:
                raise UsageError(
                    f"{args[1]!r} is not a line count from 1 to {MAX_LOG_LINES}", USAGE["logs"]
                )
            lines = int(args[1])
        return LogsRequest(job_id, lines)
    if name == "compare":
        return _compare(args)
    if name == "runtime":
        if args:
            raise UsageError("/runtime takes no arguments", USAGE["runtime"])
        return RuntimeRequest()
    job_id = _one_job_id(name, args)
    requests: dict[str, Request] = {
        "status": StatusRequest(job_id),
        "cancel": CancelRequest(job_id),
        "stop": StopEarlyRequest(job_id),
        "plot": PlotRequest(job_id),
        "results": ResultsRequest(job_id),
        "resume": ResumeRequest(job_id),
    }
    return requests[name]


# Inline buttons: callback data is at most 64 bytes, so it is a short verb and a job id.


class Verb(StrEnum):
    """What a button asks for; its callback data is ``<verb>:<job id>`` (or ``rl:yes|no``)."""

    STATUS = "st"
    LOGS = "lg"
    CANCEL = "cx"
    CANCEL_CONFIRMED = "cy"
    CANCEL_DECLINED = "cn"
    STOP_EARLY = "se"
    STOP_EARLY_CONFIRMED = "sy"
    STOP_EARLY_DECLINED = "sn"
    RESUME = "rs"
    RESULTS = "rr"
    RELEASE = "rl"


def named_jobs(request: Request) -> tuple[int, ...]:
    """The jobs a request looks at or acts on, whose owners decide who may make it."""
    match request:
        case CompareRequest():
            return (request.first, request.second)
        case (
            StatusRequest()
            | LogsRequest()
            | CancelRequest()
            | CancelDeclined()
            | StopEarlyRequest()
            | StopEarlyDeclined()
            | PlotRequest()
            | ResultsRequest()
            | ResumeRequest()
        ):
            return (request.job_id,)
        case _:
            return ()


def button_data(verb: Verb, job_id: int) -> str:
    """Callback data for a job button (``st:12``)."""
    return f"{verb}:{job_id}"


def release_data(confirmed: bool) -> str:
    """Callback data for the buttons of the offer to release an idle runtime."""
    return f"{Verb.RELEASE}:{'yes' if confirmed else 'no'}"


def parse_button(data: str) -> Request:
    """Callback data -> a request; raise UsageError for data this bot did not make."""
    stale = UsageError(
        "that button is not valid any more", "use the buttons on a recent message, or /help"
    )
    text, _, rest = (data or "").partition(":")
    try:
        verb = Verb(text)
    except ValueError:
        raise stale from None
    if verb is Verb.RELEASE:
        if rest not in ("yes", "no"):
            raise stale
        return ReleaseRequest(confirmed=rest == "yes")
    if not rest.isdigit() or len(rest) > 12:
        raise stale
    job_id = int(rest)
    match verb:
        case Verb.STATUS:
            return StatusRequest(job_id)
        case Verb.LOGS:
            return LogsRequest(job_id)
        case Verb.CANCEL:
            return CancelRequest(job_id)
        case Verb.CANCEL_CONFIRMED:
            return CancelRequest(job_id, confirmed=True)
        case Verb.CANCEL_DECLINED:
            return CancelDeclined(job_id)
        case Verb.STOP_EARLY:
            return StopEarlyRequest(job_id)
        case Verb.STOP_EARLY_CONFIRMED:
            return StopEarlyRequest(job_id, confirmed=True)
        case Verb.STOP_EARLY_DECLINED:
            return StopEarlyDeclined(job_id)
        case Verb.RESUME:
            return ResumeRequest(job_id)
        case Verb.RESULTS:
            return ResultsRequest(job_id)
        case _:
            assert_never(verb)

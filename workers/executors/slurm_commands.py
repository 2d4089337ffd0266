"""Slurm's commands as colabot writes and reads them: pure functions, no I/O.

What goes in: the batch script (which ``exec``s the step's argv, every word quoted with
:func:`shlex.join`) and the ``sbatch`` argv. What comes out: ``sbatch --parsable``'s job
id, a job's state from ``squeue``, ``scontrol show job`` or ``sacct``, a partition's nodes
and GPUs from ``sinfo``, and what a job's end state means for the step.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from workers.executors.base import Capacity, Exit, Launch, Placement

# Options colabot sets itself and reads back: a user's value would break its bookkeeping.
FORBIDDEN_OPTIONS = {
    "--output": "colabot sets the step's log file itself",
    "-o": "colabot sets the step's log file itself",
    "--error": "colabot keeps stdout and stderr together in the step's log",
    "-e": "colabot keeps stdout and stderr together in the step's log",
    "--parsable": "colabot adds it to read the job id",
    "--wrap": "colabot writes the batch script itself",
}

SQUEUE_FORMAT = "%T|%r|%N|%e"
SINFO_FORMAT = "NodeList:|,Partition:|,Gres:|,GresUsed:|,CPUsState:|,StateLong:|"

ACTIVE_STATES = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
}


def forbidden_option(arg: str) -> str | None:
    """Why ``arg`` may not be passed to sbatch (None: it may)."""
    name = arg.split("=", 1)[0]
    if name in FORBIDDEN_OPTIONS:
        return FORBIDDEN_OPTIONS[name]
    for short in ("-o", "-e"):
        if arg.startswith(short) and not arg.startswith("--"):
            return FORBIDDEN_OPTIONS[short]
    for long in ("--output", "--error", "--parsable", "--wrap"):
        # sbatch accepts any unambiguous prefix of a long option.
        if len(name) > 4 and long.startswith(name):
            return FORBIDDEN_OPTIONS[long]
    return None


def parse_time_limit(text: str) -> int:
    """Seconds in a Slurm time limit: ``minutes``, ``minutes:seconds``,
    ``hours:minutes:seconds``, ``days-hours``, ``days-hours:minutes`` or
    ``days-hours:minutes:seconds``. ValueError for anything else (or zero)."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if match is None:
        raise ValueError(text)
    days, first, second, third = match.groups()
    if days is not None:
        hours, minutes, seconds = int(first), int(second or 0), int(third or 0)
        total = int(days) * 86400 + hours * 3600 + minutes * 60 + seconds
    elif third is not None:
        total = int(first) * 3600 + int(second) * 60 + int(third)
    elif second is not None:
        total = int(first) * 60 + int(second)
    else:
        total = int(first) * 60
    if total <= 0:
        raise ValueError(text)
    return total


@dataclass(frozen=True)
class SlurmSettings:
    """What each step asks Slurm for, and how often colabot looks at it."""

    partition: str = ""
    account: str = ""
    gres: str = "gpu:1"
    cpus_per_task: int = 2
    mem: str = "16G"
    time_limit: str = "12:00:00"
    extra_args: tuple[str, ...] = ()
    poll_s: float = 10.0
    command_timeout_s: float = 60.0
    python: str = "python"


def job_name(instance: str, launch: Launch) -> str:
    """``colabot-<instance>-job12-a1-s3-train``: the colabot job, attempt and step (one
    word: squeue and scontrol print it unquoted)."""
    step = re.sub(r"[^\w.-]+", "-", launch.name).strip("-")
    return f"colabot-{instance}-job{launch.job_id}-a{launch.attempt}-s{launch.index + 1}-{step}"


def batch_script(launch: Launch) -> str:
    """A batch script that becomes the step: the shell only changes folder and ``exec``s
    the argv (so scancel's signals reach the step itself)."""
    return (
        "#!/bin/sh\n"
        f"# {launch.label}, written by colabot\n"
        f"cd {shlex.quote(str(launch.cwd))} || exit 1\n"
        f"exec {shlex.join(launch.argv)}\n"
    )


def sbatch_argv(
    settings: SlurmSettings,
    launch: Launch,
    *,
    name: str,
    script: Path,
    output: Path,
) -> list[str]:
    """The sbatch command for one step."""
    argv = [
        "sbatch",
        "--parsable",
        f"--job-name={name}",
        f"--output={output}",
        "--open-mode=append",
        f"--chdir={launch.cwd}",
        "--no-requeue",
        "--export=ALL",
        "--ntasks=1",
        f"--cpus-per-task={settings.cpus_per_task}",
        f"--mem={settings.mem}",
        f"--time={settings.time_limit}",
    ]
    if settings.partition:
        argv.append(f"--partition={settings.partition}")
    if settings.account:
        argv.append(f"--account={settings.account}")
    if launch.wants_gpu and settings.gres:
        argv.append(f"--gres={settings.gres}")
    argv.extend(settings.extra_args)
    argv.append(str(script))
    return argv


def parse_job_id(stdout: str) -> str:
    """The job id ``sbatch --parsable`` printed (``123`` or ``123;cluster``)."""
    first = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job_id = first.split(";", 1)[0].strip()
    if not re.fullmatch(r"\d+(?:_\d+)?", job_id):
        raise ValueError(stdout.strip() or "(nothing)")
    return job_id


@dataclass(frozen=True)
class JobRecord:
    """What Slurm says about one job."""

    state: str
    reason: str = ""
    node: str = ""
    exit_code: int | None = None
    signal: int | None = None
    ends_at: float | None = None

    @property
    def active(self) -> bool:
        """Still pending or running."""
        return self.state in ACTIVE_STATES


def _timestamp(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        return None


def _exit_pair(text: str) -> tuple[int | None, int | None]:
    """``2:0`` -> (2, 0): the exit code and the signal that ended the job."""
    code, _, sig = text.strip().partition(":")
    try:
        return int(code), int(sig or 0)
    except ValueError:
        return None, None


def _base_state(text: str) -> str:
    """``CANCELLED by 0`` -> ``CANCELLED``."""
    return text.strip().split(" ", 1)[0].rstrip("+").upper()


def parse_squeue(stdout: str) -> JobRecord | None:
    """One job's line in ``squeue -h -o %T|%r|%N|%e`` (None: squeue no longer shows it)."""
    line = stdout.strip().splitlines()[0] if stdout.strip() else ""
    if not line:
        return None
    parts = [*line.split("|"), "", "", ""][:4]
    state, reason, node, end = (part.strip() for part in parts)
    return JobRecord(
        state=_base_state(state),
        reason="" if reason in ("None", "(null)") else reason,
        node="" if node in ("(null)", "n/a") else node,
        ends_at=_timestamp(end),
    )


def parse_scontrol(stdout: str) -> JobRecord | None:
    """``scontrol show job -o ID``: its JobState, Reason, NodeList, ExitCode and EndTime."""
    fields: dict[str, str] = {}
    for word in stdout.split():
        key, sep, value = word.partition("=")
        if sep and key not in fields:
            fields[key] = value
    if "JobState" not in fields:
        return None
    code, sig = _exit_pair(fields.get("ExitCode", ""))
    node = fields.get("NodeList", "")
    reason = fields.get("Reason", "")
    return JobRecord(
        state=_base_state(fields["JobState"]),
        reason="" if reason in ("None", "(null)") else reason,
        node="" if node == "(null)" else node,
        exit_code=code,
        signal=sig,
        ends_at=_timestamp(fields.get("EndTime", "")),
    )


def parse_sacct(stdout: str) -> JobRecord | None:
    """``sacct -n -P -X -o State,ExitCode,NodeList -j ID``: the job's own line."""
    for line in stdout.strip().splitlines():
        parts = line.split("|")
        if len(parts) >= 2 and parts[0].strip():
            code, sig = _exit_pair(parts[1])
            node = parts[2].strip() if len(parts) > 2 else ""
            return JobRecord(
                state=_base_state(parts[0]),
                node="" if node in ("None assigned", "(null)") else node,
                exit_code=code,
                signal=sig,
            )
    return None


def placement_of(record: JobRecord) -> Placement:
    """Waiting (with Slurm's reason, as in "waiting: Resources") or running on a node."""
    if record.state == "PENDING":
        return Placement(waiting=f"waiting: {record.reason or 'queued'}")
    if record.state in ("CONFIGURING", "REQUEUED"):
        return Placement(waiting="waiting: the node is being set up")
    return Placement(node=record.node or None, ends_at=record.ends_at)


def exit_of(record: JobRecord, settings: SlurmSettings) -> Exit:
    """How a finished job ended, in words when its exit code does not tell it all."""
    state = record.state
    node = f" ({record.node})" if record.node else ""
    if state == "COMPLETED":
        return Exit(0)
    if state == "TIMEOUT":
        return Exit(
            None,
            reason=f"hit its Slurm time limit (slurm.time_limit = {settings.time_limit}) and "
            "was ended by Slurm (TIMEOUT)",
        )
    if state == "OUT_OF_MEMORY":
        return Exit(
            None,
            reason=f"ran out of memory: Slurm ended it at its limit (slurm.mem = {settings.mem}, "
            "OUT_OF_MEMORY)",
        )
    if state == "NODE_FAIL":
        return Exit(None, reason=f"the node it ran on{node} failed (NODE_FAIL)", resumable=True)
    if state == "BOOT_FAIL":
        return Exit(None, reason=f"the node{node} failed to boot (BOOT_FAIL)", resumable=True)
    if state == "PREEMPTED":
        return Exit(
            None,
            reason="preempted by a higher-priority Slurm job (PREEMPTED)",
            resumable=True,
        )
    if state == "CANCELLED":
        return Exit(None, reason="was cancelled on the cluster (scancel)")
    if state == "DEADLINE":
        return Exit(None, reason="reached its Slurm deadline (DEADLINE)")
    if record.signal:
        return Exit(-record.signal)
    if record.exit_code is not None:
        return Exit(record.exit_code)
    return Exit(None, reason=f"the Slurm job ended {state}")


@dataclass(frozen=True)
class NodeLine:
    """One node of a partition, from ``sinfo -N -O``."""

    name: str
    partition: str
    gpus: int
    gpus_used: int
    cpus_idle: int
    cpus_total: int
    state: str


def _gres_gpus(text: str) -> int:
    """``gpu:a100:2(S:0-1),gpu:1`` -> 3."""
    total = 0
    for item in text.split(","):
        item = re.sub(r"\(.*?\)", "", item.strip())
        if not item.startswith("gpu"):
            continue
        count = item.rsplit(":", 1)[-1]
        total += int(count) if count.isdigit() else 0
    return total


def parse_sinfo_nodes(stdout: str) -> list[NodeLine]:
    """``sinfo -h -N -O NodeList:|,Partition:|,Gres:|,GresUsed:|,CPUsState:|,StateLong:|``."""
    nodes = []
    for line in stdout.strip().splitlines():
        parts = [part.strip() for part in line.split("|")]
        if len(parts) < 6 or not parts[0]:
            continue
        cpus = [*parts[4].split("/"), "0", "0", "0", "0"][:4]
        try:
            idle, total = int(cpus[1]), int(cpus[3])
        except ValueError:
            idle = total = 0
        nodes.append(
            NodeLine(
                name=parts[0],
                partition=parts[1].rstrip("*"),
                gpus=_gres_gpus(parts[2]),
                gpus_used=_gres_gpus(parts[3]),
                cpus_idle=idle,
                cpus_total=total,
                state=parts[5],
            )
        )
    return nodes


def default_partition(stdout: str) -> str:
    """The partition sinfo marks with ``*``, from the NodeList/Partition lines ('' if none)."""
    for line in stdout.strip().splitlines():
        parts = [part.strip() for part in line.split("|")]
        if len(parts) > 1 and parts[1].endswith("*"):
            return parts[1].rstrip("*")
    return ""


UNUSABLE_NODE_STATES = ("down", "drain", "fail", "maint", "unknown", "not_responding")


def capacity_of(nodes: Sequence[NodeLine], partition: str) -> Capacity:
    """A partition's nodes, CPUs and GPUs (free: on nodes that can take work)."""
    mine = [n for n in nodes if n.partition == partition]
    usable = [n for n in mine if not n.state.lower().startswith(UNUSABLE_NODE_STATES)]
    down = len(mine) - len(usable)
    details = (f"{down} node{'s' if down != 1 else ''} down or drained",) if down else ()
    return Capacity(
        name=f"Slurm partition {partition}",
        nodes=len(mine),
        gpus=sum(n.gpus for n in mine),
        free_gpus=sum(max(0, n.gpus - n.gpus_used) for n in usable),
        cpus=sum(n.cpus_total for n in mine),
        free_cpus=sum(n.cpus_idle for n in usable),
        largest_node_gpus=max((n.gpus for n in mine), default=0),
        details=details,
    )


def partitions_of(nodes: Sequence[NodeLine]) -> list[str]:
    """Every partition named, in sinfo's order."""
    return list(dict.fromkeys(n.partition for n in nodes))

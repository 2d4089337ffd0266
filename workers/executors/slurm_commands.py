"""Slurm's commands as colabot writes and reads them: pure functions, no I/O.

What goes in: the batch script (which ``exec``s the step's argv, given as its arguments:
nothing from a step is written into its text but a sanitised label) and the ``sbatch`` argv,
with only the allowed ``slurm.extra_args`` (:func:`extra_arg_problem`). What comes out:
``sbatch --parsable``'s job id, a job's state from ``squeue``, ``scontrol show job`` or
``sacct``, a partition's nodes and GPUs from ``sinfo``, and what a job's end state means for
the step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from workers.executors.base import Capacity, Exit, Launch, Placement
from workers.executors.settings import SlurmSettings, gres_gpus
from workers.safety.names import has_control, label, word

# sbatch options colabot passes on from slurm.extra_args: what a site may need to pick nodes,
# queues and notices. Everything else is refused: colabot sets the log, the job's folder,
# environment and script itself and reads them back, and sbatch accepts abbreviations and
# bundled short options a deny-list would miss. Each is given as --name=value; the ones in
# FLAG_OPTIONS may also stand alone.
ALLOWED_OPTIONS = frozenset(
    {
        "--begin",
        "--comment",
        "--constraint",
        "--contiguous",
        "--cores-per-socket",
        "--cpus-per-gpu",
        "--deadline",
        "--exclude",
        "--exclusive",
        "--gpus",
        "--gpus-per-node",
        "--gpus-per-socket",
        "--gpus-per-task",
        "--gres-flags",
        "--hint",
        "--licenses",
        "--mail-type",
        "--mail-user",
        "--mem-per-cpu",
        "--mem-per-gpu",
        "--nice",
        "--nodelist",
        "--nodes",
        "--ntasks",
        "--ntasks-per-node",
        "--prefer",
        "--qos",
        "--reservation",
        "--signal",
        "--sockets-per-node",
        "--switches",
        "--threads-per-core",
        "--time-min",
        "--tmp",
        "--wckey",
    }
)
FLAG_OPTIONS = frozenset({"--contiguous", "--exclusive", "--nice"})
# Options that have a setting of their own, or that colabot sets and reads back.
OWN_OPTIONS = {
    "--account": "set slurm.account instead",
    "--partition": "set slurm.partition instead",
    "--time": "set slurm.time_limit instead",
    "--mem": "set slurm.mem instead",
    "--gres": "set slurm.gres instead",
    "--cpus-per-task": "set slurm.cpus_per_task instead",
    "--output": "colabot sets the step's log file itself",
    "--error": "colabot keeps stdout and stderr together in the step's log",
    "--open-mode": "colabot sets the step's log file itself",
    "--parsable": "colabot adds it to read the job id",
    "--wrap": "colabot writes the batch script itself",
    "--chdir": "colabot starts each step in its own folder",
    "--export": "colabot hands each step its cleaned environment itself",
    "--export-file": "colabot hands each step its cleaned environment itself",
    "--get-user-env": "colabot hands each step its cleaned environment itself",
    "--job-name": "colabot names each job after its colabot job and step",
    "--requeue": "colabot resumes jobs itself",
    "--array": "colabot submits one job per step",
    "--wait": "colabot follows each job itself",
    "--test-only": "colabot needs the job to run",
    "--hold": "colabot needs the job to run",
}

EXPORT = "--export=ALL"
"""How every sbatch of colabot's (steps and probes) hands the job its environment: all of
sbatch's own, which colabot sets to the cleaned step environment
(:func:`workers.safety.environment.step_environment`). Slurm keeps it with the job (in
slurmctld's state), so nothing secret may be in it; a step's secrets travel in a private
file instead (:mod:`workers.executors.handover`)."""

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


def extra_arg_problem(arg: str) -> str | None:
    """Why ``arg`` may not be passed on to sbatch from ``slurm.extra_args`` (None: it may).

    Only the options in :data:`ALLOWED_OPTIONS`, each spelled in full as ``--name=value``
    (a flag in :data:`FLAG_OPTIONS` may stand alone): sbatch would take an abbreviation
    (``--ou=``) or a bundle of short options (``-oX``) for an option colabot must set itself.
    """
    allowed = ", ".join(sorted(ALLOWED_OPTIONS))
    name, sep, value = arg.partition("=")
    if not arg.startswith("--") or len(name) < 3:
        return (
            f"must be an sbatch option in its --name=value form, got {arg!r} (short options "
            f"are not passed on; allowed: {allowed})"
        )
    if has_control(arg):
        return f"{label(arg)!r} holds control characters"
    if name in OWN_OPTIONS:
        return f"{arg!r} may not be given: {OWN_OPTIONS[name]}"
    if name not in ALLOWED_OPTIONS:
        return (
            f"{arg!r} may not be given: it is not one of the sbatch options colabot passes on "
            f"(each in full, as --name=value: {allowed})"
        )
    if not sep and name not in FLAG_OPTIONS:
        return f"{arg!r} needs its value in the same item, as {name}=VALUE"
    if sep and not value:
        return f"{arg!r} has an empty value"
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


def job_name(instance: str, launch: Launch) -> str:
    """``colabot-<instance>-job12-a1-s3-train``: the colabot job, attempt and step (one
    word: squeue and scontrol print it unquoted)."""
    step = word(launch.name)
    return f"colabot-{instance}-job{launch.job_id}-a{launch.attempt}-s{launch.index + 1}-{step}"


BATCH_SCRIPT = """\
#!/bin/sh
# {label}, written by colabot
# The step's folder and command come as this script's arguments, never in its text.
cd "$1" || exit 1
shift
exec "$@"
"""


def batch_script(launch: Launch) -> str:
    """A batch script that becomes the step: the shell only changes folder and ``exec``s
    the argv (so scancel's signals reach the step itself). Nothing from the step is in its
    text but its label, on one comment line (:func:`workers.safety.names.label`); the folder
    and the argv are the script's arguments (:func:`sbatch_argv`)."""
    return BATCH_SCRIPT.format(label=label(launch.label))


def sbatch_argv(
    settings: SlurmSettings,
    launch: Launch,
    *,
    name: str,
    script: Path,
    output: Path,
) -> list[str]:
    """The sbatch command for one step: the settings, then the script and its arguments
    (the step's folder and argv). The job gets sbatch's own environment (:data:`EXPORT`),
    which is the step's cleaned one."""
    argv = [
        "sbatch",
        "--parsable",
        f"--job-name={name}",
        f"--output={output}",
        "--open-mode=append",
        f"--chdir={launch.cwd}",
        "--no-requeue",
        EXPORT,
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
    # The script's arguments: sbatch hands them to the script as they are, with no shell.
    argv += [str(script), str(launch.cwd), *launch.argv]
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
    for item in stdout.split():
        key, sep, value = item.partition("=")
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
                gpus=gres_gpus(parts[2]),
                gpus_used=gres_gpus(parts[3]),
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

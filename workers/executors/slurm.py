"""Steps on a Slurm cluster, from its login node: each step is one ``sbatch`` of a batch
script colabot writes.

The script ``exec``s the step's argv (given as the script's arguments, never in its text),
so the signals of a staged cancel (``scancel --batch --signal=INT``, then TERM, then
``scancel``) reach the step itself. Its output goes to a file next to the job (``--output``,
created private beforehand), which colabot follows and redacts into ``job.log``; the raw
file is removed once the step has ended. Every Slurm command, ``sbatch`` above all, runs
with the cleaned step environment (Slurm keeps a batch job's environment in its saved state),
and a step's secrets reach it through a private file (:mod:`workers.executors.handover`).
The state comes from ``squeue``, then ``scontrol`` for a job squeue no longer shows, then
``sacct`` where accounting is on; a cluster without slurmdbd works too. Files stay where
they are: the data folder must be on a filesystem the compute nodes see (``colabot check``
runs a probe job).

Slurm is reached only through its commands, found on PATH (and ``SLURM_CONF``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import shlex
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.errors import ExecutorError, StartError, StepLostError
from workers.executors.base import (
    PROBE_NAME,
    Capacity,
    Exit,
    Grace,
    Launch,
    Placement,
    take_probe_file,
)
from workers.executors.handover import SUFFIX, hand_over
from workers.executors.settings import SlurmSettings
from workers.executors.slurm_commands import (
    EXPORT,
    SINFO_FORMAT,
    SQUEUE_FORMAT,
    JobRecord,
    batch_script,
    capacity_of,
    default_partition,
    exit_of,
    job_name,
    parse_job_id,
    parse_sacct,
    parse_scontrol,
    parse_sinfo_nodes,
    parse_squeue,
    partitions_of,
    placement_of,
    sbatch_argv,
)
from workers.safety.environment import step_environment
from workers.safety.files import create_private, open_nofollow, private_dir
from workers.waits import wait_at_most

log = logging.getLogger(__name__)

NAME = "slurm"
STEP_FOLDER = ".slurm"
OUTPUT_POLL_S = 0.25
OUTPUT_GRACE_S = 15.0
COMMANDS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")


@dataclass(frozen=True)
class CommandResult:
    """A Slurm command's exit status and output."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def said(self) -> str:
        """What it printed on stderr (or stdout), in one line."""
        text = (self.stderr or self.stdout).strip()
        return text.splitlines()[-1] if text else f"exit status {self.returncode}"


class SlurmExecutor:
    """Runs each step as a Slurm batch job on ``settings.partition``."""

    name = NAME
    survives_restart = True
    runs_here = False

    def __init__(
        self,
        settings: SlurmSettings,
        instance: str,
        *,
        python: str = "python",
        command_timeout_s: float = 60.0,
    ) -> None:
        """``python`` is the interpreter a step's helper code runs with on the cluster's
        nodes; a Slurm command that does not answer within ``command_timeout_s`` fails."""
        self.settings = settings
        self.instance = instance
        self.python = python
        self.command_timeout_s = command_timeout_s
        self._partition = ""
        self._accounting: bool | None = None

    # commands -----------------------------------------------------------------------------

    def check_commands(self) -> None:
        """ExecutorError naming the first Slurm command missing from PATH."""
        for command in COMMANDS:
            if shutil.which(command) is None:
                raise ExecutorError(
                    NAME,
                    f"{command} is not on PATH: run colabot on the cluster's login node, or add "
                    "Slurm's bin folder to PATH",
                )

    async def run(
        self, *argv: str, env: Mapping[str, str] | None = None, stdin: bytes | None = None
    ) -> CommandResult:
        """Run one Slurm command (an argv list, never a shell), with a time limit; ``stdin``
        is written to its standard input. It gets ``env``, else the cleaned step environment:
        no Slurm command sees colabot's secrets."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=dict(env) if env is not None else step_environment(),
            )
        except FileNotFoundError:
            raise ExecutorError(
                NAME, f"{argv[0]} is not on PATH: run colabot on the cluster's login node"
            ) from None
        except OSError as exc:
            raise ExecutorError(NAME, f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin), timeout=self.command_timeout_s
            )
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise ExecutorError(
                NAME,
                f"{argv[0]} did not answer within {self.command_timeout_s:g} s (is slurmctld up?)",
            ) from None
        return CommandResult(
            proc.returncode if proc.returncode is not None else -1,
            out.decode("utf-8", errors="replace"),
            err.decode("utf-8", errors="replace"),
        )

    # the cluster --------------------------------------------------------------------------

    async def _nodes_text(self) -> str:
        result = await self.run("sinfo", "-h", "-N", "-O", SINFO_FORMAT)
        if result.returncode != 0:
            raise ExecutorError(NAME, f"sinfo failed: {result.said}")
        return result.stdout

    async def connect(self) -> None:
        """Check the commands, reach the controller and find the partition; ExecutorError in
        one line when the cluster cannot be used."""
        self.check_commands()
        text = await self._nodes_text()
        nodes = parse_sinfo_nodes(text)
        known = partitions_of(nodes)
        if not self.settings.partition:
            partition = default_partition(text) or (known[0] if known else "")
            if not partition:
                raise ExecutorError(NAME, "sinfo lists no partition on this cluster")
        elif self.settings.partition not in known:
            raise ExecutorError(
                NAME,
                f"there is no partition {self.settings.partition!r} on this cluster (sinfo lists: "
                f"{', '.join(known) or 'none'})",
            )
        else:
            partition = self.settings.partition
        self._partition = partition

    @property
    def partition(self) -> str:
        """The partition steps go to (the cluster's default when none is set; '' until
        :meth:`connect` found it)."""
        return self._partition

    def gpus_held(self, launch: Launch) -> float:
        """The GPUs the settings reserve for a step that wants one."""
        return float(self.settings.gpus_per_step) if launch.wants_gpu else 0.0

    async def capacity(self) -> Capacity:
        """The partition's nodes, CPUs and GPUs, and how many are free."""
        if not self._partition:
            await self.connect()
        nodes = parse_sinfo_nodes(await self._nodes_text())
        version = await self.run("sinfo", "--version")
        capacity = capacity_of(nodes, self._partition)
        others = [p for p in partitions_of(nodes) if p != self._partition]
        details = capacity.details
        if others:
            lines = []
            for name in others:
                other = capacity_of(nodes, name)
                lines.append(
                    f"partition {name}: {other.nodes} node{'s' if other.nodes != 1 else ''}, "
                    f"{other.gpus} GPU{'s' if other.gpus != 1 else ''} ({other.free_gpus} free)"
                )
            details = (*details, *lines)
        return Capacity(
            name=capacity.name,
            nodes=capacity.nodes,
            gpus=capacity.gpus,
            free_gpus=capacity.free_gpus,
            cpus=capacity.cpus,
            free_cpus=capacity.free_cpus,
            version=version.stdout.strip().removeprefix("slurm ").strip(),
            largest_node_gpus=capacity.largest_node_gpus,
            details=details,
        )

    async def probe_shared(self, folder: Path, timeout_s: float = 300.0) -> None:
        """Check that the compute nodes see ``folder``: a probe job writes a file there and
        colabot reads it back. ExecutorError names the folder when they do not."""
        if not self._partition:
            await self.connect()
        nonce = secrets.token_hex(8)
        target = folder / f"{PROBE_NAME}-{nonce}"
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        code = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
        probe = [self.python, "-c", code, str(target), nonce]
        script = f"#!/bin/sh\nexec {shlex.join(probe)}\n"
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name=colabot-{self.instance}-probe",
            "--output=/dev/null",
            EXPORT,
            "--ntasks=1",
            "--cpus-per-task=1",
            "--mem=100M",
            "--time=2",
            f"--partition={self._partition}",
        ]
        if self.settings.account:
            argv.append(f"--account={self.settings.account}")
        argv.extend(self.settings.extra_args)
        submitted = await self._submit(argv, script)
        deadline = time.monotonic() + timeout_s
        record: JobRecord | None = JobRecord("PENDING")
        while time.monotonic() < deadline:
            record = await self.record(submitted)
            if record is None or not record.active:
                break
            await asyncio.sleep(0.5)
        seen = await asyncio.to_thread(take_probe_file, target)
        if seen == nonce:
            return
        if record is not None and record.active:
            await self.run("scancel", submitted)
            problem = f"the probe job did not run within {timeout_s:g} s (the partition is busy?)"
        elif record is not None and record.state == "COMPLETED":
            problem = "the probe job wrote its file there, but it did not appear here"
        else:
            state = record.state if record else "an unknown state"
            problem = f"the probe job could not write there (it ended {state})"
        raise ExecutorError(
            NAME,
            f"the Slurm compute nodes do not share colabot's data folder {folder}: {problem}. Put "
            "worker.data_dir on a filesystem the compute nodes mount at the same path",
        )

    async def _submit(
        self, argv: list[str], script: str, env: Mapping[str, str] | None = None
    ) -> str:
        """sbatch the script given on stdin; the job id."""
        result = await self.run(*argv, env=env, stdin=script.encode())
        if result.returncode != 0:
            raise ExecutorError(NAME, f"sbatch refused the step: {result.said}")
        try:
            return parse_job_id(result.stdout)
        except ValueError as exc:
            raise ExecutorError(NAME, f"sbatch printed no job id: {exc}") from None

    async def record(self, slurm_job: str) -> JobRecord | None:
        """What Slurm knows of a job: squeue, then scontrol, then sacct (None: nothing)."""
        queued = await self.run("squeue", "-j", slurm_job, "-h", "-o", SQUEUE_FORMAT)
        if queued.returncode == 0:
            found = parse_squeue(queued.stdout)
            if found is not None and found.active:
                return found
        elif "invalid job id" not in queued.said.lower():
            raise ExecutorError(NAME, f"squeue failed: {queued.said}")
        shown = await self.run("scontrol", "-o", "show", "job", slurm_job)
        if shown.returncode == 0:
            found = parse_scontrol(shown.stdout)
            if found is not None:
                return found
        elif "invalid job id" not in shown.said.lower():
            raise ExecutorError(NAME, f"scontrol failed: {shown.said}")
        return await self._accounted(slurm_job)

    async def _accounted(self, slurm_job: str) -> JobRecord | None:
        if self._accounting is False:
            return None
        result = await self.run(
            "sacct", "-n", "-P", "-X", "-o", "State,ExitCode,NodeList", "-j", slurm_job
        )
        if result.returncode != 0:
            if "accounting storage is disabled" in result.said.lower():
                self._accounting = False
            return None
        self._accounting = True
        return parse_sacct(result.stdout)

    # steps --------------------------------------------------------------------------------

    def step_files(self, launch: Launch) -> tuple[Path, Path]:
        """The batch script and the raw output file of a step (its private settings, when
        it has secrets, are beside them: :func:`secrets_file`)."""
        folder = (launch.job_dir or launch.cwd) / STEP_FOLDER
        stem = f"step{launch.index + 1}-a{launch.attempt}"
        return folder / f"{stem}.sh", folder / f"{stem}.out"

    async def start(self, launch: Launch) -> SlurmStep:
        """Write the batch script (and the step's private settings) and sbatch it."""
        script, output = self.step_files(launch)
        try:
            await asyncio.to_thread(private_dir, script.parent)
            launch = await asyncio.to_thread(hand_over, launch, secrets_file(output), self.python)
            await asyncio.to_thread(_prepare_files, script, output, batch_script(launch))
            if not self._partition:
                await self.connect()
            settings = dataclasses.replace(self.settings, partition=self._partition)
            argv = sbatch_argv(
                settings, launch, name=job_name(self.instance, launch), script=script, output=output
            )
            slurm_job = await self._submit(argv, "", env=launch.env)
        except ExecutorError as exc:
            raise StartError(launch.name, exc.reason) from exc
        except OSError as exc:
            raise StartError(launch.name, f"cannot write the batch script: {exc}") from exc
        log.info("%s: Slurm job %s", launch.label, slurm_job)
        return SlurmStep(self, slurm_job, output)

    async def reattach(self, ref: Mapping[str, Any], launch: Launch) -> SlurmStep:
        """The step's Slurm job: still queued or running, or ended while colabot was away
        (then its real end state is read)."""
        slurm_job = str(ref.get("slurm_job", ""))
        output = Path(str(ref.get("output") or self.step_files(launch)[1]))
        try:
            self.check_commands()
            record = await self.record(slurm_job)
        except ExecutorError as exc:
            raise StepLostError(
                slurm_job, f"cannot find the step's Slurm job: {exc.reason}"
            ) from exc
        if record is None:
            raise StepLostError(
                slurm_job,
                f"the step's Slurm job {slurm_job} ended while colabot was away, and the cluster "
                "no longer says how (it keeps no accounting records)",
            )
        return SlurmStep(self, slurm_job, output, record)

    async def close(self) -> None:
        """Nothing is held."""


def secrets_file(output: Path) -> Path:
    """Where a step's private settings wait for it (beside its output file)."""
    return output.with_suffix(SUFFIX)


def _prepare_files(script: Path, output: Path, text: str) -> None:
    """The batch script, and the output file, both created private and anew, never through
    a link (the raw output is not redacted until colabot reads it)."""
    for path in (script, output):
        path.unlink(missing_ok=True)  # an earlier try of this attempt's; never followed
    with create_private(script) as handle:
        handle.write(text.encode())
    create_private(output).close()


class SlurmStep:
    """One Slurm batch job, followed from the login node."""

    def __init__(
        self,
        executor: SlurmExecutor,
        slurm_job: str,
        output: Path,
        record: JobRecord | None = None,
    ) -> None:
        self.executor = executor
        self.slurm_job = slurm_job
        self.output_path = output
        self._record = record
        self._placement = (
            placement_of(record) if record is not None else Placement(waiting="waiting: submitted")
        )
        self._ended = asyncio.Event()
        self._given_up = asyncio.Event()
        self._wake = asyncio.Event()
        self._stop_note: str | None = None

    @property
    def ref(self) -> dict[str, Any]:
        """The Slurm job id and the raw output file."""
        return {"slurm_job": self.slurm_job, "output": str(self.output_path)}

    @property
    def pid(self) -> None:
        """The step runs on a compute node."""
        return None

    @property
    def output_grace_s(self) -> float:
        """A shared filesystem can show the last lines a moment after the job ended."""
        return OUTPUT_GRACE_S

    async def output(self) -> AsyncIterator[bytes]:
        """The step's output file, from its start, as it grows, until the job has ended and
        the file stopped growing."""
        offset = 0
        quiet_after_end = 0
        while True:
            chunk = await asyncio.to_thread(_read_from, self.output_path, offset)
            if chunk:
                if not offset and self._placement.waiting:
                    self._wake.set()  # it has started: read where it runs now
                offset += len(chunk)
                quiet_after_end = 0
                yield chunk
                continue
            if self._ended.is_set() or self._given_up.is_set():
                quiet_after_end += 1
                if quiet_after_end >= 3:
                    return
            await asyncio.sleep(OUTPUT_POLL_S)

    async def _pause(self, seconds: float) -> None:
        await wait_at_most(self._wake, seconds)
        self._wake.clear()

    async def wait(self) -> Exit:
        """Poll the job's state until it ends; a controller that does not answer is asked
        again (jobs keep running while slurmctld restarts)."""
        executor = self.executor
        known = self._record  # what a re-attach already read
        while not self._given_up.is_set():
            if known is not None and not known.active:
                record: JobRecord | None = known
            else:
                try:
                    record = await executor.record(self.slurm_job)
                except ExecutorError as exc:
                    log.warning("Slurm job %s: %s; asking again", self.slurm_job, exc.reason)
                    await self._pause(executor.settings.poll_seconds)
                    continue
            known = None
            if record is None:
                self._ended.set()
                return Exit(
                    None,
                    reason=f"the Slurm job {self.slurm_job} vanished: Slurm no longer knows it",
                    lost=True,
                )
            self._record = record
            if not record.active:
                self._ended.set()
                end = exit_of(record, executor.settings)
                return Exit(
                    end.returncode, end.reason, resumable=end.resumable, note=self._stop_note
                )
            self._placement = placement_of(record)
            await self._pause(executor.settings.poll_seconds)
        return Exit(None, reason="stopped", note=self._stop_note)

    async def stop(self, grace: Grace) -> None:
        """SIGINT, then SIGTERM after ``grace``, then ``scancel``; a job still pending is
        simply cancelled (a signal would not reach a step that has not started). Reports a
        job that will not end."""
        try:
            record = await self.executor.record(self.slurm_job)
        except ExecutorError:
            record = self._record
        if record is not None and not record.active:
            return
        if record is not None and record.state == "PENDING":
            stages: list[tuple[tuple[str, ...], float]] = [((), 30.0)]
        else:
            stages = [
                (("--batch", "--signal=INT"), grace.after_interrupt),
                (("--batch", "--signal=TERM"), grace.after_terminate),
                ((), 30.0),
            ]
        for options, wait_s in stages:
            await self._scancel(*options)
            if await self._ends_within(wait_s):
                return
        job = self.slurm_job
        self._stop_note = (
            f"The Slurm job {job} did not end after scancel; colabot stopped following it. "
            f"Check it with: squeue -j {job}"
        )
        log.warning("%s", self._stop_note)
        self._given_up.set()
        self._wake.set()

    async def _scancel(self, *options: str) -> None:
        with contextlib.suppress(ExecutorError):
            result = await self.executor.run("scancel", *options, self.slurm_job)
            if result.returncode != 0:
                log.info("scancel %s %s: %s", " ".join(options), self.slurm_job, result.said)

    async def _ends_within(self, seconds: float) -> bool:
        """Whether the job ends within ``seconds`` (its state read often meanwhile)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                record = await self.executor.record(self.slurm_job)
            except ExecutorError:
                record = self._record
            if record is None or not record.active:
                self._record = record
                self._wake.set()
                return True
            self._record = record
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(0.5, self.executor.settings.poll_seconds))

    def placement(self) -> Placement:
        """Waiting (with Slurm's reason) or running on a node, as last seen."""
        return dataclasses.replace(self._placement, cluster="Slurm", job=str(self.slurm_job))

    async def close(self) -> None:
        """Remove the raw output once the step has ended (job.log holds it, redacted)."""
        if self._ended.is_set():
            with contextlib.suppress(OSError):
                self.output_path.unlink(missing_ok=True)
                self.output_path.with_suffix(".sh").unlink(missing_ok=True)
                secrets_file(self.output_path).unlink(missing_ok=True)


def _read_from(path: Path, offset: int, limit: int = 1 << 20) -> bytes:
    """Up to ``limit`` bytes of ``path`` from ``offset`` (b'' when there are none yet)."""
    try:
        with open_nofollow(path) as handle:
            handle.seek(offset)
            return handle.read(limit)
    except OSError:
        return b""

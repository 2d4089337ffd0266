"""Steps on a Ray cluster: each step is one Ray job, submitted through the Jobs API.

The step's argv becomes the job's entrypoint, quoted with :func:`shlex.join` (the shell Ray
runs it in sees no unquoted user text); its resources are reserved with
``entrypoint_num_gpus`` and ``entrypoint_num_cpus``; its own environment (what differs from
colabot's cleaned one) travels in ``runtime_env.env_vars``, which anyone with the cluster's
token reads through the Jobs API: its secrets (the W&B key) go through a private file in the
job's folder instead (:mod:`workers.executors.handover`). A Ray job also inherits the
environment of the Ray node it runs on (whatever the node was started with).

The submission id names this colabot, the job, its attempt and step, plus a random part; its
metadata says the same, and a restarted colabot follows a stored submission only when the
metadata matches. Files stay where they are: the data folder must be on a filesystem every
node sees (checked by a probe job before any GPU time is spent).

This module imports Ray, so the bot process loads it only when ``worker.executor = "ray"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shlex
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from ray.exceptions import AuthenticationError
from ray.job_submission import JobStatus, JobSubmissionClient

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
from workers.executors.settings import RaySettings
from workers.safety.environment import step_environment
from workers.safety.names import label
from workers.waits import wait_at_most

STEP_FOLDER = ".ray"
# The step environment's safety settings go to the node even where colabot has them too: the
# node's own environment is whatever it was started with.
ALWAYS_SENT = frozenset({"PYTHONSAFEPATH", "PYTHONPATH", "PYTHONUNBUFFERED"})

log = logging.getLogger(__name__)

T = TypeVar("T")

NAME = "ray"
OUTPUT_GRACE_S = 60.0


class RayExecutor:
    """Runs each step as a Ray job on the cluster at ``settings.address``."""

    name = NAME
    survives_restart = True
    # A step runs on whichever node the cluster picks, even with the head on this machine.
    runs_here = False

    def __init__(
        self,
        settings: RaySettings,
        instance: str,
        *,
        python: str = "python",
        poll_s: float = 0.25,
        request_timeout_s: float = 15.0,
        lost_after_s: float = 20.0,
    ) -> None:
        """``python`` is the interpreter a step's helper code runs with on the cluster; the
        Jobs API is asked every ``poll_s`` and given ``request_timeout_s`` to answer; a
        cluster that stops answering for ``lost_after_s`` has lost its jobs."""
        self.settings = settings
        self.instance = instance
        self.python = python
        self.poll_s = poll_s
        self.request_timeout_s = request_timeout_s
        self.lost_after_s = lost_after_s
        self._client: JobSubmissionClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self._nodes: dict[str, str] = {}

    # connection ---------------------------------------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        """The token, as the Jobs API wants it."""
        token = self.settings.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def connect(self) -> None:
        """Open the Jobs API client; ExecutorError in one line when that cannot be done."""
        if self._client is not None:
            return
        address = self.settings.address
        self._client = await self.call(
            "connect", lambda: JobSubmissionClient(address, headers=self.headers)
        )

    def _explain(self, doing: str, exc: BaseException) -> ExecutorError:
        address = self.settings.address
        text = str(exc)
        refused = isinstance(exc, aiohttp.ClientResponseError) and exc.status in (401, 403)
        if refused and not self.settings.token:
            exc = AuthenticationError("missing token")
        elif refused:
            exc = AuthenticationError("invalid token")
        text = str(exc)
        if isinstance(exc, AuthenticationError):
            if "invalid" in text.lower():
                reason = f"the Ray cluster at {address} refused the token (ray.token is wrong)"
            else:
                reason = (
                    f"the Ray cluster at {address} needs a token: set ray.token "
                    "(or COLABOT_RAY_TOKEN)"
                )
        elif isinstance(exc, TimeoutError):
            reason = f"the Ray cluster at {address} did not answer in time ({doing})"
        elif isinstance(exc, ConnectionError | OSError | aiohttp.ClientError):
            reason = (
                f"cannot reach the Ray cluster at {address}: nothing answers there (is the head "
                "running, with its dashboard on, and is ray.address its dashboard URL?)"
            )
        else:
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            reason = f"the Ray cluster at {address} refused to {doing}: {first}"
        return ExecutorError(NAME, reason)

    async def call(self, doing: str, action: Callable[[], T]) -> T:
        """Run a blocking Jobs API call in a thread, with a time limit; errors in words."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(action), timeout=self.request_timeout_s)
        except Exception as exc:
            raise self._explain(doing, exc) from exc

    def client(self) -> JobSubmissionClient:
        """The connected client."""
        if self._client is None:
            raise ExecutorError(NAME, "the Ray executor is not connected")
        return self._client

    async def _get(self, path: str) -> Any:
        """A GET of the dashboard's own API, with the token."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.request_timeout_s)
            self._session = aiohttp.ClientSession(headers=self.headers, timeout=timeout)
        url = self.settings.address.rstrip("/") + path
        try:
            async with self._session.get(url) as response:
                response.raise_for_status()
                return await response.json(content_type=None)
        except Exception as exc:
            raise self._explain(f"read {path}", exc) from exc

    # steps --------------------------------------------------------------------------------

    def submission_id(self, launch: Launch) -> str:
        """A Ray job id naming this colabot, the job, its attempt and the step, with a random
        part (nobody can submit a job under the id colabot will use)."""
        return (
            f"colabot-{self.instance}-job{launch.job_id}-a{launch.attempt}-s{launch.index + 1}"
            f"-{secrets.token_hex(4)}"
        )

    def metadata(self, launch: Launch) -> dict[str, str]:
        """What the Ray job says about itself: this colabot, the job, its attempt and step."""
        return {
            "colabot_instance": self.instance,
            "colabot_job": str(launch.job_id),
            "colabot_attempt": str(launch.attempt),
            "colabot_step_index": str(launch.index + 1),
            "colabot_step": label(launch.name),
        }

    def entrypoint(self, launch: Launch) -> str:
        """The step's argv as a shell command for Ray: every word quoted."""
        return f"cd {shlex.quote(str(launch.cwd))} && exec {shlex.join(launch.argv)}"

    def env_vars(self, env: Mapping[str, str]) -> dict[str, str]:
        """A step's own settings: what differs from colabot's environment (a node has its
        own PATH and HOME), and always what keeps a sent file from running code. Visible to
        anyone with the cluster's token: never a secret."""
        return {k: v for k, v in env.items() if os.environ.get(k) != v or k in ALWAYS_SENT}

    def secrets_file(self, launch: Launch) -> Path:
        """Where a step's private settings wait for it, in the job's folder."""
        folder = (launch.job_dir or launch.cwd) / STEP_FOLDER
        return folder / f"step{launch.index + 1}-a{launch.attempt}{SUFFIX}"

    async def start(self, launch: Launch) -> RayStep:
        """Submit the step as a Ray job (its secrets in a private file beside the job)."""
        await self.connect()
        client = self.client()
        submission = self.submission_id(launch)
        gpus = self.settings.gpus_per_job if launch.wants_gpu else 0
        private = self.secrets_file(launch)
        try:
            handed = await asyncio.to_thread(hand_over, launch, private, self.python)
        except OSError as exc:
            reason = f"cannot write the step's private settings: {exc}"
            raise StartError(launch.name, reason) from exc
        try:
            await self.call(
                "start the step",
                lambda: client.submit_job(
                    entrypoint=self.entrypoint(handed),
                    submission_id=submission,
                    entrypoint_num_gpus=gpus,
                    entrypoint_num_cpus=self.settings.cpus_per_job,
                    runtime_env={"env_vars": self.env_vars(handed.env)},
                    metadata=self.metadata(launch),
                ),
            )
        except ExecutorError as exc:
            private.unlink(missing_ok=True)
            raise StartError(launch.name, exc.reason) from exc
        return RayStep(self, submission, private)

    async def reattach(self, ref: Mapping[str, Any], launch: Launch) -> RayStep:
        """The step's Ray job, still known to the cluster (running or ended since), once its
        metadata shows it is this colabot's job, attempt and step."""
        submission = str(ref.get("submission_id", ""))
        try:
            await self.connect()
            client = self.client()
            info = await self.call("find the step", lambda: client.get_job_info(submission))
        except ExecutorError as exc:
            raise StepLostError(submission, f"the step's Ray job is gone: {exc.reason}") from exc
        found = dict(getattr(info, "metadata", None) or {})
        expected = self.metadata(launch)
        expected.pop("colabot_step")  # a kind may rename a step between versions
        if any(found.get(key) != value for key, value in expected.items()):
            raise StepLostError(
                submission,
                f"the Ray job {label(submission)} is not this step's (its metadata names "
                "another colabot, job, attempt or step), so colabot does not follow it",
            )
        return RayStep(self, submission, self.secrets_file(launch))

    # the cluster --------------------------------------------------------------------------

    async def node_name(self, node_id: str | None) -> str | None:
        """A node's address, from its id."""
        if not node_id:
            return None
        if node_id not in self._nodes:
            with contextlib.suppress(ExecutorError):
                for node in await self._node_list():
                    self._nodes[str(node.get("node_id"))] = str(
                        node.get("node_name") or node.get("node_ip") or ""
                    )
        return self._nodes.get(node_id) or node_id[:12]

    async def _node_list(self) -> list[dict[str, Any]]:
        data = await self._get("/api/v0/nodes?detail=1")
        return list(data["data"]["result"]["result"])

    def gpus_held(self, launch: Launch) -> float:
        """The GPUs the settings reserve for a step that wants one."""
        return self.settings.gpus_per_job if launch.wants_gpu else 0.0

    async def capacity(self) -> Capacity:
        """Nodes, CPUs and GPUs, total and free, and the Ray version."""
        await self.connect()
        version = await self._get("/api/version")
        nodes = [n for n in await self._node_list() if n.get("state") == "ALIVE"]
        totals: dict[str, float] = {}
        largest_gpus = 0.0
        for node in nodes:
            resources = node.get("resources_total") or {}
            largest_gpus = max(largest_gpus, float(resources.get("GPU", 0)))
            for key in ("CPU", "GPU"):
                totals[key] = totals.get(key, 0.0) + float(resources.get(key, 0))
        used = await self._usage()
        return Capacity(
            name=f"Ray cluster at {self.settings.address}",
            nodes=len(nodes),
            gpus=int(totals.get("GPU", 0)),
            free_gpus=None if used is None else int(totals.get("GPU", 0) - used.get("GPU", 0)),
            cpus=int(totals.get("CPU", 0)),
            free_cpus=None if used is None else int(totals.get("CPU", 0) - used.get("CPU", 0)),
            version=str(version.get("ray_version", "")),
            largest_node_gpus=int(largest_gpus),
        )

    async def _usage(self) -> dict[str, float] | None:
        """Resources in use now, from the autoscaler's report (None when it has none yet)."""
        try:
            status = await self._get("/api/cluster_status")
            usage = status["data"]["clusterStatus"]["loadMetricsReport"]["usage"]
            return {key: float(usage[key][0]) for key in ("CPU", "GPU") if key in usage}
        except (ExecutorError, KeyError, TypeError, IndexError):
            return None

    async def queued(self) -> int:
        """How many jobs wait for resources on the cluster."""
        client = self.client()
        jobs = await self.call("list jobs", client.list_jobs)
        return sum(1 for job in jobs if job.status == JobStatus.PENDING)

    async def probe_shared(self, folder: Path, timeout_s: float = 120.0) -> None:
        """Check that the cluster's nodes see ``folder``: a probe job writes a file there and
        colabot reads it back. ExecutorError names the folder when they do not."""
        await self.connect()
        client = self.client()
        nonce = secrets.token_hex(8)
        target = folder / f"{PROBE_NAME}-{nonce}"
        code = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
        entrypoint = shlex.join([self.python, "-c", code, str(target), nonce])
        submission = f"colabot-{self.instance}-probe-{nonce}"
        await self.call(
            "run a probe job",
            lambda: client.submit_job(
                entrypoint=entrypoint,
                submission_id=submission,
                entrypoint_num_cpus=0,
                runtime_env={"env_vars": self.env_vars(step_environment())},
                metadata={"colabot_instance": self.instance, "colabot_probe": "shared folder"},
            ),
        )
        deadline = time.monotonic() + timeout_s
        status = JobStatus.PENDING
        while time.monotonic() < deadline:
            status = await self.call("run a probe job", lambda: client.get_job_status(submission))
            if status.is_terminal():
                break
            await asyncio.sleep(0.5)
        seen = await asyncio.to_thread(take_probe_file, target)
        if seen == nonce:
            return
        if status is JobStatus.SUCCEEDED:
            problem = "the probe job wrote its file there, but it did not appear here"
        elif status.is_terminal():
            logs = await self.call("read the probe's log", lambda: client.get_job_logs(submission))
            last = [line for line in logs.strip().splitlines() if line.strip()][-1:]
            problem = f"the probe job could not write there ({(last or [str(status)])[0]})"
        else:
            problem = f"the probe job did not run within {timeout_s:g} s (the cluster is busy?)"
        raise ExecutorError(
            NAME,
            f"the Ray cluster does not share colabot's data folder {folder}: {problem}. Put "
            "worker.data_dir on a filesystem every node mounts at the same path (NFS, a "
            "mounted bucket)",
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class RayStep:
    """One Ray job, followed from colabot."""

    def __init__(self, executor: RayExecutor, submission: str, private: Path) -> None:
        self.executor = executor
        self.submission = submission
        self.private = private
        """The step's private settings file (the step removes it as it starts)."""
        self._ended = False
        self._placement = Placement(waiting="waiting for the Ray cluster to start the step")
        self._stop_note: str | None = None
        self._given_up = asyncio.Event()

    @property
    def ref(self) -> dict[str, Any]:
        """The Ray submission id."""
        return {"submission_id": self.submission}

    @property
    def pid(self) -> None:
        """The step runs on another machine."""
        return None

    @property
    def output_grace_s(self) -> float:
        """Ray's log stream can end seconds after the job did."""
        return OUTPUT_GRACE_S

    async def output(self) -> AsyncIterator[bytes]:
        """The Ray job's log, from its start, as it grows, until the job has ended.

        Ray's log stream can end early (a job it has not set up yet, a dropped websocket);
        it is then read again from the start, and what was already handed over is skipped.
        """
        client = self.executor.client()
        seen = 0
        while True:
            offset = 0
            try:
                async for text in client.tail_job_logs(self.submission):
                    data = text.encode("utf-8", errors="replace")
                    start, offset = offset, offset + len(data)
                    if offset <= seen:
                        continue
                    yield data[max(0, seen - start) :]
                    seen = offset
            except Exception as exc:  # a stream that breaks is read again below
                log.info("the log stream of %s broke: %r", self.submission, exc)
            try:
                status = await self.executor.call(
                    "read the step's status", lambda: client.get_job_status(self.submission)
                )
            except ExecutorError:
                return  # the cluster is gone; wait() tells how the step ended
            if status.is_terminal() or self._given_up.is_set():
                return
            await self._pause()

    async def wait(self) -> Exit:
        """Poll the job's status until it ends (or the cluster stops answering)."""
        executor = self.executor
        client = executor.client()
        silent_since: float | None = None
        polls = 0
        while not self._given_up.is_set():
            try:
                info = await executor.call("read the step's status", self._info_call(client))
                silent_since = None
            except ExecutorError as exc:
                silent_since = silent_since or time.monotonic()
                if time.monotonic() - silent_since >= executor.lost_after_s:
                    return Exit(
                        None,
                        reason=f"{exc.reason}; the step's Ray job was lost with it",
                        lost=True,
                    )
                await self._pause()
                continue
            if info.status.is_terminal():
                self._ended = True
                return self._exit(info)
            await self._update_placement(info, polls)
            polls += 1
            await self._pause()
        return Exit(None, reason="stopped", note=self._stop_note)

    def _info_call(self, client: JobSubmissionClient) -> Callable[[], Any]:
        submission = self.submission
        return lambda: client.get_job_info(submission)

    async def _pause(self) -> None:
        await wait_at_most(self._given_up, self.executor.poll_s)

    async def _update_placement(self, info: Any, polls: int) -> None:
        if info.status == JobStatus.PENDING:
            if polls % 5 == 0:
                with contextlib.suppress(ExecutorError):
                    queued = await self.executor.queued()
                    self._placement = Placement(
                        waiting=f"waiting for a free GPU on the cluster ({queued} queued)"
                    )
            return
        node = await self.executor.node_name(getattr(info, "driver_node_id", None))
        self._placement = Placement(node=node)

    def _exit(self, info: Any) -> Exit:
        status = info.status
        code = getattr(info, "driver_exit_code", None)
        if status == JobStatus.SUCCEEDED:
            return Exit(0)
        if status == JobStatus.STOPPED:
            return Exit(None, reason="stopped on the Ray cluster", note=self._stop_note)
        if code is not None:
            return Exit(int(code))
        message = str(info.message or "").strip().splitlines()
        return Exit(None, reason=f"the Ray job failed: {message[0] if message else status}")

    async def stop(self, grace: Grace) -> None:
        """Ask Ray to stop the job (SIGTERM, then a kill); report one that will not stop."""
        executor = self.executor
        client = executor.client()
        submission = self.submission
        with contextlib.suppress(ExecutorError):
            await executor.call("stop the step", lambda: client.stop_job(submission))
        wait_s = grace.after_interrupt + grace.after_terminate
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                status = await executor.call(
                    "read the step's status", lambda: client.get_job_status(submission)
                )
            except ExecutorError:
                break
            if status.is_terminal():
                return
            await asyncio.sleep(min(0.5, executor.poll_s))
        self._stop_note = (
            f"The Ray job {submission} did not stop within {wait_s:g} s; colabot stopped "
            f"following it. Stop it on the cluster with: ray job stop {submission}"
        )
        log.warning("%s", self._stop_note)
        self._given_up.set()

    def placement(self) -> Placement:
        """Waiting for resources (with the queue length), or running on a node."""
        return dataclasses.replace(self._placement, cluster="Ray", job=self.submission)

    async def close(self) -> None:
        """Remove the step's private settings once it has ended (a step that never started
        left them)."""
        if self._ended:
            await asyncio.to_thread(self.private.unlink, missing_ok=True)

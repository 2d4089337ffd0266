"""Steps on a Ray cluster: each step is one Ray job, submitted through the Jobs API.

The step's argv becomes the job's entrypoint, quoted with :func:`shlex.join` (the shell Ray
runs it in sees no unquoted user text); its resources are reserved with
``entrypoint_num_gpus`` and ``entrypoint_num_cpus``; its own environment travels in
``runtime_env.env_vars``. The submission id names the colabot job and step, so a restarted
colabot finds the job again. Files stay where they are: the data folder must be on a
filesystem every node sees (checked by a probe job before any GPU time is spent).

This module imports Ray, so the bot process loads it only when ``worker.executor = "ray"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shlex
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
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

log = logging.getLogger(__name__)

T = TypeVar("T")

NAME = "ray"
OUTPUT_GRACE_S = 60.0


@dataclass(frozen=True)
class RaySettings:
    """How to reach a Ray cluster's Jobs API, and what each step reserves there.

    ``gpus_per_job`` is reserved for steps that want a GPU (others reserve none). A cluster
    that stops answering for ``lost_after_s`` has lost its jobs.
    """

    address: str
    token: str = ""
    gpus_per_job: float = 1.0
    cpus_per_job: float = 1.0
    poll_s: float = 0.25
    request_timeout_s: float = 15.0
    lost_after_s: float = 20.0
    python: str = "python"


class RayExecutor:
    """Runs each step as a Ray job on the cluster at ``settings.address``."""

    name = NAME
    survives_restart = True
    # A step runs on whichever node the cluster picks, even with the head on this machine.
    runs_here = False

    def __init__(self, settings: RaySettings, instance: str) -> None:
        self.settings = settings
        self.instance = instance
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
            return await asyncio.wait_for(
                asyncio.to_thread(action), timeout=self.settings.request_timeout_s
            )
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
            timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout_s)
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
        """A Ray job id naming this colabot, the job, its attempt and the step."""
        return f"colabot-{self.instance}-job{launch.job_id}-a{launch.attempt}-s{launch.index + 1}"

    def entrypoint(self, launch: Launch) -> str:
        """The step's argv as a shell command for Ray: every word quoted."""
        return f"cd {shlex.quote(str(launch.cwd))} && exec {shlex.join(launch.argv)}"

    def env_vars(self, launch: Launch) -> dict[str, str]:
        """The step's own settings: what differs from colabot's environment (a node has its
        own PATH and HOME)."""
        return {k: v for k, v in launch.env.items() if os.environ.get(k) != v}

    async def start(self, launch: Launch) -> RayStep:
        """Submit the step as a Ray job."""
        await self.connect()
        client = self.client()
        submission = self.submission_id(launch)
        gpus = self.settings.gpus_per_job if launch.wants_gpu else 0
        try:
            await self.call(
                "start the step",
                lambda: client.submit_job(
                    entrypoint=self.entrypoint(launch),
                    submission_id=submission,
                    entrypoint_num_gpus=gpus,
                    entrypoint_num_cpus=self.settings.cpus_per_job,
                    runtime_env={"env_vars": self.env_vars(launch)},
                    metadata={"colabot_job": str(launch.job_id), "colabot_step": launch.name},
                ),
            )
        except ExecutorError as exc:
            raise StartError(launch.name, exc.reason) from exc
        return RayStep(self, submission)

    async def reattach(self, ref: Mapping[str, Any], launch: Launch) -> RayStep:
        """The step's Ray job, still known to the cluster (running or ended since)."""
        submission = str(ref.get("submission_id", ""))
        try:
            await self.connect()
            client = self.client()
            await self.call("find the step", lambda: client.get_job_info(submission))
        except ExecutorError as exc:
            raise StepLostError(submission, f"the step's Ray job is gone: {exc.reason}") from exc
        return RayStep(self, submission)

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
        entrypoint = shlex.join([self.settings.python, "-c", code, str(target), nonce])
        submission = f"colabot-{self.instance}-probe-{nonce}"
        await self.call(
            "run a probe job",
            lambda: client.submit_job(
                entrypoint=entrypoint,
                submission_id=submission,
                entrypoint_num_cpus=0,
                metadata={"colabot_probe": "shared folder"},
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

    def __init__(self, executor: RayExecutor, submission: str) -> None:
        self.executor = executor
        self.submission = submission
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
                if time.monotonic() - silent_since >= executor.settings.lost_after_s:
                    return Exit(
                        None,
                        reason=f"{exc.reason}; the step's Ray job was lost with it",
                        lost=True,
                    )
                await self._pause()
                continue
            if info.status.is_terminal():
                return self._exit(info)
            await self._update_placement(info, polls)
            polls += 1
            await self._pause()
        return Exit(None, reason="stopped", note=self._stop_note)

    def _info_call(self, client: JobSubmissionClient) -> Callable[[], Any]:
        submission = self.submission
        return lambda: client.get_job_info(submission)

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._given_up.wait(), self.executor.settings.poll_s)

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
            await asyncio.sleep(min(0.5, executor.settings.poll_s))
        self._stop_note = (
            f"The Ray job {submission} did not stop within {wait_s:g} s; colabot stopped "
            f"following it. Stop it on the cluster with: ray job stop {submission}"
        )
        log.warning("%s", self._stop_note)
        self._given_up.set()

    def placement(self) -> Placement:
        """Waiting for resources (with the queue length), or running on a node."""
        return self._placement

    async def close(self) -> None:
        """Nothing is held per step."""

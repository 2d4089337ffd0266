"""The real test clusters (tests/clusters/) as the tests drive them: an executor on each, the
chat's settings and a colabot process's environment for jobs there, and Ray's own job list.

The ``cluster`` fixture gives an :class:`OnRay` or an :class:`OnSlurm`, so that a test whose
shape both share runs once on each. Ray's modules load only when a Ray helper runs, so the
Slurm tests do not need Ray installed.
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from bot.config import Config
from tests.clusters.ray_head import RayHead
from tests.clusters.slurm_cluster import NODE, SlurmCluster
from tests.helpers.cli import colabot_env
from workers.engine import Engine
from workers.executors.base import Executor
from workers.executors.settings import RaySettings, SlurmSettings
from workers.executors.slurm import SlurmExecutor

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

    from emulator import BotApiEmulator
    from workers.executors.ray import RayExecutor


class ClusterExecutor(Executor, Protocol):
    """An executor on a cluster: it connects (and checks the cluster) before its first step."""

    async def connect(self) -> None:
        """Reach the cluster; ExecutorError, in one line, when it cannot be used."""
        ...


EngineOn = Callable[[ClusterExecutor], Awaitable[Engine]]
"""The ``engine_on`` fixture: ``await engine_on(executor)`` -> an engine whose steps run there."""

SLURM_CHAT = {"cpus_per_task": 1, "mem": "100M", "poll_seconds": 0.5, "time_limit": "10"}
"""What the test node can give a chat's step: one CPU, 100 MB (it has two CPUs and 1000 MB)."""


def ray_executor(
    head: RayHead, instance: str = "", *, token: str | None = None, lost_after_s: float = 20.0
) -> RayExecutor:
    """An executor on ``head`` (with its token, unless ``token`` is given), polled often;
    ``instance`` names the colabot (a random one when empty)."""
    from workers.executors.ray import RayExecutor

    settings = RaySettings(address=head.address, token=head.token if token is None else token)
    return RayExecutor(
        settings,
        instance or secrets.token_hex(4),
        python=sys.executable,
        poll_s=0.25,
        lost_after_s=lost_after_s,
    )


def slurm_executor(instance: str, **changes: object) -> SlurmExecutor:
    """An executor whose steps fit the test node: one CPU, 100 MB, polled often."""
    base = SlurmSettings(cpus_per_task=1, mem="100M", time_limit="10", poll_seconds=0.3)
    settings = dataclasses.replace(base, **changes)  # type: ignore[arg-type]
    return SlurmExecutor(settings, instance, python=sys.executable)


def ray_client(head: RayHead) -> JobSubmissionClient:
    """Ray's own Jobs API client for ``head``, with its token."""
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(head.address, headers={"Authorization": f"Bearer {head.token}"})


def ray_jobs(head: RayHead) -> dict[str, tuple[str, dict[str, str]]]:
    """Ray's own job list: submission id -> (status, metadata)."""
    return {
        str(job.submission_id): (str(job.status), dict(job.metadata or {}))
        for job in ray_client(head).list_jobs()
    }


class Cluster(ABC):
    """One real test cluster, as a test that runs on each of them sees it."""

    kind: ClassVar[str]
    """``"ray"`` or ``"slurm"``: what the executor-specific checks go by."""
    node: ClassVar[str]
    """The node a step runs on, as the chat names it."""

    @abstractmethod
    def chat_config(self, config: Config) -> Config:
        """The chat configuration with jobs on this cluster."""

    @abstractmethod
    def bot_env(self, home: Path, emu: BotApiEmulator) -> dict[str, str]:
        """The environment of a colabot process on the emulator (for the allowed user, data
        and results under ``home``, no heartbeat) with jobs on this cluster."""

    @abstractmethod
    def executor(self, instance: str) -> ClusterExecutor:
        """An executor on this cluster, for the colabot named ``instance``."""


@dataclass(frozen=True)
class OnRay(Cluster):
    """Jobs on a real Ray head (token auth, one logical GPU)."""

    head: RayHead
    kind: ClassVar[str] = "ray"
    node: ClassVar[str] = "127.0.0.1"

    def chat_config(self, config: Config) -> Config:
        """The chat configuration with jobs on the head."""
        worker = dataclasses.replace(config.worker, executor="ray")
        return config.replace(
            worker=worker, ray=RaySettings(address=self.head.address, token=self.head.token)
        )

    def bot_env(self, home: Path, emu: BotApiEmulator) -> dict[str, str]:
        """A colabot process's environment with jobs on the head."""
        return colabot_env(
            home,
            emu.url,
            emu.token,
            heartbeat_interval_minutes="0",
            worker_executor="ray",
            ray_address=self.head.address,
            ray_token=self.head.token,
        )

    def executor(self, instance: str) -> ClusterExecutor:
        """An executor on the head."""
        return ray_executor(self.head, instance)


@dataclass(frozen=True)
class OnSlurm(Cluster):
    """Jobs on a real one-machine Slurm cluster (one dummy GPU), its commands pointed at it."""

    slurm: SlurmCluster
    kind: ClassVar[str] = "slurm"
    node: ClassVar[str] = NODE

    def chat_config(self, config: Config, **changes: Any) -> Config:
        """The chat configuration with small jobs on the cluster (``changes`` to
        ``[slurm]``)."""
        worker = dataclasses.replace(config.worker, executor="slurm")
        return config.replace(worker=worker, slurm=SlurmSettings(**{**SLURM_CHAT, **changes}))

    def bot_env(self, home: Path, emu: BotApiEmulator) -> dict[str, str]:
        """A colabot process's environment with small jobs on the cluster."""
        return colabot_env(
            home,
            emu.url,
            emu.token,
            heartbeat_interval_minutes="0",
            worker_executor="slurm",
            slurm_cpus_per_task="1",
            slurm_mem="100M",
            slurm_poll_seconds="0.5",
        )

    def executor(self, instance: str) -> ClusterExecutor:
        """An executor whose steps fit the test node."""
        return slurm_executor(instance)


AnyCluster = OnRay | OnSlurm
"""What the ``cluster`` fixture gives: one of the two, told apart with ``isinstance``."""

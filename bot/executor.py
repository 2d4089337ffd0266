"""The executor colabot runs steps on, built from ``worker.executor`` and checked before any
job runs: a cluster that cannot be reached, refuses the token, has no node big enough, or
does not share the data folder is refused at start with one line naming the setting.

A cluster executor's module (and Ray itself) is imported only when it is configured.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from bot.config import Config
from bot.errors import ConfigError
from workers.datadir import instance_id
from workers.errors import ExecutorError
from workers.executors.base import Capacity, Executor
from workers.redaction import register_secret


@dataclass(frozen=True)
class OpenedExecutor:
    """A checked executor (None: this machine), and what it offers."""

    executor: Executor | None
    capacity: Capacity | None = None
    description: str = "this machine"


def _ray(config: Config) -> Executor:
    ray = config.ray
    register_secret(ray.token)
    try:
        from workers.executors.ray import RayExecutor, RaySettings
    except ImportError:
        raise ConfigError(
            "worker.executor", 'is "ray", but Ray is not installed: pip install "colabot[ray]"'
        ) from None
    settings = RaySettings(
        address=ray.address,
        token=ray.token,
        gpus_per_job=ray.gpus_per_job,
        cpus_per_job=ray.cpus_per_job,
        python=sys.executable,
    )
    return RayExecutor(settings, instance_id(config.data_dir))


def build_executor(config: Config) -> Executor | None:
    """The configured executor, not yet checked (None: this machine)."""
    if config.worker.executor == "ray":
        return _ray(config)
    if config.worker.executor == "slurm":
        raise ConfigError("worker.executor", "slurm is not available in this version")
    return None


def _setting(config: Config, reason: str) -> str:
    """The setting a cluster problem is about."""
    if "token" in reason:
        return "ray.token"
    if "data folder" in reason:
        return "worker.data_dir"
    return "ray.address" if config.worker.executor == "ray" else "slurm.partition"


async def open_executor(config: Config) -> OpenedExecutor:
    """Build the executor and check it; ConfigError (one line) when it cannot be used."""
    executor = build_executor(config)
    if executor is None:
        return OpenedExecutor(None)
    try:
        capacity = await check_executor(config, executor)
    except ExecutorError as exc:
        await executor.close()
        raise ConfigError(_setting(config, exc.reason), exc.reason) from None
    except ConfigError:
        await executor.close()
        raise
    return OpenedExecutor(executor, capacity, capacity.name if capacity else executor.name)


async def check_executor(config: Config, executor: Executor) -> Capacity | None:
    """Reach the cluster, see that a step fits on one of its nodes, and that its nodes see
    the data folder."""
    capacity = await executor.capacity()
    if config.worker.executor == "ray" and capacity is not None:
        wanted = config.ray.gpus_per_job
        largest = capacity.largest_node_gpus or 0
        if wanted > largest:
            raise ConfigError(
                "ray.gpus_per_job",
                f"is {wanted:g}, but the largest node of the Ray cluster has {largest} GPU"
                f"{'s' if largest != 1 else ''}: a step asking for that would wait for ever",
            )
    probe = getattr(executor, "probe_shared", None)
    if probe is not None:
        await probe(config.data_dir)
    return capacity


def capacity_lines(capacity: Capacity) -> list[str]:
    """A cluster's nodes, CPUs and GPUs, in words."""
    gpus = f"{capacity.gpus} GPU" + ("s" if capacity.gpus != 1 else "")
    if capacity.free_gpus is not None:
        gpus += f" ({capacity.free_gpus} free)"
    cpus = f"{capacity.cpus} CPUs" if capacity.cpus is not None else ""
    if cpus and capacity.free_cpus is not None:
        cpus += f" ({capacity.free_cpus} free)"
    nodes = f"{capacity.nodes} node" + ("s" if capacity.nodes != 1 else "")
    version = f", version {capacity.version}" if capacity.version else ""
    head = f"{capacity.name}{version}: {nodes}, " + ", ".join(p for p in (cpus, gpus) if p)
    return [head, *capacity.details]

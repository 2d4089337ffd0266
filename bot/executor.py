"""The executor colabot runs steps on, built from ``worker.executor`` and checked before any
job runs: a cluster that cannot be reached, refuses the token, has no node big enough, or
does not share the data folder is refused at start with one line naming the setting.

A cluster executor's module (and Ray itself) is imported only when it is configured.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from bot.config import Config, ray_auth_problem
from bot.errors import ConfigError
from workers.errors import ExecutorError
from workers.executors.base import Capacity, Executor
from workers.safety.redaction import register_secret
from workers.store.datadir import instance_id


@dataclass(frozen=True)
class OpenedExecutor:
    """A checked executor (None: this machine), and what it offers."""

    executor: Executor | None
    capacity: Capacity | None = None
    description: str = "this machine"


def _ray(config: Config) -> Executor:
    ray = config.ray
    register_secret(ray.token)
    problem = ray_auth_problem(ray)
    if problem is not None:
        raise ConfigError("ray.token", problem)
    try:
        from workers.executors.ray import RayExecutor
    except ImportError:
        raise ConfigError(
            "worker.executor", 'is "ray", but Ray is not installed: pip install "colabot[ray]"'
        ) from None
    return RayExecutor(ray, instance_id(config.data_dir), python=sys.executable)


def _slurm(config: Config) -> Executor:
    from workers.executors.slurm import SlurmExecutor

    return SlurmExecutor(config.slurm, instance_id(config.data_dir), python=sys.executable)


def build_executor(config: Config) -> Executor | None:
    """The configured executor, not yet checked (None: this machine)."""
    if config.worker.executor == "ray":
        return _ray(config)
    if config.worker.executor == "slurm":
        return _slurm(config)
    return None


def setting_for(config: Config, reason: str) -> str:
    """The setting a cluster problem is about."""
    if "token" in reason:
        return "ray.token"
    if "data folder" in reason:
        return "worker.data_dir"
    if config.worker.executor == "ray":
        return "ray.address"
    if "partition" in reason:
        return "slurm.partition"
    if "sbatch refused" in reason:
        return "slurm.extra_args" if config.slurm.extra_args else "slurm"
    return "worker.executor"


async def open_executor(config: Config) -> OpenedExecutor:
    """Build the executor and check it; ConfigError (one line) when it cannot be used."""
    executor = build_executor(config)
    if executor is None:
        return OpenedExecutor(None)
    try:
        capacity = await check_executor(config, executor)
    except ExecutorError as exc:
        await executor.close()
        raise ConfigError(setting_for(config, exc.reason), exc.reason) from None
    except ConfigError:
        await executor.close()
        raise
    return OpenedExecutor(executor, capacity, capacity.name if capacity else executor.name)


async def check_executor(
    config: Config, executor: Executor, *, probe: bool | None = None
) -> Capacity | None:
    """Reach the cluster, see that a step fits on one of its nodes, and (``probe``) that its
    nodes see the data folder. A Ray probe job takes no resources and runs at once, so it
    runs at every start; a Slurm one waits in the queue like any job, so only
    ``colabot check`` runs it."""
    if probe is None:
        probe = config.worker.executor == "ray"
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
    if config.worker.executor == "slurm" and capacity is not None:
        wanted = config.slurm.gpus_per_step
        largest = capacity.largest_node_gpus or 0
        if wanted > largest:
            raise ConfigError(
                "slurm.gres",
                f"asks for {wanted} GPU{'s' if wanted != 1 else ''}, but the largest node of "
                f"{capacity.name} has {largest}: a step asking for that would wait for ever",
            )
    prober = getattr(executor, "probe_shared", None)
    if probe and prober is not None:
        await prober(config.data_dir)
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

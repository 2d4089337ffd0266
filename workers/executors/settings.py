"""The cluster executors' settings, exactly the ``[ray]`` and ``[slurm]`` sections of the
configuration: the loader (:mod:`bot.config`) builds these types from the TOML file and
checks their values; each field's default here is the setting's one default.

This module imports nothing heavy, so the bot reads the settings without loading Ray.
What is not a setting (how often to poll, how long to wait for an answer, the Python a step
runs) is an argument of the executor itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class RaySettings:
    """``[ray]``: the Ray cluster behind ``worker.executor = "ray"``.

    ``address`` is the Jobs API (dashboard) URL; ``gpus_per_job`` is reserved for steps that
    want a GPU (others reserve none).
    """

    address: str = ""
    token: str = ""
    gpus_per_job: float = 1.0
    cpus_per_job: float = 1.0
    allow_unauthenticated: bool = False


@dataclass(frozen=True)
class SlurmSettings:
    """``[slurm]``: what each step asks Slurm for, behind ``worker.executor = "slurm"``, and
    how often colabot looks at its jobs."""

    partition: str = ""
    account: str = ""
    gres: str = "gpu:1"
    cpus_per_task: int = 2
    mem: str = "16G"
    time_limit: str = "12:00:00"
    extra_args: tuple[str, ...] = ()
    poll_seconds: float = 10.0

    @property
    def gpus_per_step(self) -> int:
        """The GPUs ``gres`` asks for, for a step that wants one."""
        return gres_gpus(self.gres)


def gres_gpus(text: str) -> int:
    """GPUs in a Slurm GRES text: ``gpu:2`` -> 2, ``gpu:a100:1`` -> 1, ``gpu`` -> 1, and in
    ``sinfo``'s words ``gpu:a100:2(S:0-1),gpu:1`` -> 3; ``(null)`` and '' -> 0."""
    total = 0
    for item in filter(None, text.split(",")):
        name, *rest = re.sub(r"\(.*?\)", "", item.strip()).split(":")
        if name == "gpu":
            total += int(rest[-1]) if rest and rest[-1].isdigit() else 1
    return total

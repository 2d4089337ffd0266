"""GPU-hours and CPU wall-hours from the steps jobs ran."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class StepSpan:
    """One step's time, for accounting: who owned its job, when it ran (``ended_at`` None:
    it still runs) and how many GPUs it held (0: it ran on CPUs)."""

    owner_id: int | None
    owner_name: str
    started_at: float
    ended_at: float | None
    gpus: float


@dataclass(frozen=True)
class Usage:
    """One person's use: GPU-hours, and wall-hours of steps that held no GPU."""

    owner_id: int | None
    name: str
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0


def usage(spans: Iterable[StepSpan], *, since: float, now: float) -> list[Usage]:
    """Each person's use between ``since`` and ``now`` (a step that still runs counts up to
    ``now``), most GPU-hours first."""
    gpu: dict[int | None, float] = {}
    cpu: dict[int | None, float] = {}
    names: dict[int | None, str] = {}
    for span in spans:
        end = now if span.ended_at is None else min(span.ended_at, now)
        hours = max(0.0, end - max(span.started_at, since)) / 3600
        names.setdefault(span.owner_id, span.owner_name)
        if span.gpus > 0:
            gpu[span.owner_id] = gpu.get(span.owner_id, 0.0) + hours * span.gpus
        else:
            cpu[span.owner_id] = cpu.get(span.owner_id, 0.0) + hours
    found = [
        Usage(owner, names[owner], gpu.get(owner, 0.0), cpu.get(owner, 0.0)) for owner in names
    ]
    return sorted(found, key=lambda u: (-u.gpu_hours, -u.cpu_hours, u.name))


def used_gpu_hours(spans: Iterable[StepSpan], owner_id: int, *, since: float, now: float) -> float:
    """One person's GPU-hours since ``since``."""
    mine = [span for span in spans if span.owner_id == owner_id]
    return sum(u.gpu_hours for u in usage(mine, since=since, now=now))

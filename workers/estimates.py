"""Pure estimates of how long a job will take, from its kind or from finished jobs like it."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from workers.jobs import Job, JobSpec, JobState

# Parameters that scale a job's length roughly linearly, in order of preference.
SIZE_PARAMS = ("epochs", "max_steps", "steps")


def size_of(spec: JobSpec) -> float | None:
    """The first size-like parameter of a spec, if it has one."""
    for name in SIZE_PARAMS:
        value = spec.params.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def estimate_from_history(spec: JobSpec, history: Iterable[Job]) -> float | None:
    """Seconds, from the median of recent successful jobs of the same kind and action.

    When both the new job and a past one have a size parameter (epochs, steps), the past
    duration is scaled by the ratio.
    """
    size = size_of(spec)
    durations = []
    for job in history:
        if job.spec.kind != spec.kind or job.spec.action is not spec.action:
            continue
        if job.state is not JobState.SUCCEEDED or job.elapsed() is None:
            continue
        elapsed = float(job.elapsed() or 0.0)
        past = size_of(job.spec)
        if size is not None and past is not None:
            elapsed *= size / past
        durations.append(elapsed)
        if len(durations) >= 5:
            break
    return statistics.median(durations) if durations else None


def estimate_selftest(spec: JobSpec) -> float | None:
    """The selftest kind's length is known from its parameters."""
    steps = spec.params.get("steps")
    delay = spec.params.get("delay")
    if isinstance(steps, int) and isinstance(delay, int | float):
        return steps * float(delay)
    return None


def estimate(spec: JobSpec, history: Iterable[Job]) -> float | None:
    """The best estimate available for a job about to run, in seconds."""
    if spec.kind == "selftest":
        return estimate_selftest(spec)
    return estimate_from_history(spec, history)

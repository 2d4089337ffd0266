"""The job side as the tests drive it: selftest specs, the ``wait_for_state`` fixture's type,
a job's notices, and one step run on this machine as the runner runs it."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from workers.engine import Engine
from workers.events import Notice
from workers.executors.base import Launch
from workers.executors.local import LocalExecutor
from workers.jobs import Action, Job, JobSpec
from workers.steprun import StepRun

WaitForState = Callable[..., Awaitable[Job]]
"""``await wait_for_state(engine, job_id, {states}, timeout=...)`` -> the job in one of them."""


def selftest(action: Action = Action.TRAIN, **params: object) -> JobSpec:
    """A selftest spec, parameters given as chat text would give them; ``model`` (the job
    whose model an inference uses) is its input."""
    inputs = {"model": str(params.pop("model"))} if "model" in params else {}
    return JobSpec("selftest", action, inputs, {k: str(v) for k, v in params.items()})


def notices(engine: Engine, job_id: int) -> list[str]:
    """The texts of the notices a job posted to the chat."""
    events = engine.store.events_for(job_id)
    return [e.payload.text for e in events if isinstance(e.payload, Notice)]


def local_run(
    argv: list[str], *, log_path: Path, cgroup_root: Path | None = None, **options: Any
) -> StepRun:
    """A step of ``argv`` on this machine, as the runner starts one."""
    launch = Launch(
        job_id=0, index=0, name="test", argv=tuple(argv), env=dict(os.environ), cwd=log_path.parent
    )
    return StepRun(LocalExecutor(cgroup_root), launch, log_path=log_path, **options)

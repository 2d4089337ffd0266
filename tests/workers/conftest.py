"""Fixtures for the job side: a store, an engine running the built-in kinds, waiting helpers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from workers.engine import Engine, EngineSettings
from workers.executors.base import Grace, Launch
from workers.executors.local import LocalExecutor
from workers.jobs import FINISHED_STATES, Job, JobState
from workers.kinds.registry import default_registry
from workers.steprun import StepRun
from workers.store.database import Store

WaitForState = Callable[..., Awaitable[Job]]


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait, up to ``timeout`` seconds, until a cheap condition holds (checked every 0.1 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store in a temporary data directory."""
    st = Store(tmp_path / "data")
    yield st
    st.close()


@pytest.fixture
def input_root(tmp_path: Path) -> Path:
    """An allowed input folder."""
    root = tmp_path / "inputs"
    root.mkdir()
    return root


@pytest.fixture
def engine_settings(tmp_path: Path, input_root: Path) -> EngineSettings:
    """Settings with short cancel grace periods."""
    return EngineSettings(
        data_dir=tmp_path / "data",
        max_parallel_jobs=2,
        input_roots=(input_root,),
        grace=Grace(after_interrupt=2.0, after_terminate=2.0),
    )


@pytest.fixture
async def engine(engine_settings: EngineSettings, store: Store) -> AsyncIterator[Engine]:
    """A started engine with the built-in kinds; stopped after the test."""
    eng = Engine(engine_settings, store, default_registry())
    await eng.start()
    yield eng
    await eng.stop()


@pytest.fixture
def wait_for_state() -> WaitForState:
    """``await wait_for_state(engine, job_id, {states}, timeout=...)`` -> the job in one of them."""

    async def wait(
        engine: Engine,
        job_id: int,
        states: set[JobState] | frozenset[JobState] = FINISHED_STATES,
        timeout: float = 30.0,
    ) -> Job:
        changed = asyncio.Event()
        engine.on_state(lambda job: changed.set() if job.id == job_id else None)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            job = engine.job(job_id)
            if job.state in states:
                return job
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"job {job_id} stayed {job.state} (wanted {states})")
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), timeout=remaining)
            except TimeoutError:
                continue

    return wait


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    """``await wait_until(predicate, timeout=...)``: poll a cheap predicate until it holds."""

    async def wait(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}")
            await asyncio.sleep(0.02)

    return wait


def local_run(
    argv: list[str], *, log_path: Path, cgroup_root: Path | None = None, **options: Any
) -> StepRun:
    """A step of ``argv`` on this machine, as the runner starts one."""
    launch = Launch(
        job_id=0, index=0, name="test", argv=tuple(argv), env=dict(os.environ), cwd=log_path.parent
    )
    return StepRun(LocalExecutor(cgroup_root), launch, log_path=log_path, **options)


def wandb_history(run_dir: Path) -> list[dict[str, object]]:
    """The history rows (``run.log`` calls) in an offline W&B run folder, read from its
    ``.wandb`` file: a LevelDB-style log of protobuf records after a 7-byte header."""
    import json

    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    block, pos, parts, rows = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        payload, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):  # whole, or first part
            parts = payload
        elif kind in (3, 4):  # middle or last part
            parts += payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record.FromString(parts)  # type: ignore[attr-defined]
            if record.HasField("history"):
                rows.append(
                    {
                        (item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                        for item in record.history.item
                    }
                )
    return rows

"""Fixtures for the executors' tests: an engine whose steps run on a given executor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers.clusters import ClusterExecutor, EngineOn
from workers.engine import Engine, EngineSettings
from workers.kinds.registry import default_registry
from workers.store.database import Store


@pytest.fixture
async def engine_on(tmp_path: Path) -> AsyncIterator[EngineOn]:
    """``await engine_on(executor)`` -> a started engine with the built-in kinds whose steps
    run on ``executor`` (connected here), in this test's one data folder (a cluster's node
    sees the same disk); every engine is stopped and its store closed after the test."""
    engines: list[Engine] = []
    data_dir = tmp_path / "data"

    async def make(executor: ClusterExecutor) -> Engine:
        settings = EngineSettings(data_dir=data_dir, max_parallel_jobs=2)
        await executor.connect()
        engine = Engine(settings, Store(data_dir), default_registry(), executor=executor)
        await engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()
        engine.store.close()

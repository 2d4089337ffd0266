"""Waiting on a condition, with a timeout: the tests never sleep to wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(
    predicate: Callable[[], bool], timeout: float = 10.0, what: str = "", *, every: float = 0.02
) -> None:
    """Wait, up to ``timeout`` seconds, until a cheap condition holds, checked every ``every``
    seconds (give a longer ``every`` where each check asks a cluster)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(every)

"""Waiting for an event for at most a while, without losing a cancel.

On Python 3.11, ``asyncio.wait_for(event.wait(), timeout)`` swallows a cancel that comes
just as the event is set (the inner wait is done, so it returns its result): a loop that
waits that way and is stopped by cancelling it may never stop. Every loop of colabot's
that sleeps until something happens waits here instead (``asyncio.timeout`` passes such a
cancel on).
"""

from __future__ import annotations

import asyncio


async def wait_at_most(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait until ``event`` is set or ``seconds`` have passed (None: no limit); return
    whether it was set. A cancel always comes through."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True

"""Waiting: for an event for at most a while without losing a cancel, and for the work
someone is waiting on to go first.

On Python 3.11, ``asyncio.wait_for(event.wait(), timeout)`` swallows a cancel that comes
just as the event is set (the inner wait is done, so it returns its result): a loop that
waits that way and is stopped by cancelling it may never stop. Every loop of colabot's
that sleeps until something happens waits here instead (``asyncio.timeout`` passes such a
cancel on).

The chat and the jobs' output share one event loop. A job that floods its output keeps the
loop busy with one chunk after another, and a command's answer, which takes several turns
of the loop, would wait for a chunk at each of them. :class:`Foreground` lets the answer go
first: while one is in hand, the output pump steps aside (for a bounded while, so a long
download never stops a job's log).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

MAX_PAUSE_S = 0.02
"""The longest background work waits for the foreground at one time; then it takes one
more turn (one chunk of output, 16 KB) and steps aside again."""


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


class Foreground:
    """Work someone is waiting on right now (a command or a button being answered), which
    background loops (a job's output) let go first, for ``max_pause_s`` at a time."""

    def __init__(self, max_pause_s: float = MAX_PAUSE_S) -> None:
        self.max_pause_s = max_pause_s
        self._held = 0
        self._free = asyncio.Event()
        self._free.set()

    @property
    def busy(self) -> bool:
        """Whether some foreground work is in hand."""
        return self._held > 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Foreground work is in hand for the length of the block."""
        self._held += 1
        self._free.clear()
        try:
            yield
        finally:
            self._held -= 1
            if not self._held:
                self._free.set()

    async def step_aside(self) -> None:
        """Give the loop a turn (background work calls this between its pieces); while
        foreground work is in hand, wait until it is done, ``max_pause_s`` at most."""
        if self._free.is_set():
            await asyncio.sleep(0)
        else:
            await wait_at_most(self._free, self.max_pause_s)

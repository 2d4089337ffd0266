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
first: while one is in hand, the output pump steps aside (20 ms at a time, and only for
the first 2 s of an answer, so a long download never slows a job's log for long).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

MAX_PAUSE_S = 0.02
"""The longest background work waits for the foreground at one time; then it takes one
more turn (one chunk of output, 32 KB) and steps aside again."""
MAX_HOLD_S = 2.0
"""An answer that takes longer than this is long work, which the background no longer waits
for."""


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
    background loops (a job's output) let go first, for ``max_pause_s`` at a time.

    Work held longer than ``max_hold_s`` is long work (a download, a Drive listing): it no
    longer holds the background up, which goes on at full speed beside it.
    """

    def __init__(
        self,
        max_pause_s: float = MAX_PAUSE_S,
        max_hold_s: float = MAX_HOLD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_pause_s = max_pause_s
        self.max_hold_s = max_hold_s
        self._clock = clock
        self._since: dict[object, float] = {}
        self._released = asyncio.Event()

    @property
    def busy(self) -> bool:
        """Whether some foreground work is in hand, and not yet long work."""
        if not self._since:
            return False
        now = self._clock()
        return any(now - since < self.max_hold_s for since in self._since.values())

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Foreground work is in hand for the length of the block."""
        token = object()
        self._since[token] = self._clock()
        try:
            yield
        finally:
            del self._since[token]
            # Whoever stepped aside looks again: the rest may be long work, or nothing.
            released, self._released = self._released, asyncio.Event()
            released.set()

    async def step_aside(self) -> None:
        """Give the loop a turn (background work calls this between its pieces); while
        foreground work is in hand, wait until some is done, ``max_pause_s`` at most."""
        if self.busy:
            await wait_at_most(self._released, self.max_pause_s)
        else:
            await asyncio.sleep(0)

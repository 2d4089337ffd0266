"""A Bot API emulator that can be told to fail: error answers, dropped connections and odd
replies, for the next calls of a method. Test-only: the shipped emulator has just the seam."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from emulator.errors import ApiError, default_description
from emulator.server import BotApiEmulator, DropConnection, OddReply


@dataclass
class Fault:
    """A planned failure for the next calls of one method."""

    status: int
    description: str
    retry_after: int | None
    remaining: int
    drop: bool = False
    delay: float = 0.0
    odd_result: Any = None


class FaultyBotApi(BotApiEmulator):
    """The emulator, with failures planned per method."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._faults: dict[str, deque[Fault]] = {}
        self._shutdown = asyncio.Event()

    def inject_failure(
        self,
        method: str,
        status: int,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``status``.

        A 429 carries ``parameters.retry_after`` (default 1 s) as Telegram's does.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        text = description or default_description(status, retry_after)
        self._plan(method, Fault(status, text, retry_after, times))

    def inject_drop(self, method: str, *, delay: float = 0.0, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` get no answer: the connection is
        closed after ``delay`` seconds (longer than the client's timeout means a timeout)."""
        self._plan(method, Fault(0, "", None, times, drop=True, delay=delay))

    def inject_odd_reply(self, method: str, result: Any, *, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` succeed with ``result`` as the answer,
        whatever the method should return (a server that answers oddly)."""
        self._plan(method, Fault(200, "", None, times, odd_result=result))

    def clear_failures(self) -> None:
        """Forget every planned failure."""
        self._faults.clear()

    async def stop(self) -> None:
        """Stop, ending delayed drops at once."""
        self._shutdown.set()
        await super().stop()

    async def before_method(self, request: web.Request, method: str) -> OddReply | None:
        """Play the next planned failure of ``method``, if any."""
        planned = self._faults.get(method)
        if not planned:
            return None
        fault = planned[0]
        fault.remaining -= 1
        if fault.remaining == 0:
            planned.popleft()
        if fault.odd_result is not None:
            return OddReply(fault.odd_result)
        if not fault.drop:
            raise ApiError(fault.status, fault.description, retry_after=fault.retry_after)
        if fault.delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._shutdown.wait(), fault.delay)
        if request.transport is not None:
            request.transport.abort()
        raise DropConnection

    def _plan(self, method: str, fault: Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("times must be at least 1")
        self._faults.setdefault(method.lower(), deque()).append(fault)

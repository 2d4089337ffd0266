"""A Bot API emulator that can be told to fail: error answers, dropped connections and odd
replies, for the next calls of a method, or for a random share of the message-sending calls.
Test-only: the shipped emulator has just the seam."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from emulator.errors import ApiError, default_description
from emulator.flood import COUNTED_METHODS
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


@dataclass(frozen=True)
class ShareFailure:
    """A call that :meth:`FaultyBotApi.fail_share` answered with an error."""

    method: str
    status: int


@dataclass
class _Share:
    """A random share of some methods' calls to fail, and how."""

    share: float
    statuses: tuple[int, ...]
    retry_after: int
    methods: frozenset[str]
    rng: random.Random


class FaultyBotApi(BotApiEmulator):
    """The emulator, with failures planned per method or drawn at random."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._faults: dict[str, deque[Fault]] = {}
        self._share: _Share | None = None
        self.share_failures: list[ShareFailure] = []
        """Every call :meth:`fail_share` failed, oldest first."""
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

    def fail_share(
        self,
        share: float,
        *,
        statuses: Sequence[int] = (429, 502),
        retry_after: int = 1,
        seed: int | None = None,
        methods: Iterable[str] = COUNTED_METHODS,
    ) -> None:
        """From now on, answer a random ``share`` (0 to 1) of the calls of ``methods`` (by
        default every method that sends or edits a message) with one of ``statuses``, chosen
        at random; a 429 carries ``parameters.retry_after``. The failed call has no effect,
        and is kept in :attr:`share_failures`. With a ``seed`` the same sequence of calls
        meets the same failures. ``share=0`` stops it; planned failures go first."""
        if not 0.0 <= share <= 1.0:
            raise ValueError("share must be between 0 and 1")
        if not statuses or any(status < 400 for status in statuses):
            raise ValueError("statuses must be error statuses (400 or more)")
        if retry_after < 1:
            raise ValueError("retry_after must be at least 1 second")
        self._share = _Share(
            share,
            tuple(statuses),
            retry_after,
            frozenset(method.lower() for method in methods),
            random.Random(seed),
        )

    def clear_failures(self) -> None:
        """Forget every planned failure, and stop :meth:`fail_share`."""
        self._faults.clear()
        self._share = None

    async def stop(self) -> None:
        """Stop, ending delayed drops at once."""
        self._shutdown.set()
        await super().stop()

    async def before_method(self, request: web.Request, method: str) -> OddReply | None:
        """Play the next planned failure of ``method``, if any, else maybe a drawn one."""
        planned = self._faults.get(method)
        if not planned:
            self._draw_failure(method)
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

    def _draw_failure(self, method: str) -> None:
        """Raise the error of :meth:`fail_share` for this call, if it is drawn to fail."""
        plan = self._share
        if plan is None or plan.share <= 0.0 or method not in plan.methods:
            return
        if plan.rng.random() >= plan.share:
            return
        status = plan.rng.choice(plan.statuses)
        retry_after = plan.retry_after if status == 429 else None
        self.share_failures.append(ShareFailure(method, status))
        raise ApiError(status, default_description(status, retry_after), retry_after=retry_after)

    def _plan(self, method: str, fault: Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("times must be at least 1")
        self._faults.setdefault(method.lower(), deque()).append(fault)

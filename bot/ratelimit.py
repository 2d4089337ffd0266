"""The bot's rate limiter: Telegram's flood limits kept as Telegram counts them, with the
chat's own traffic in three priorities, so that what people wait for never queues behind
what they can miss.

Telegram's Bot FAQ gives three limits, edits included: about 30 messages a second in all,
20 a minute in one group, and about one a second in a private chat on average (short bursts
pass). python-telegram-bot's ``AIORateLimiter`` keeps the first two as leaky buckets that
start full (30 at once and then 30 a second: up to 60 within one second; 20 at once and then
one every 3 s: up to 40 within one minute), does not keep the third, and pauses every
request after a 429 anywhere. With many jobs in many chats that goes over the limits, and a
429 in one chat holds up all the others. Here:

- in all, and in each group, a sliding window: never more than the limit in any window, the
  window a little longer than Telegram's (:data:`~bot.limits.WINDOW_MARGIN_S`);
- in each private chat, a token bucket: :data:`~bot.limits.PRIVATE_BURST` at once, then
  :data:`~bot.limits.PRIVATE_MESSAGES_PER_SECOND`; a chat starts with
  :data:`~bot.limits.PRIVATE_START_BURST`, since a colabot killed a moment ago may have spent
  the rest;
- an album (``sendMediaGroup``) counts one message per item, as Telegram counts it;
- a 429 pauses only the chat it came from, for the ``retry_after`` Telegram asked, and the
  call is tried again (``max_retries`` times).

Each request has a :class:`Priority`, taken from the context it is sent in
(:func:`sending_as`): a reply to a person (the default) may use all of a limit; outbox events
(a job started, finished or failed, a warning, a file) and status edits, the background, use
at most a share of the windows, leaving the rest to replies, and in a private chat leave
a few tokens in the bucket; edits stop at a smaller share and leave more (:class:`Shares`).
So when a chat is busy, edits stop first, events wait only for other events, and a person's
command is answered at once. The windows and buckets are plain objects that take the time
as an argument (:class:`SlidingWindow`, :class:`TokenBucket`); only
:class:`ChatRateLimiter` sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.limits import (
    GROUP_MESSAGES_PER_MINUTE,
    MESSAGES_PER_SECOND,
    PRIVATE_BURST,
    PRIVATE_MESSAGES_PER_SECOND,
    PRIVATE_START_BURST,
    WINDOW_MARGIN_S,
)

log = logging.getLogger(__name__)

Answer = bool | dict[str, Any] | list[dict[str, Any]]
"""What a Bot API call answers."""

MAX_LIMITERS = 512
"""Per-chat windows and buckets kept at most; idle ones are dropped past this."""
UNCOUNTED = frozenset(
    {
        "sendChatAction",
        "getChat",
        "getChatMember",
        "getChatMemberCount",
        "getChatAdministrators",
        "deleteMessage",
        "deleteMessages",
        "leaveChat",
        "setMessageReaction",
    }
)
"""Calls that name a chat but make no message in it: Telegram does not count them."""
_EPSILON = 1e-9


class Priority(IntEnum):
    """Whose turn comes first when a limit is near (a lower value goes first)."""

    REPLY = 0
    """An answer to something a person just did: a command, a button."""
    EVENT = 1
    """An outbox event: a job posted, started, finished, failed; a warning; a file."""
    EDIT = 2
    """A status message edited as its job progresses: only what is left over."""


_PRIORITY: ContextVar[Priority] = ContextVar("colabot_send_priority", default=Priority.REPLY)


@contextlib.contextmanager
def sending_as(priority: Priority) -> Iterator[None]:
    """Send every Bot API call made inside the block (in this task) with ``priority``."""
    token = _PRIORITY.set(priority)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


def current_priority() -> Priority:
    """The priority calls made here are sent with (:data:`Priority.REPLY` unless set)."""
    return _PRIORITY.get()


@dataclass(frozen=True)
class Shares:
    """How much of each limit each priority may use, indexed by :class:`Priority`.

    ``total`` and ``group``: a reply may fill the window; events and edits together (the
    background) stop at ``[EVENT]`` messages in it, and edits at ``[EDIT]``, whatever the
    replies take. So replies always find the rest of the window free, events find room
    however many replies there are, and edits go only while events leave some over.
    ``private_floor``: how many tokens a message of that priority leaves in a private
    chat's bucket.
    """

    total: tuple[int, int, int] = (MESSAGES_PER_SECOND, 12, 8)
    group: tuple[int, int, int] = (GROUP_MESSAGES_PER_MINUTE, 17, 14)
    private_floor: tuple[int, int, int] = (0, 2, 6)

    def __post_init__(self) -> None:
        for name in ("total", "group", "private_floor"):
            values = getattr(self, name)
            if len(values) != len(Priority):
                raise ValueError(f"{name} needs one value per priority")
        if any(cap < 1 for cap in (*self.total, *self.group)):
            raise ValueError("every priority must be allowed at least one message")


DEFAULT_SHARES = Shares()


def _window_wait(times: deque[float], seconds: float, now: float, count: int, cap: int) -> float:
    """Seconds until ``count`` more fit under ``cap`` among ``times`` in a window of
    ``seconds`` (0: now); more than ``cap`` at once wait for an empty window."""
    while times and now - times[0] >= seconds:
        times.popleft()
    over = len(times) + min(count, cap) - cap
    if over <= 0:
        return 0.0
    return max(times[over - 1] + seconds - now, _EPSILON)


@dataclass
class SlidingWindow:
    """At most ``limit`` messages in any ``seconds`` (Telegram's way of counting the
    messages in all and in a group), of which the background ones (events, edits) may be
    held to a smaller cap. The time is always passed in."""

    limit: int
    seconds: float
    times: deque[float] = field(default_factory=deque)
    background: deque[float] = field(default_factory=deque)

    def count(self, now: float) -> int:
        """How many messages are in the window that ends ``now``."""
        while self.times and now - self.times[0] >= self.seconds:
            self.times.popleft()
        return len(self.times)

    def wait(
        self, now: float, count: int = 1, cap: int | None = None, *, background: bool = False
    ) -> float:
        """Seconds until ``count`` more messages fit in the window (0: they fit now); for
        ``background`` ones, also under ``cap`` of the background messages in it."""
        wait = _window_wait(self.times, self.seconds, now, count, self.limit)
        if background:
            ceiling = self.limit if cap is None else min(cap, self.limit)
            wait = max(wait, _window_wait(self.background, self.seconds, now, count, ceiling))
        return wait

    def take(self, now: float, count: int = 1, *, background: bool = False) -> None:
        """Count ``count`` messages sent at ``now``."""
        self.times.extend([now] * count)
        if background:
            self.background.extend([now] * count)

    def idle(self, now: float) -> bool:
        """Whether nothing is left in the window (it may be dropped)."""
        return self.count(now) == 0


@dataclass
class TokenBucket:
    """``burst`` messages at once, refilled at ``rate`` a second (Telegram's way with a
    private chat: about one a second on average, short bursts pass). The time is always
    passed in."""

    rate: float
    burst: float
    tokens: float
    at: float

    def level(self, now: float) -> float:
        """The tokens in the bucket at ``now``."""
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
        return self.tokens

    def wait(self, now: float, count: int = 1, floor: float = 0.0) -> float:
        """Seconds until ``count`` tokens can be taken leaving ``floor`` in the bucket (0:
        now). More than the bucket holds wait for a full bucket."""
        need = min(count + floor, self.burst)
        tokens = self.level(now)
        if tokens + _EPSILON >= need:
            return 0.0
        return (need - tokens) / self.rate

    def take(self, now: float, count: int = 1) -> None:
        """Take ``count`` tokens at ``now`` (after :meth:`wait` said they are there)."""
        self.level(now)
        self.tokens -= count

    def idle(self, now: float) -> bool:
        """Whether the bucket is full again (it may be dropped)."""
        return self.level(now) >= self.burst


def chat_of(data: dict[str, Any]) -> int | str | None:
    """The chat a Bot API call goes to (an int id, or a channel's @name), or None."""
    chat = data.get("chat_id")
    if chat is None or isinstance(chat, bool):
        return None
    try:
        return int(chat)
    except (TypeError, ValueError):
        return str(chat)


def messages_made(endpoint: str, data: dict[str, Any]) -> int:
    """How many messages Telegram counts for a call: one, one per item of an album, none
    for a call that makes no message (:data:`UNCOUNTED`)."""
    if endpoint in UNCOUNTED:
        return 0
    if endpoint == "sendMediaGroup":
        media = data.get("media")
        return max(1, len(media)) if isinstance(media, list | tuple) else 1
    return 1


def _retry_seconds(exc: RetryAfter) -> float:
    retry = exc.retry_after
    return float(retry.total_seconds() if hasattr(retry, "total_seconds") else retry)


class ChatRateLimiter(BaseRateLimiter[int]):
    """Telegram's limits in all, per group and per private chat, with :class:`Priority`.

    ``rate_limit_args`` of a call is how many times it is tried again after a 429
    (default ``max_retries``).
    """

    def __init__(
        self,
        *,
        max_retries: int = 2,
        shares: Shares = DEFAULT_SHARES,
        per_second: int = MESSAGES_PER_SECOND,
        group_per_minute: int = GROUP_MESSAGES_PER_MINUTE,
        private_burst: int = PRIVATE_BURST,
        private_start: int = PRIVATE_START_BURST,
        private_per_second: float = PRIVATE_MESSAGES_PER_SECOND,
        margin_s: float = WINDOW_MARGIN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_retries = max_retries
        self.shares = shares
        self._clock = clock
        self._total = SlidingWindow(per_second, 1.0 + margin_s)
        self._group_limit = group_per_minute
        self._group_seconds = 60.0 + margin_s
        self._burst = private_burst
        self._start = min(private_start, private_burst)
        self._rate = private_per_second
        self._groups: dict[int | str, SlidingWindow] = {}
        self._private: dict[int, TokenBucket] = {}
        self._paused: dict[int | str, float] = {}

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    def delay(self, chat_id: int | str, priority: Priority, count: int = 1) -> float:
        """Seconds until ``count`` messages of ``priority`` could go to ``chat_id`` (0: now),
        without taking anything: how the status edits ask whether a chat has room."""
        return self._wait(chat_id, priority, count, self._clock())

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Answer]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Answer:
        """Wait for room in the limits the call counts against (at the priority of the
        context it is made in), make it, and after a 429 pause its chat and try again."""
        chat = chat_of(data)
        count = messages_made(endpoint, data)
        if chat is None or count == 0:
            return await callback(*args, **kwargs)
        priority = current_priority()
        retries = self._max_retries if rate_limit_args is None else rate_limit_args
        for attempt in range(retries + 1):
            await self._admit(chat, priority, count)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                seconds = _retry_seconds(exc)
                self._paused[chat] = max(self._paused.get(chat, 0.0), self._clock() + seconds)
                if attempt == retries:
                    raise
                log.info("Telegram asked chat %s to wait %ss; trying again then", chat, seconds)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _admit(self, chat: int | str, priority: Priority, count: int) -> None:
        while True:
            now = self._clock()
            wait = self._wait(chat, priority, count, now)
            if wait <= 0.0:
                self._take(chat, priority, count, now)
                return
            await asyncio.sleep(wait)

    def _wait(self, chat: int | str, priority: Priority, count: int, now: float) -> float:
        background = priority is not Priority.REPLY
        paused = self._paused.get(chat, 0.0) - now
        total = self._total.wait(now, count, self.shares.total[priority], background=background)
        waits = [paused, total]
        if isinstance(chat, int) and chat > 0:
            floor = self.shares.private_floor[priority]
            waits.append(self._bucket(chat, now).wait(now, count, floor))
        else:
            cap = self.shares.group[priority]
            waits.append(self._window(chat).wait(now, count, cap, background=background))
        return max(waits)

    def _take(self, chat: int | str, priority: Priority, count: int, now: float) -> None:
        background = priority is not Priority.REPLY
        self._total.take(now, count, background=background)
        if isinstance(chat, int) and chat > 0:
            self._bucket(chat, now).take(now, count)
        else:
            self._window(chat).take(now, count, background=background)

    def _bucket(self, chat: int, now: float) -> TokenBucket:
        bucket = self._private.get(chat)
        if bucket is None:
            if len(self._private) >= MAX_LIMITERS:
                self._drop_idle(now)
            bucket = TokenBucket(self._rate, self._burst, self._start, now)
            self._private[chat] = bucket
        return bucket

    def _window(self, chat: int | str) -> SlidingWindow:
        window = self._groups.get(chat)
        if window is None:
            if len(self._groups) >= MAX_LIMITERS:
                self._drop_idle(self._clock())
            window = SlidingWindow(self._group_limit, self._group_seconds)
            self._groups[chat] = window
        return window

    def _drop_idle(self, now: float) -> None:
        """Forget chats whose limits are back where a new chat's start (and not paused)."""
        for chat in [c for c, b in self._private.items() if b.idle(now)]:
            if self._paused.get(chat, 0.0) <= now:
                del self._private[chat]
        for key in [c for c, w in self._groups.items() if w.idle(now)]:
            if self._paused.get(key, 0.0) <= now:
                del self._groups[key]
        for key in [c for c, until in self._paused.items() if until <= now]:
            del self._paused[key]

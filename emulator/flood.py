"""Telegram's flood limits as the emulated server enforces them, and the figures of a run.

Telegram's Bot FAQ ("My bot is hitting limits, how do I avoid this?") gives three limits on
the messages a bot sends, edits included:

- in one chat, no more than about one message a second, though "short bursts" may pass;
- no more than about 30 messages a second in all;
- no more than 20 messages a minute in one group.

A call over a limit is answered ``429 Too Many Requests: retry after N`` with
``parameters.retry_after`` (whole seconds), and nothing is sent. Here the group and overall
limits are sliding windows (never more than 20 messages in any 60 seconds in one group, nor
more than 30 in any second in all), as the FAQ words them; a private chat has a token bucket
(:attr:`FloodLimits.private_per_second` on average, up to :attr:`FloodLimits.private_burst`
at once), since the FAQ speaks of an average there and allows bursts.

An album (``sendMediaGroup``) is one message per item in the chat, and Telegram counts it so:
a bot over the limit sees its albums refused with "Too Many Requests" for an item. The
emulator counts every item and admits an album whole or not at all. python-telegram-bot's
``AIORateLimiter`` counts an album as one request, so a bot that sends albums to a group must
pace them itself.

Every message admitted is kept as a :class:`SentMessage` and every refusal as a
:class:`FloodRefusal`, whether or not limits are on, so that :func:`rate_report` can give a
run's figures. Pure apart from the records: the time is always passed in.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from emulator.errors import ApiError, default_description

COUNTED_METHODS: frozenset[str] = frozenset(
    {
        "sendmessage",
        "editmessagetext",
        "editmessagecaption",
        "editmessagemedia",
        "editmessagereplymarkup",
        "senddocument",
        "sendphoto",
        "sendvideo",
        "sendanimation",
        "sendaudio",
        "sendvoice",
        "sendvideonote",
        "sendsticker",
        "sendmediagroup",
        "sendlocation",
        "sendvenue",
        "sendcontact",
        "sendpoll",
        "senddice",
        "copymessage",
        "forwardmessage",
    }
)
"""The Bot API methods (lower case) that send or edit a message and so count against the
limits. ``getUpdates``, ``answerCallbackQuery``, ``getMe`` and ``getFile`` do not. Not all
of these are emulated (an unknown method is a 404); those that are count where they are
answered."""

TOTAL_WINDOW_S = 1.0
GROUP_WINDOW_S = 60.0
DEFAULT_PRIVATE_BURST = 30
_EPSILON = 1e-9

LimitName = Literal["total", "group", "private"]


@dataclass(frozen=True)
class FloodLimits:
    """How many messages (sent or edited) a bot may make, per Telegram's Bot FAQ.

    ``total_per_second``: in all chats together, in any one second (a sliding window).
    ``group_per_minute``: in one group, supergroup or channel, in any 60 seconds.
    ``private_per_second`` and ``private_burst``: in one private chat, a token bucket that
    holds ``private_burst`` messages and refills at ``private_per_second``: a burst of that
    many passes, then about one a second. Telegram publishes no burst size. The default, 30,
    is the overall limit's second: no single burst that limit admits is refused for the chat
    alone (colabot's own answers reach 22 in a second: a reply, an album of 10 and 2, a
    clip), while a bot that keeps sending above one a second is refused once the 30 are
    spent. For a stricter chat, give a smaller ``private_burst``.
    """

    total_per_second: int = 30
    group_per_minute: int = 20
    private_per_second: float = 1.0
    private_burst: int = DEFAULT_PRIVATE_BURST

    def __post_init__(self) -> None:
        if self.total_per_second < 1 or self.group_per_minute < 1 or self.private_burst < 1:
            raise ValueError("flood limits must allow at least one message")
        if self.private_per_second <= 0:
            raise ValueError("private_per_second must be positive")


DEFAULT_FLOOD_LIMITS = FloodLimits()
"""The limits the emulator enforces unless told otherwise."""


@dataclass(frozen=True)
class SentMessage:
    """One message the bot sent or edited (an album: one per item), when, and how."""

    chat_id: int
    at: float
    method: str


@dataclass(frozen=True)
class FloodRefusal:
    """A call answered 429 for going over ``limit``; ``messages`` it would have made."""

    chat_id: int
    at: float
    method: str
    limit: LimitName
    retry_after: int
    messages: int = 1


@dataclass
class _Window:
    """At most ``limit`` messages in any ``seconds``."""

    limit: int
    seconds: float
    times: deque[float] = field(default_factory=deque)

    def wait(self, now: float, count: int) -> float:
        """Seconds until ``count`` more messages fit (0: they fit now)."""
        times = self.times
        while times and now - times[0] >= self.seconds:
            times.popleft()
        # More messages than the limit at once (an album) go when the window is empty.
        over = len(times) + min(count, self.limit) - self.limit
        if over <= 0:
            return 0.0
        return max(times[over - 1] + self.seconds - now, _EPSILON)

    def take(self, now: float, count: int) -> None:
        """Count ``count`` messages at ``now``."""
        self.times.extend([now] * count)


@dataclass
class _Bucket:
    """A token bucket: ``burst`` messages at once, refilled at ``rate`` a second."""

    rate: float
    burst: int
    tokens: float
    at: float

    def wait(self, now: float, count: int) -> float:
        """Seconds until ``count`` more messages fit (0: they fit now)."""
        self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = max(self.at, now)
        # More than a full bucket goes when the bucket is full, leaving a debt.
        needed = min(count, self.burst)
        if self.tokens + _EPSILON >= needed:
            return 0.0
        return (needed - self.tokens) / self.rate

    def take(self, now: float, count: int) -> None:
        """Count ``count`` messages (after :meth:`wait` said they fit)."""
        self.tokens -= count


class FloodGate:
    """Counts the messages a bot makes and refuses, with Telegram's 429, what is over
    the limits (none when ``limits`` is ``None``; the records are kept either way)."""

    def __init__(self, limits: FloodLimits | None = DEFAULT_FLOOD_LIMITS) -> None:
        self.limits = limits
        self.sent: list[SentMessage] = []
        self.refusals: list[FloodRefusal] = []
        self._total: _Window | None = None
        self._groups: dict[int, _Window] = {}
        self._private: dict[int, _Bucket] = {}
        if limits is not None:
            self._total = _Window(limits.total_per_second, TOTAL_WINDOW_S)

    def admit(
        self, chat_id: int, *, private: bool, method: str, now: float, count: int = 1
    ) -> None:
        """Count ``count`` messages to ``chat_id`` by ``method``, or raise the 429 ApiError
        Telegram answers when they do not fit; a refused call counts nothing."""
        if self.limits is not None and self._total is not None:
            per_chat = self._chat_limit(chat_id, private, now)
            waits: list[tuple[float, LimitName]] = [
                (self._total.wait(now, count), "total"),
                (per_chat.wait(now, count), "private" if private else "group"),
            ]
            wait, limit = max(waits, key=lambda pair: pair[0])
            if wait > 0:
                retry_after = max(1, math.ceil(wait - _EPSILON))
                self.refusals.append(FloodRefusal(chat_id, now, method, limit, retry_after, count))
                raise ApiError(429, default_description(429, retry_after), retry_after=retry_after)
            self._total.take(now, count)
            per_chat.take(now, count)
        self.sent.extend(SentMessage(chat_id, now, method) for _ in range(count))

    def refusals_by_chat(self) -> dict[int, int]:
        """How many calls were refused in each chat."""
        counts: dict[int, int] = {}
        for refusal in self.refusals:
            counts[refusal.chat_id] = counts.get(refusal.chat_id, 0) + 1
        return counts

    def _chat_limit(self, chat_id: int, private: bool, now: float) -> _Window | _Bucket:
        limits = self.limits
        assert limits is not None
        if private:
            bucket = self._private.get(chat_id)
            if bucket is None:
                burst = limits.private_burst
                bucket = _Bucket(limits.private_per_second, burst, float(burst), now)
                self._private[chat_id] = bucket
            return bucket
        window = self._groups.get(chat_id)
        if window is None:
            window = _Window(limits.group_per_minute, GROUP_WINDOW_S)
            self._groups[chat_id] = window
        return window


# The figures of a run


@dataclass(frozen=True)
class ChatRates:
    """One chat's figures: messages in all, the most in any 60 s and in any 1 s (the largest
    burst), and the calls refused there."""

    chat_id: int
    messages: int
    max_per_minute: int
    max_per_second: int
    refused: int = 0


@dataclass(frozen=True)
class RateReport:
    """A run's figures: messages in all, the most in any one second over all chats, the calls
    refused, and each chat's :class:`ChatRates` (by chat id, in order of first message)."""

    messages: int
    max_total_per_second: int
    refused: int
    chats: dict[int, ChatRates]

    def lines(self) -> list[str]:
        """The figures as lines of text, for a benchmark to print."""
        out = [
            f"messages {self.messages}, most in one second (all chats) "
            f"{self.max_total_per_second}, refused 429 {self.refused}"
        ]
        out.extend(
            f"chat {rates.chat_id}: {rates.messages} messages, most per minute "
            f"{rates.max_per_minute}, largest burst per second {rates.max_per_second}, "
            f"refused {rates.refused}"
            for rates in self.chats.values()
        )
        return out


def max_in_window(times: Sequence[float], seconds: float) -> int:
    """The most of ``times`` (sorted or not) that fall in any window ``[t, t + seconds)``."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def rate_report(sent: Iterable[SentMessage], refusals: Iterable[FloodRefusal] = ()) -> RateReport:
    """The figures of the messages ``sent`` (and the ``refusals``): per chat the most in any
    minute and any second, and over all chats the most in any second."""
    by_chat: dict[int, list[float]] = {}
    every: list[float] = []
    for message in sent:
        by_chat.setdefault(message.chat_id, []).append(message.at)
        every.append(message.at)
    refused: dict[int, int] = {}
    for refusal in refusals:
        refused[refusal.chat_id] = refused.get(refusal.chat_id, 0) + 1
        by_chat.setdefault(refusal.chat_id, [])
    chats = {
        chat_id: ChatRates(
            chat_id=chat_id,
            messages=len(times),
            max_per_minute=max_in_window(times, GROUP_WINDOW_S),
            max_per_second=max_in_window(times, TOTAL_WINDOW_S),
            refused=refused.get(chat_id, 0),
        )
        for chat_id, times in by_chat.items()
    }
    return RateReport(
        messages=len(every),
        max_total_per_second=max_in_window(every, TOTAL_WINDOW_S),
        refused=sum(refused.values()),
        chats=chats,
    )

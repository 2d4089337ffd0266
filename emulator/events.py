"""What the bot did, as seen from the chat: events, the call log, and waiting on either."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from emulator.state import json_copy

if TYPE_CHECKING:
    from pathlib import Path

_LOGGER = logging.getLogger(__name__)

EventKind = Literal["message", "edit", "delete", "document", "photo", "video", "callback_answer"]
EventListener = Callable[["BotEvent"], None]
_RECENT = 10
T = TypeVar("T")


@dataclass(frozen=True)
class BotEvent:
    """One change the bot made to a chat.

    ``message`` is a snapshot of the Bot API message after the change (for ``delete``, the
    message as it was; for ``callback_answer``, the message whose button was pressed).
    ``callback`` holds ``{"id", "text", "show_alert", "url"}`` for a callback answer.
    """

    seq: int
    kind: EventKind
    chat_id: int
    method: str
    message: dict[str, Any] | None
    time: float
    file_path: Path | None = None
    parse_mode: str | None = None
    callback: dict[str, Any] | None = None

    @property
    def message_id(self) -> int | None:
        """The id of the message concerned, if any."""
        return int(self.message["message_id"]) if self.message is not None else None

    @property
    def text(self) -> str | None:
        """The message text (or caption); for a callback answer, the answer's text."""
        if self.kind == "callback_answer":
            return (self.callback or {}).get("text")
        if self.message is None:
            return None
        value = self.message.get("text", self.message.get("caption"))
        return value if isinstance(value, str) else None

    def describe(self) -> str:
        """A one-line summary for error messages and logs."""
        text = self.text
        shown = "" if text is None else f" {text[:60]!r}"
        return f"#{self.seq} {self.kind} chat={self.chat_id} msg={self.message_id}{shown}"


@dataclass
class ApiCall:
    """One request the bot made, with its outcome once known.

    ``status`` stays ``None`` while the call is in progress or if the client went away.
    """

    method: str
    params: dict[str, Any]
    started: float
    status: int | None = None
    description: str | None = None
    finished: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.status == 200


class Journal:
    """The events and calls of one emulator, with listeners and race-free waiting.

    ``wait_for`` hands out each event at most once: every call returns the earliest matching
    event no earlier call returned, whether it happened before or after the call began.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.events: list[BotEvent] = []
        self.calls: list[ApiCall] = []
        self._consumed: set[int] = set()
        self._first_open = 0
        self._listeners: list[EventListener] = []
        self._queues: list[asyncio.Queue[BotEvent]] = []
        self._changed = asyncio.Event()

    def record(
        self,
        kind: EventKind,
        chat_id: int,
        method: str,
        message: dict[str, Any] | None,
        *,
        file_path: Path | None = None,
        parse_mode: str | None = None,
        callback: dict[str, Any] | None = None,
    ) -> BotEvent:
        """Add an event and tell listeners, subscribers and waiters."""
        event = BotEvent(
            seq=len(self.events) + 1,
            kind=kind,
            chat_id=chat_id,
            method=method,
            message=json_copy(message),
            time=self.clock(),
            file_path=file_path,
            parse_mode=parse_mode,
            callback=callback,
        )
        self.events.append(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                _LOGGER.exception("an event listener failed")
        for queue in self._queues:
            queue.put_nowait(event)
        self._signal()
        return event

    def start_call(self, method: str, params: dict[str, Any]) -> ApiCall:
        """Log a call as it begins."""
        call = ApiCall(method=method, params=params, started=self.clock())
        self.calls.append(call)
        self._signal()
        return call

    def finish_call(self, call: ApiCall, status: int, description: str | None = None) -> None:
        """Log a call's outcome."""
        call.status = status
        call.description = description
        call.finished = self.clock()
        self._signal()

    def _signal(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def subscribe(self) -> asyncio.Queue[BotEvent]:
        """Return a queue that receives every later event."""
        queue: asyncio.Queue[BotEvent] = asyncio.Queue()
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[BotEvent]) -> None:
        """Stop feeding a queue from :meth:`subscribe`."""
        if queue in self._queues:
            self._queues.remove(queue)

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` synchronously for every later event."""
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        """Stop calling a listener."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _take(self, matches: Callable[[BotEvent], bool]) -> BotEvent | None:
        for event in self.events[self._first_open :]:
            if event.seq not in self._consumed and matches(event):
                self._consumed.add(event.seq)
                while (
                    self._first_open < len(self.events)
                    and self.events[self._first_open].seq in self._consumed
                ):
                    self._first_open += 1
                return event
        return None

    def signal(self) -> None:
        """Wake everything waiting in :meth:`wait_until` to check its condition again."""
        self._signal()

    async def wait_until(
        self,
        check: Callable[[], T | None],
        *,
        timeout: float,  # noqa: ASYNC109 - a per-call limit reads better in tests
        explain: Callable[[], str],
    ) -> T:
        """Return the first non-``None`` result of ``check``, re-checked after every change.

        Raises :class:`TimeoutError` with ``explain()`` when ``timeout`` seconds pass first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = check()
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(explain())
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that comes
            # just as the journal changes.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()

    async def wait_for(
        self,
        predicate: Callable[[BotEvent], bool] | None = None,
        *,
        kind: EventKind | None = None,
        chat_id: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - a per-call limit reads better in tests
    ) -> BotEvent:
        """Return the earliest not yet returned event matching all the given conditions.

        Raises :class:`TimeoutError` listing recent events if none comes within ``timeout``.
        """

        def matches(event: BotEvent) -> bool:
            if kind is not None and event.kind != kind:
                return False
            if chat_id is not None and event.chat_id != chat_id:
                return False
            return predicate is None or predicate(event)

        return await self.wait_until(
            lambda: self._take(matches),
            timeout=timeout,
            explain=lambda: self._timeout_message(timeout, kind, chat_id),
        )

    async def wait_for_call(
        self,
        method: str,
        *,
        predicate: Callable[[ApiCall], bool] | None = None,
        after: int = 0,
        finished: bool = False,
        timeout: float = 10.0,  # noqa: ASYNC109 - a per-call limit reads better in tests
    ) -> ApiCall:
        """Return the first call of ``method`` (case-insensitive) at index ``after`` or later.

        With ``finished=True`` only calls that have an outcome count.
        """
        wanted = method.lower()

        def find() -> ApiCall | None:
            for call in self.calls[after:]:
                if call.method.lower() != wanted or (finished and call.status is None):
                    continue
                if predicate is None or predicate(call):
                    return call
            return None

        def explain() -> str:
            recent = ", ".join(f"{c.method}:{c.status}" for c in self.calls[-_RECENT:])
            return f"no {method} call within {timeout:g} s; recent calls: {recent or 'none'}"

        return await self.wait_until(find, timeout=timeout, explain=explain)

    def _timeout_message(self, timeout: float, kind: str | None, chat_id: int | None) -> str:
        conditions = [f"kind={kind}"] if kind else []
        if chat_id is not None:
            conditions.append(f"chat_id={chat_id}")
        wanted = f" ({', '.join(conditions)})" if conditions else ""
        recent = self.events[-_RECENT:]
        lines = "\n  ".join(
            f"{e.describe()}{' (already returned)' if e.seq in self._consumed else ''}"
            for e in recent
        )
        return (
            f"no matching bot event{wanted} within {timeout:g} s; "
            f"recent events:\n  {lines or 'none'}"
        )

"""The outbox's events on their way to the chat, in one lane per chat.

A chat's events go in the order they were stored, one at a time, while other chats' go
beside them, so that a chat waiting for its rate limit or failing holds up no other; a
job's events all go to one chat, so they keep their order. An event leaves the outbox only
once it was sent (or refused for good): when one of a job's events cannot go, that job's
later events wait with it for the lane's next round, after a back-off.

What an event becomes in the chat is the sender's (:class:`~bot.delivery.Delivery`); this
module only decides which event goes when.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.ratelimit import Priority, sending_as
from bot.sending import is_not_modified, retry_seconds
from workers.events import Event
from workers.store.outbox import Outbox
from workers.waits import wait_at_most

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0
MAX_RETRY_DELAY_S = 30.0
# The most waiting events read from the outbox at once.
PENDING_BATCH = 1000
# How often, at most, the outbox is read while events keep coming in; and at most the share
# of the time reading it may take (with many events waiting, reading them is not free).
READ_EVERY_S = 0.25
READ_SHARE = 0.05
MAX_READ_EVERY_S = 2.0

LaneKey = int | None
"""Which lane an event goes out in: the chat its job's messages go to, or None for runtime
events (each goes to several chats)."""


@dataclass
class Lane:
    """One chat's events on their way: those read from the outbox and not yet sent (in the
    order they were stored), the round under way (if any), and, after failures, when the
    lane may try again."""

    queue: deque[Event] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    retry_at: float = 0.0
    delay: float = RETRY_DELAY_S
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def busy(self) -> bool:
        """Whether events wait in the lane or go out now."""
        return bool(self.queue) or self.task is not None


class Lanes:
    """Reads the outbox when events come in and sends them, one lane per chat.

    The outbox is read at once when it was not read for :data:`READ_EVERY_S`, else that long
    after the last reading, and never so often that reading takes more than
    :data:`READ_SHARE` of the time; a reading fetches only the events after the newest one
    already read, unless some were put back. With hundreds of events waiting (a busy lab,
    chats at their rate limit), reading them all for each new event would take the event
    loop from the people typing.

    ``lane_of`` names an event's lane; ``send`` sends one event (raising
    :class:`~telegram.error.TelegramError` when it could not go); ``after_round`` is called
    when a lane's round ends (the chat may be free for status edits again).
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        lane_of: Callable[[Event], LaneKey],
        send: Callable[[Event], Awaitable[None]],
        after_round: Callable[[], None],
    ) -> None:
        self.outbox = outbox
        self._lane_of = lane_of
        self._send = send
        self._after_round = after_round
        self._wake = asyncio.Event()
        self._round_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lanes: dict[LaneKey, Lane] = {}
        self._queued: set[int] = set()
        self._cursor = 0
        self._unread = True
        self._coming: set[LaneKey] = set()
        self._read_at = -READ_EVERY_S
        self._read_every = READ_EVERY_S

    def wake(self) -> None:
        """New events are waiting. When the outbox was not read for a while they go out at
        once (before anything the engine does next), else at the next reading."""
        self._unread = True
        self._wake.set()
        if self._task is not None and time.monotonic() - self._read_at >= self._read_every:
            try:
                self._read_outbox()
                self._dispatch()
            except Exception:
                log.exception("could not start delivery; the loop tries again")

    def expect(self, key: LaneKey) -> None:
        """An event for this lane was stored: until the outbox is read again, the lane
        counts as busy (so that no status edit goes ahead of the event)."""
        if self._unread:
            self._coming.add(key)

    def busy(self, key: LaneKey) -> bool:
        """Whether events wait to go in a lane, or go now."""
        lane = self._lanes.get(key)
        return key in self._coming or (lane is not None and lane.busy)

    def start(self) -> None:
        """Start the loop that reads the outbox and starts the lanes."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="colabot-delivery")

    async def stop(self) -> None:
        """Stop the loop and the lanes (unsent events stay in the outbox)."""
        tasks = [self._task] if self._task is not None else []
        tasks += [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        for lane in self._lanes.values():
            self._put_back(lane)

    async def drained(self) -> None:
        """Wait until the outbox is empty (every event delivered); wrap it in a timeout."""
        while self.outbox.pending_events(limit=1):
            self._round_done.clear()
            self.wake()
            await self._round_done.wait()

    async def deliver_pending(self) -> int:
        """Deliver what the outbox holds now, every lane beside the others (a lane's round
        already under way is waited for, never doubled); return how many events still
        wait."""
        self._read_outbox()
        # A lane whose round is under way has popped the event it sends: wait for it too.
        keys = [
            key
            for key, lane in self._lanes.items()
            if lane.queue or (lane.task is not None and not lane.task.done())
        ]
        with sending_as(Priority.EVENT):
            rounds = await asyncio.gather(*(self._deliver_lane(key) for key in keys))
        self._unread = True
        return sum(waiting for waiting, _ in rounds)

    async def _run(self) -> None:
        """Read the outbox when events came in (at most every :data:`READ_EVERY_S`), and
        start the lanes that have events and may go; a lane that met failures is started
        again after its back-off."""
        while True:
            self._wake.clear()
            retry: float | None = None
            try:
                if self._unread:
                    wait = self._read_at + self._read_every - time.monotonic()
                    if wait <= 0:
                        self._read_outbox()
                    else:
                        retry = wait
                soonest = self._dispatch()
                if soonest is not None:
                    retry = soonest if retry is None else min(retry, soonest)
            except Exception:
                log.exception("delivery round failed; retrying")
                retry = RETRY_DELAY_S
            self._round_done.set()
            if retry is None:
                await self._wake.wait()
            else:
                await wait_at_most(self._wake, retry)

    def _read_outbox(self) -> None:
        """Put the events waiting in the outbox that no lane holds yet at the end of their
        lanes, oldest first."""
        self._unread = False
        self._coming.clear()
        started = time.monotonic()
        events = self.outbox.pending_events(limit=PENDING_BATCH, after=self._cursor)
        for event in events:
            if event.id in self._queued:
                continue
            self._queued.add(event.id)
            self._lane(self._lane_of(event)).queue.append(event)
        if len(events) == PENDING_BATCH:
            self._unread = True  # more wait behind this batch
        if events:
            self._cursor = events[-1].id
        self._read_at = time.monotonic()
        took = self._read_at - started
        self._read_every = min(MAX_READ_EVERY_S, max(READ_EVERY_S, took / READ_SHARE))

    def _dispatch(self) -> float | None:
        """Start the lanes that have events and are free; return the seconds until a lane
        backing off may go again (None: none is)."""
        now = time.monotonic()
        soonest: float | None = None
        for key, lane in self._lanes.items():
            if lane.task is not None or not lane.queue:
                continue
            if lane.retry_at > now:
                wait = lane.retry_at - now
                soonest = wait if soonest is None else min(soonest, wait)
                continue
            lane.task = asyncio.create_task(self._lane_round(key), name=f"colabot-lane-{key}")
        return soonest

    async def _lane_round(self, key: LaneKey) -> None:
        """Deliver a lane's events in its own task; then back off after failures, and tell
        the loop and the status edits."""
        lane = self._lane(key)
        try:
            with sending_as(Priority.EVENT):
                waiting, delivered = await self._deliver_lane(key)
            if delivered or not waiting:
                lane.delay, lane.retry_at = RETRY_DELAY_S, 0.0
            else:
                lane.retry_at = time.monotonic() + lane.delay
                lane.delay = min(MAX_RETRY_DELAY_S, lane.delay * 2)
        except Exception:
            log.exception("delivery to %s failed; retrying", key)
            lane.retry_at = time.monotonic() + lane.delay
            self._put_back(lane)
        finally:
            lane.task = None
            self._wake.set()
            self._after_round()
            self._round_done.set()

    def _lane(self, key: LaneKey) -> Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane()
        return lane

    def _put_back(self, lane: Lane) -> None:
        """Drop what a lane holds: the outbox keeps it, and the next reading (from the
        start) brings back what is still to send."""
        self._queued.difference_update(e.id for e in lane.queue)
        lane.queue.clear()
        self._reread()

    def _reread(self) -> None:
        """Read the outbox from its oldest waiting event next time: some were put back."""
        self._unread = True
        self._cursor = 0

    async def _deliver_lane(self, key: LaneKey) -> tuple[int, int]:
        """Deliver the events a lane holds, in order, until it holds none; return (still
        waiting, delivered).

        A job whose event could not go keeps it and its later events in the outbox for the
        lane's next round.
        """
        lane = self._lane(key)
        async with lane.lock:
            blocked: set[int | None] = set()
            waiting = delivered = 0
            while lane.queue:
                event = lane.queue.popleft()
                if event.job_id in blocked:
                    self._queued.discard(event.id)
                    waiting += 1
                    continue
                try:
                    await self._send(event)
                except RetryAfter as exc:
                    log.warning("Telegram asked to slow down for %ss", retry_seconds(exc))
                    blocked.add(event.job_id)
                    waiting += 1
                    self._queued.discard(event.id)
                    continue
                except (BadRequest, Forbidden) as exc:
                    if not (isinstance(exc, BadRequest) and is_not_modified(exc)):
                        # A permanent refusal (chat gone, bot blocked): retrying would block
                        # the job.
                        log.warning(
                            "event %s of job %s was refused: %s", event.id, event.job_id, exc
                        )
                    self._delivered(event)
                    continue
                except TelegramError as exc:
                    log.warning("could not deliver event %s yet: %s", event.id, exc)
                    blocked.add(event.job_id)
                    waiting += 1
                    self._queued.discard(event.id)
                    continue
                except BaseException:
                    lane.queue.appendleft(event)
                    raise
                self._delivered(event)
                delivered += 1
            if blocked:
                self._reread()
            return waiting, delivered

    def _delivered(self, event: Event) -> None:
        self.outbox.mark_delivered(event.id)
        self._queued.discard(event.id)

"""Delivery of the engine's outbox to the chat, and the live status message of each job.

An event is marked delivered only after Telegram accepted it. Events of one job go out in
order: when one cannot be sent, the later ones of that job wait for the next round. An outage
or a restart therefore loses nothing and sends nothing twice; only a colabot killed in the
few milliseconds between Telegram accepting a message and the store recording it sends that
message again when it starts (no Bot API call can be made idempotent). Runtime events go to
several chats; each chat's delivery is recorded on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import assert_never

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    LinkPreviewOptions,
    Message,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bot import limits, views
from bot.chats import ChatBook
from bot.pacing import EditPacer
from bot.ratelimit import ChatRateLimiter, Priority, sending_as
from bot.schedule import needs_new_keepalive
from bot.views import View
from workers.engine import Engine
from workers.events import (
    Album,
    Cancelled,
    Event,
    Failed,
    FileReady,
    Interrupted,
    Keepalive,
    Notice,
    NoticeButton,
    Queued,
    Resumed,
    Started,
    Succeeded,
)
from workers.jobs import Job, JobState, Progress
from workers.store.outbox import StatusRecord

log = logging.getLogger(__name__)

NOT_MODIFIED = "message is not modified"
RETRY_DELAY_S = 1.0
MAX_RETRY_DELAY_S = 30.0
# Running jobs' status messages are refreshed at least this often (their elapsed time, a
# cluster step's place) when no progress changes them.
CLOCK_S = 5.0
# The most waiting events read from the outbox at once.
PENDING_BATCH = 1000
# How often, at most, the outbox is read while events keep coming in; and at most the share
# of the time reading it may take (with many events waiting, reading them is not free).
READ_EVERY_S = 0.25
READ_SHARE = 0.05
MAX_READ_EVERY_S = 2.0


def keyboard(view: View) -> InlineKeyboardMarkup | None:
    """The view's buttons as an inline keyboard (ValueError for button data Telegram would
    refuse: a bug of colabot's, better found here than as a refused message)."""
    if not view.buttons:
        return None
    for row in view.buttons:
        for button in row:
            if not limits.fits_callback_data(button.data):
                raise ValueError(f"button data {button.data!r} is over Telegram's limit")
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in view.buttons]
    )


def is_not_modified(exc: BadRequest) -> bool:
    """True for Telegram's "message is not modified" refusal (an identical edit)."""
    return NOT_MODIFIED in str(exc.message).lower()


async def send_view(
    bot: Bot,
    chat_id: int,
    view: View,
    *,
    reply_to: int | None = None,
    thread_id: int | None = None,
) -> Message:
    """Send a view (in a forum topic when ``thread_id`` is given); one that is too long for a
    message goes as a text file."""
    if views.fits(view.text):
        return await bot.send_message(
            chat_id,
            view.text,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard(view),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            reply_to_message_id=reply_to,
            allow_sending_without_reply=True,
            message_thread_id=thread_id,
        )
    data = views.to_plain(view.text).encode()
    return await bot.send_document(
        chat_id,
        BytesIO(data),
        filename="reply.txt",
        caption="The reply was too long for one message, so here it is as a file.",
        reply_markup=keyboard(view),
        reply_to_message_id=reply_to,
        allow_sending_without_reply=True,
        message_thread_id=thread_id,
    )


def retry_seconds(exc: RetryAfter) -> float:
    """How long Telegram asked to wait, in seconds."""
    retry = exc.retry_after
    return float(retry.total_seconds() if hasattr(retry, "total_seconds") else retry)


def is_too_large(exc: TelegramError) -> bool:
    """Whether Telegram refused an upload for its size (HTTP 413, which python-telegram-bot
    reports as a NetworkError, the kind it retries)."""
    text = str(exc.message).lower()
    return isinstance(exc, NetworkError) and (
        "request entity too large" in text or "(413)" in text or "file too large" in text
    )


@dataclass(frozen=True)
class Place:
    """Where a message goes: a chat, and a forum topic in it (None: the General topic)."""

    chat_id: int
    thread_id: int | None = None


def job_place(job: Job) -> Place | None:
    """Where a job's messages go: the chat and topic its command came from."""
    chat = job.origin.get("chat_id")
    if chat is None:
        return None
    thread = job.origin.get("thread_id")
    return Place(int(chat), int(thread) if thread is not None else None)


class ChatPositions:
    """The newest message id seen in each chat, to tell how far up an old message has scrolled.

    Message ids in a chat grow with every message from either side.
    """

    def __init__(self) -> None:
        self._latest: dict[int, int] = {}

    def seen(self, chat_id: int, message_id: int) -> None:
        """Note a message in a chat."""
        if message_id > self._latest.get(chat_id, 0):
            self._latest[chat_id] = message_id

    def latest(self, chat_id: int) -> int:
        """The newest message id known in a chat (0 when none)."""
        return self._latest.get(chat_id, 0)


def _event_buttons(view: View) -> list[list[NoticeButton]]:
    return [[NoticeButton(b.label, b.data) for b in row] for row in view.buttons]


def _view_buttons(buttons: list[list[NoticeButton]]) -> list[list[views.Button]]:
    return [[views.Button(b.label, b.data) for b in row] for row in buttons]


def view_notice(view: View) -> Notice:
    """A view as a notice event (the inverse of :func:`notice_view`)."""
    return Notice(html=view.text, buttons=_event_buttons(view))


def keepalive_event(view: View) -> Keepalive:
    """The keepalive view as its event."""
    return Keepalive(view.text, _event_buttons(view))


def notice_view(job: Job | None, notice: Notice) -> View:
    """A notice as a view: plain ``text`` is escaped, ``html`` is used as it is."""
    buttons = _view_buttons(notice.buttons)
    if notice.html is not None:
        return View(notice.html, buttons)
    base = views.notice_view(job, notice.text)
    return View(base.text, buttons or base.buttons)


@dataclass
class StatusMessage:
    """Where a job's status message is, and what it last said."""

    chat_id: int
    message_id: int
    text: str
    edited_at: float


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


class Delivery:
    """Sends outbox events to the chat and keeps each job's status message current.

    A job's events go to the chat (and forum topic) its command came from; runtime events go
    to every broadcast chat, and each chat's delivery is recorded, so that one chat that
    fails neither blocks nor repeats the others. A group that became a supergroup is followed
    to its new id; a chat that blocked or removed the bot is forgotten.

    Events go out in lanes, one per chat (and one for runtime events): a chat's events go in
    the order they were stored, one at a time, while other chats' go beside them, so that a
    chat waiting for its rate limit or failing holds up no other. A job's events all go to
    one chat, so they keep their order. The outbox is read when events come in: at once when
    it was not read for :data:`READ_EVERY_S`, else that long after the last reading, and
    never so often that reading takes more than :data:`READ_SHARE` of the time. With
    hundreds of events waiting (a busy lab, chats at their rate limit), reading them all for
    each new event would take the event loop from the people typing.

    Status edits are a loop of their own. A job's new progress (the engine's progress
    listeners) or state (its state listeners: a job that waits for a quota and why) makes
    its status message due an edit, and its edits are paced (:class:`EditPacer`); a slow
    clock also refreshes running jobs' messages (their elapsed time, where a cluster runs
    them) when nothing else changes them. Events never wait behind status edits: a chat with
    events waiting gets no edit, edits are sent at the lowest
    :class:`~bot.ratelimit.Priority` and only when the chat's limits have room for them now,
    and one job's status message is touched by one lane or loop at a time.
    """

    def __init__(
        self,
        bot: Bot,
        engine: Engine,
        *,
        chats: ChatBook,
        positions: ChatPositions | None = None,
        pacer: EditPacer | None = None,
        clock_s: float = CLOCK_S,
    ) -> None:
        self.bot = bot
        self.engine = engine
        self.store = engine.store
        self.chats = chats
        self.positions = positions or ChatPositions()
        self.pacer = pacer or EditPacer()
        self.clock_s = clock_s
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._dirty: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._lanes: dict[LaneKey, Lane] = {}
        self._queued: set[int] = set()
        self._unread = True
        self._hot: set[LaneKey] = set()
        self._read_at = -READ_EVERY_S
        self._read_every = READ_EVERY_S
        self._job_locks: dict[int, asyncio.Lock] = {}
        self._places: dict[int, Place | None] = {}
        self._status: dict[int, StatusMessage] = {}
        self._round_done = asyncio.Event()
        self.delivered_count = 0
        engine.on_events(self.wake)
        engine.on_progress(self._progressed)
        engine.on_state(self._state_changed)
        chats.on_moved(self._chat_moved)

    def wake(self) -> None:
        """New events are waiting. When the outbox was not read for a while they go out at
        once (before anything the engine does next), else at the next reading."""
        self._unread = True
        self._wake.set()
        if self._tasks and time.monotonic() - self._read_at >= self._read_every:
            try:
                self._read_outbox()
                self._dispatch()
            except Exception:
                log.exception("could not start delivery; the loop tries again")

    def _progressed(self, job_id: int, _progress: Progress) -> None:
        """A running job's progress changed: its status message is due an edit."""
        self._dirty.add(job_id)
        self._changed.set()

    def _state_changed(self, job: Job) -> None:
        """A job changed state, or why it waits: an active job's message is due an edit; an
        ended job's (its last edit goes with its event) is forgotten. Until the outbox is
        read again, the job's chat counts as having an event waiting (a state change comes
        with one), so that no status edit goes ahead of it."""
        if self._unread:
            place = self._place_of(job.id)
            if place is not None:
                self._hot.add(self.chats.current(place.chat_id))
        if job.active:
            self._dirty.add(job.id)
            self._changed.set()
        elif job.id in self._status:
            self._status.pop(job.id, None)
            self.pacer.forget(job.id)

    def start(self) -> None:
        """Start the delivery loops."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(), name="colabot-delivery"),
                asyncio.create_task(self._refresh(), name="colabot-status-edits"),
            ]

    async def stop(self) -> None:
        """Stop the loops and the lanes (undelivered events stay in the outbox)."""
        tasks = [*self._tasks, *(lane.task for lane in self._lanes.values() if lane.task)]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for lane in self._lanes.values():
            self._forget_queue(lane)

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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=retry)

    def _read_outbox(self) -> None:
        """Put the events waiting in the outbox that no lane holds yet at the end of their
        lanes, oldest first."""
        self._unread = False
        self._hot.clear()
        started = time.monotonic()
        for event in self.store.pending_events(limit=PENDING_BATCH):
            if event.id in self._queued:
                continue
            self._queued.add(event.id)
            self._lane(self._lane_of(event)).queue.append(event)
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
        the dispatcher and the status edits."""
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
            self._forget_queue(lane)
        finally:
            lane.task = None
            self._wake.set()
            self._changed.set()  # the chat may be free for status edits again
            self._round_done.set()

    async def _refresh(self) -> None:
        """Edit the status messages of jobs whose view changed, as pacing allows."""
        clock = time.monotonic() + self.clock_s
        with sending_as(Priority.EDIT):
            while True:
                self._changed.clear()
                if time.monotonic() >= clock:
                    self._dirty.update(self._status)
                    clock = time.monotonic() + self.clock_s
                try:
                    wait = await self.refresh_status_messages()
                except Exception:
                    log.exception("status edits failed; trying again")
                    wait = RETRY_DELAY_S
                until_clock = max(0.0, clock - time.monotonic())
                timeout = until_clock if wait is None else min(wait, until_clock)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=timeout)

    async def drained(self) -> None:
        """Wait until the outbox is empty (every event delivered); wrap it in a timeout."""
        while self.store.pending_events(limit=1):
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

    # lanes -------------------------------------------------------------------------------------

    def _lane(self, key: LaneKey) -> Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane()
        return lane

    def _forget_queue(self, lane: Lane) -> None:
        """Drop what a lane holds: the outbox keeps it, and the next reading brings back
        what is still to send."""
        self._queued.difference_update(e.id for e in lane.queue)
        lane.queue.clear()
        self._unread = True

    def _lane_of(self, event: Event) -> LaneKey:
        """The chat an event goes to (None: several, a runtime event)."""
        if event.job_id is None:
            return None
        place = self._place_of(event.job_id)
        return None if place is None else self.chats.current(place.chat_id)

    def _place_of(self, job_id: int) -> Place | None:
        """Where a job's messages go (as its command came; kept, since it never changes)."""
        if job_id not in self._places:
            job = self.store.find_job(job_id)
            self._places[job_id] = job_place(job) if job is not None else None
        return self._places[job_id]

    def _events_waiting_in(self, chat_id: int) -> bool:
        """Whether events wait to go to a chat, or go there now (its status edits wait)."""
        lane = self._lanes.get(chat_id)
        return chat_id in self._hot or (lane is not None and lane.busy)

    def _job_lock(self, job_id: int) -> asyncio.Lock:
        return self._job_locks.setdefault(job_id, asyncio.Lock())

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
                    await self.deliver(event)
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
                self._unread = True
            self.delivered_count += delivered
            return waiting, delivered

    def _delivered(self, event: Event) -> None:
        self.store.mark_delivered(event.id)
        self._queued.discard(event.id)

    async def deliver(self, event: Event) -> None:
        """Send one event; raise TelegramError when it could not be delivered."""
        job = self.store.find_job(event.job_id) if event.job_id is not None else None
        if job is None:
            await self._broadcast(event)
            return
        place = job_place(job)
        if place is None:
            await self._broadcast(event)
            return
        place = Place(self.chats.current(place.chat_id), place.thread_id)
        await self._at(place, lambda where: self._deliver_job_event(job, event, where))

    async def _deliver_job_event(self, job: Job, event: Event, place: Place) -> None:
        # In a group, the messages people act on mention the job's owner.
        owner = job.owner if place.chat_id < 0 else None
        match event.payload:
            case Queued() | Resumed():
                async with self._job_lock(job.id):
                    await self._post_status(job, place)
            case Started():
                async with self._job_lock(job.id):
                    await self._update_status(job, place, force=True)
            case Notice() as notice:
                view = views.for_owner(notice_view(job, notice), owner)
                await self._send(place, view, reply_to=self._status_id(job.id))
            case Succeeded() as done:
                async with self._job_lock(job.id):
                    await self._update_status(job, place, force=True)
                view = views.succeeded_view(job, done.summary, done.links)
                await self._send(place, views.for_owner(view, owner))
            case Failed() as failed:
                async with self._job_lock(job.id):
                    await self._update_status(job, place, force=True)
                view = views.failed_view(job, failed.reason, failed.tail, failed.step)
                await self._send(place, views.for_owner(view, owner))
            case Cancelled():
                async with self._job_lock(job.id):
                    await self._update_status(job, place, force=True)
                await self._send(place, views.for_owner(views.cancelled_view(job), owner))
            case Interrupted():
                async with self._job_lock(job.id):
                    await self._update_status(job, place, force=True)
                await self._send(place, views.for_owner(views.interrupted_view(job), owner))
            case FileReady() as file:
                await self._send_file(place, file, job)
            case Album() as album:
                await self._send_album(place, album, job)
            case Keepalive():
                log.warning("a keepalive event names job %s; it is for the runtime", job.id)
            case _:
                assert_never(event.payload)

    async def _at(self, place: Place, send: Callable[[Place], Awaitable[None]]) -> Place:
        """Send to ``place``, following a group that became a supergroup; forget a chat that
        blocked or removed the bot. Returns where it went."""
        try:
            await send(place)
            return place
        except ChatMigrated as exc:
            self.chats.migrate(place.chat_id, int(exc.new_chat_id))
            moved = Place(int(exc.new_chat_id), None)
            await send(moved)
            return moved
        except Forbidden as exc:
            self.chats.forget(place.chat_id, str(exc.message))
            raise

    async def _broadcast(self, event: Event) -> None:
        """Send a runtime event to every broadcast chat, each once, whatever the others do."""
        done = self.store.delivered_to(event.id)
        retry: TelegramError | None = None
        for chat in self._runtime_chats():
            if chat in done:
                continue
            try:
                where = await self._at(Place(chat), lambda p: self._send_runtime_event(p, event))
                self.store.note_delivered_to(event.id, where.chat_id)
            except RetryAfter:
                raise
            except (BadRequest, Forbidden) as exc:
                log.warning("runtime event %s was refused by chat %s: %s", event.id, chat, exc)
            except TelegramError as exc:
                retry = exc
                continue
            self.store.note_delivered_to(event.id, chat)
        if retry is not None:
            raise retry
        self.store.forget_deliveries(event.id)

    def _runtime_chats(self) -> list[int]:
        """Who hears a runtime event: the owners of the jobs that wait or run (the jobs a
        runtime warning concerns) and the admins, and the groups those jobs came from."""
        active = self.store.list_jobs(states=[JobState.QUEUED, JobState.RUNNING])
        owners = [job.owner.user_id for job in active if job.owner is not None]
        groups = [p.chat_id for job in active if (p := job_place(job)) and p.chat_id < 0]
        return self.chats.broadcast_chats(owners, groups)

    async def _send_runtime_event(self, place: Place, event: Event) -> None:
        match event.payload:
            case FileReady() as file:
                await self._send_file(place, file, None)
            case Album() as album:
                await self._send_album(place, album, None)
            case Keepalive() as keepalive:
                view = View(keepalive.html, _view_buttons(keepalive.buttons))
                await self._keepalive_at(place, view)
            case Notice() as notice:
                await self._send(place, notice_view(None, notice))
            case other:
                log.warning("a %s event without a job cannot be delivered", type(other).__name__)

    async def _send(self, place: Place, view: View, *, reply_to: int | None = None) -> Message:
        message = await send_view(
            self.bot, place.chat_id, view, reply_to=reply_to, thread_id=place.thread_id
        )
        self.positions.seen(place.chat_id, message.message_id)
        self.pacer.sent(place.chat_id, time.time())
        return message

    async def _send_file(self, place: Place, file: FileReady, job: Job | None) -> None:
        path = Path(file.path)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            log.warning("file %s vanished before it could be sent", path)
            return
        caption = limits.caption(file.caption or path.name)
        try:
            if file.photo and size <= limits.PHOTO_UPLOAD_BYTES:
                await self.bot.send_photo(
                    place.chat_id, path, caption=caption, message_thread_id=place.thread_id
                )
            elif file.video and size <= limits.DOCUMENT_UPLOAD_BYTES:
                await self.bot.send_video(
                    place.chat_id,
                    path,
                    caption=caption,
                    supports_streaming=True,
                    filename=path.name,
                    message_thread_id=place.thread_id,
                )
            elif size <= limits.DOCUMENT_UPLOAD_BYTES:
                await self.bot.send_document(
                    place.chat_id,
                    path,
                    filename=path.name,
                    caption=caption,
                    message_thread_id=place.thread_id,
                )
            else:
                await self._send(place, views.file_too_large_view(path.name, size, job))
                return
        except NetworkError as exc:
            if not is_too_large(exc):
                raise
            # Permanent: sending it again would upload it again each round.
            await self._send(place, views.file_too_large_view(path.name, size, job))
            return
        self.pacer.sent(place.chat_id, time.time())

    async def _send_album(self, place: Place, album: Album, job: Job | None) -> None:
        """Pictures as one album (2 to 10 of them, each under the photo limit); one picture
        goes as a photo, more than ten as several albums."""
        items = []
        for index, name in enumerate(album.paths):
            path = Path(name)
            try:
                size = (await asyncio.to_thread(path.stat)).st_size
            except FileNotFoundError:
                log.warning("picture %s vanished before it could be sent", path)
                continue
            if size > limits.PHOTO_UPLOAD_BYTES:
                log.warning("picture %s is over Telegram's photo limit; left out", path)
                continue
            caption = album.captions[index] if index < len(album.captions) else ""
            items.append((path, caption))
        for start in range(0, len(items), limits.ALBUM_MAX_ITEMS):
            group = items[start : start + limits.ALBUM_MAX_ITEMS]
            first = [album.title] if start == 0 and album.title else []
            if len(group) == 1:
                path, caption = group[0]
                text = limits.caption(" · ".join([*first, caption]))
                await self.bot.send_photo(
                    place.chat_id, path, caption=text, message_thread_id=place.thread_id
                )
            else:
                media = [
                    InputMediaPhoto(
                        path.read_bytes(),
                        caption=limits.caption(
                            " · ".join([*first, caption]) if i == 0 else caption
                        ),
                        filename=path.name,
                    )
                    for i, (path, caption) in enumerate(group)
                ]
                await self.bot.send_media_group(
                    place.chat_id, media, message_thread_id=place.thread_id
                )
            self.pacer.sent(place.chat_id, time.time())

    # the keepalive -----------------------------------------------------------------------------

    async def _edit(self, chat_id: int, message_id: int, view: View) -> bool:
        """Edit a message in place; False when it is gone or can no longer be edited.

        An edit that changes nothing counts as done.
        """
        try:
            await self.bot.edit_message_text(
                view.text,
                chat_id=chat_id,
                message_id=message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard(view),
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except BadRequest as exc:
            if is_not_modified(exc):
                return True
            text = str(exc.message).lower()
            if "not found" in text or "can't be edited" in text:
                return False
            raise
        return True

    async def _keepalive_at(self, place: Place, view: View) -> None:
        """Show the keepalive in one chat: edited in place while it is near the bottom of the
        chat, posted again (quietly) once the chat has scrolled on."""
        current = self.store.keepalive_message(place.chat_id)
        latest = self.positions.latest(place.chat_id)
        near = current is not None and not needs_new_keepalive(current, latest)
        if near and current is not None and await self._edit(place.chat_id, current, view):
            self.pacer.sent(place.chat_id, time.time())
            return
        message = await self.bot.send_message(
            place.chat_id,
            view.text,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard(view),
            disable_notification=True,
        )
        self.positions.seen(place.chat_id, message.message_id)
        self.pacer.sent(place.chat_id, time.time())
        self.store.set_keepalive_message(place.chat_id, message.message_id)

    # status messages --------------------------------------------------------------------------

    def _chat_moved(self, old: int, new: int) -> None:
        for job_id, status in list(self._status.items()):
            if status.chat_id == old:
                del self._status[job_id]  # reloaded from the store, where it was moved

    def _status_id(self, job_id: int) -> int | None:
        status = self._load_status(job_id)
        return status.message_id if status else None

    def _load_status(self, job_id: int) -> StatusMessage | None:
        cached = self._status.get(job_id)
        if cached is not None:
            return cached
        stored = self.store.status_message(job_id)
        if stored is None:
            return None
        status = StatusMessage(stored.chat_id, stored.message_id, stored.text, 0.0)
        self._status[job_id] = status
        return status

    def _save_status(self, job_id: int, status: StatusMessage) -> None:
        self._status[job_id] = status
        self.store.save_status_message(
            job_id, StatusRecord(status.chat_id, status.message_id, status.text)
        )

    async def _post_status(self, job: Job, place: Place) -> None:
        live = self.engine.job(job.id)
        view = views.live_status(
            live, self.engine.current_step(job.id), where=self.engine.placement(job.id)
        )
        reply_to = job.origin.get("message_id") if job.attempt == 1 else None
        message = await self._send(place, view, reply_to=reply_to)
        self._save_status(
            job.id, StatusMessage(place.chat_id, message.message_id, view.text, time.time())
        )

    async def _update_status(self, job: Job, place: Place, *, force: bool = False) -> None:
        status = self._load_status(job.id)
        if status is None or status.chat_id != place.chat_id:
            await self._post_status(job, place)
            return
        live = self.engine.job(job.id)
        view = views.live_status(
            live, self.engine.current_step(job.id), where=self.engine.placement(job.id)
        )
        if view.text == status.text:
            return
        now = time.time()
        if not force and not self.pacer.may_edit(status.chat_id, job.id, now):
            return
        if not await self._edit(status.chat_id, status.message_id, view):
            await self._post_status(job, place)
            return
        self.pacer.edited(status.chat_id, job.id, now)
        self._save_status(job.id, StatusMessage(status.chat_id, status.message_id, view.text, now))

    async def refresh_status_messages(self) -> float | None:
        """Edit the status message of each job whose view may have changed, as pacing and
        the chat's limits allow, the longest waiting first; return the seconds until a
        held-back edit may go (None: none is held).

        A chat with events waiting (or going) gets no edit until they are out: the end of
        its lane starts this loop again.
        """
        now = time.time()
        soonest: float | None = None
        for job_id in self._edit_order():
            known = self._status.get(job_id)
            if known is not None:
                # Not due yet: decided without reading the store.
                if self._events_waiting_in(known.chat_id):
                    continue
                at = self.pacer.next_edit_at(known.chat_id, job_id, now)
                if at > now:
                    soonest = at if soonest is None else min(soonest, at)
                    continue
            job = self.store.find_job(job_id)
            if job is None or not job.active:
                # Its last edit goes with its end's event.
                self._dirty.discard(job_id)
                self._status.pop(job_id, None)
                self.pacer.forget(job_id)
                continue
            place = job_place(job)
            status = self._load_status(job_id) if place is not None else None
            if place is None or status is None:
                self._dirty.discard(job_id)
                continue
            chat = self.chats.current(place.chat_id)
            place = Place(chat, place.thread_id)
            if self._events_waiting_in(chat):
                continue
            at = max(self.pacer.next_edit_at(chat, job_id, now), now + self._room(chat))
            if at > now:
                soonest = at if soonest is None else min(soonest, at)
                continue
            self._dirty.discard(job_id)
            try:
                async with self._job_lock(job_id):
                    if self._events_waiting_in(chat):  # one came while this waited
                        self._dirty.add(job_id)
                        continue
                    await self._at(place, functools.partial(self._update_status, job))
            except TelegramError as exc:
                # Tried again at the job's next turn (a 429 also paused the chat).
                log.debug("status edit of job %s failed: %s", job_id, exc)
                self._dirty.add(job_id)
                self.pacer.edited(chat, job_id, now)
        return None if soonest is None else max(0.0, soonest - time.time())

    def _room(self, chat_id: int) -> float:
        """Seconds until the rate limiter has room for a status edit in a chat (0: now),
        so that an edit never waits there, holding up the edits of other chats."""
        limiter = getattr(self.bot, "rate_limiter", None)
        if isinstance(limiter, ChatRateLimiter):
            return limiter.delay(chat_id, Priority.EDIT)
        return 0.0

    def _edit_order(self) -> list[int]:
        """The jobs due an edit, the one whose message waited longest first."""

        def waited(job_id: int) -> tuple[float, int]:
            status = self._status.get(job_id)
            chat = status.chat_id if status is not None else 0
            return (self.pacer.last_edit(chat, job_id), job_id)

        return sorted(self._dirty, key=waited)

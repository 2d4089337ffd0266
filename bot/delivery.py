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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

from telegram import Bot, InputMediaPhoto, Message
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
from bot.lanes import RETRY_DELAY_S, LaneKey, Lanes
from bot.pacing import EditPacer
from bot.ratelimit import ChatRateLimiter, Priority, sending_as
from bot.schedule import needs_new_keepalive
from bot.sending import (
    ChatPositions,
    Place,
    edit_view,
    is_too_large,
    job_place,
    keyboard,
    notice_view,
    send_view,
    view_buttons,
)
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
    Queued,
    Resumed,
    Started,
    Succeeded,
)
from workers.jobs import Job, JobState, Progress
from workers.store.outbox import StatusRecord
from workers.waits import wait_at_most

log = logging.getLogger(__name__)

# Running jobs' status messages are refreshed at least this often (their elapsed time, a
# cluster step's place) when no progress changes them.
CLOCK_S = 5.0


@dataclass
class StatusMessage:
    """Where a job's status message is, and what it last said."""

    chat_id: int
    message_id: int
    text: str
    edited_at: float


class Delivery:
    """Sends outbox events to the chat and keeps each job's status message current.

    A job's events go to the chat (and forum topic) its command came from; runtime events go
    to every broadcast chat, and each chat's delivery is recorded, so that one chat that
    fails neither blocks nor repeats the others. A group that became a supergroup is followed
    to its new id; a chat that blocked or removed the bot is forgotten.

    Events go out in :class:`~bot.lanes.Lanes`, one per chat (and one for runtime events), so
    that a chat waiting for its rate limit or failing holds up no other.

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
        self.lanes = Lanes(
            self.store, lane_of=self._lane_of, send=self.deliver, after_round=self._edits_may_go
        )
        self._changed = asyncio.Event()
        self._dirty: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._job_locks: dict[int, asyncio.Lock] = {}
        self._places: dict[int, Place | None] = {}
        self._status: dict[int, StatusMessage] = {}
        engine.on_events(self.lanes.wake)
        engine.on_progress(self._progressed)
        engine.on_state(self._state_changed)
        chats.on_moved(self._chat_moved)

    def _progressed(self, job_id: int, _progress: Progress) -> None:
        """A running job's progress changed: its status message is due an edit."""
        self._dirty.add(job_id)
        self._changed.set()

    def _state_changed(self, job: Job) -> None:
        """A job changed state, or why it waits: an active job's message is due an edit; an
        ended job's (its last edit goes with its event) is forgotten. Until the outbox is
        read again, the job's chat counts as having an event waiting (a state change comes
        with one), so that no status edit goes ahead of it."""
        place = self._place_of(job.id)
        if place is not None:
            self.lanes.expect(self.chats.current(place.chat_id))
        if job.active:
            self._dirty.add(job.id)
            self._changed.set()
        elif job.id in self._status:
            self._status.pop(job.id, None)
            self.pacer.forget(job.id)

    def start(self) -> None:
        """Start the lanes and the status edits."""
        self.lanes.start()
        if self._task is None:
            self._task = asyncio.create_task(self._refresh(), name="colabot-status-edits")

    async def stop(self) -> None:
        """Stop the lanes and the status edits (undelivered events stay in the outbox)."""
        await self.lanes.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drained(self) -> None:
        """Wait until the outbox is empty (every event delivered); wrap it in a timeout."""
        await self.lanes.drained()

    async def deliver_pending(self) -> int:
        """Deliver what the outbox holds now; return how many events still wait."""
        return await self.lanes.deliver_pending()

    def _edits_may_go(self) -> None:
        """A lane's round ended: its chat may be free for status edits again."""
        self._changed.set()

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
                await wait_at_most(self._changed, timeout)

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

    def _job_lock(self, job_id: int) -> asyncio.Lock:
        return self._job_locks.setdefault(job_id, asyncio.Lock())

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
                view = View(keepalive.html, view_buttons(keepalive.buttons))
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

    async def _keepalive_at(self, place: Place, view: View) -> None:
        """Show the keepalive in one chat: edited in place while it is near the bottom of the
        chat, posted again (quietly) once the chat has scrolled on."""
        current = self.store.keepalive_message(place.chat_id)
        latest = self.positions.latest(place.chat_id)
        near = current is not None and not needs_new_keepalive(current, latest)
        if near and current is not None and await edit_view(self.bot, place.chat_id, current, view):
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
        if not await edit_view(self.bot, status.chat_id, status.message_id, view):
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
                if self.lanes.busy(known.chat_id):
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
            if self.lanes.busy(chat):
                continue
            at = max(self.pacer.next_edit_at(chat, job_id, now), now + self._room(chat))
            if at > now:
                soonest = at if soonest is None else min(soonest, at)
                continue
            self._dirty.discard(job_id)
            try:
                async with self._job_lock(job_id):
                    if self.lanes.busy(chat):  # one came while this waited
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

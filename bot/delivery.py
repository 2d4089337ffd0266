"""Delivery of the engine's outbox to the chat, and the live status message of each job.

An event is marked delivered only after Telegram accepted it. Events of one job go out in
order: when one cannot be sent, the later ones of that job wait for the next round. An outage
or a restart therefore loses nothing and sends nothing twice. Runtime events go to several
chats; each chat's delivery is recorded on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
from workers.jobs import Job, Progress
from workers.store.outbox import StatusRecord

log = logging.getLogger(__name__)

NOT_MODIFIED = "message is not modified"
RETRY_DELAY_S = 1.0
MAX_RETRY_DELAY_S = 30.0
# Running jobs' status messages are refreshed at least this often (their elapsed time, a
# cluster step's place) when no progress changes them.
CLOCK_S = 5.0


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


class Delivery:
    """Sends outbox events to the chat and keeps each job's status message current.

    A job's events go to the chat (and forum topic) its command came from; runtime events go
    to every broadcast chat, and each chat's delivery is recorded, so that one chat that
    fails neither blocks nor repeats the others. A group that became a supergroup is followed
    to its new id; a chat that blocked or removed the bot is forgotten.

    Two loops: one delivers events as the engine stores them; the other edits status
    messages. A job's new progress reaches it through one subscription (the engine's
    progress listeners), and its edits are paced (:class:`EditPacer`); a slow clock also
    refreshes running jobs' messages (their elapsed time, where a cluster runs them) when
    nothing else changes them. Events never wait behind status edits.
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
        self._retry_delay = RETRY_DELAY_S
        self._status: dict[int, StatusMessage] = {}
        self._round_done = asyncio.Event()
        self.delivered_count = 0
        engine.on_events(self.wake)
        engine.on_progress(self._progressed)
        chats.on_moved(self._chat_moved)

    def wake(self) -> None:
        """New events are waiting."""
        self._wake.set()

    def _progressed(self, job_id: int, _progress: Progress) -> None:
        """A running job's progress changed: its status message is due an edit."""
        self._dirty.add(job_id)
        self._changed.set()

    def start(self) -> None:
        """Start the delivery loops."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(), name="colabot-delivery"),
                asyncio.create_task(self._refresh(), name="colabot-status-edits"),
            ]

    async def stop(self) -> None:
        """Stop the loops (undelivered events stay in the outbox)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                pending = await self.deliver_pending()
            except Exception:
                log.exception("delivery round failed; retrying")
                pending = 1
            self._round_done.set()
            if pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._retry_delay)
            else:
                await self._wake.wait()

    async def _refresh(self) -> None:
        """Edit the status messages of jobs whose view changed, as pacing allows."""
        clock = time.monotonic() + self.clock_s
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
        """Deliver what the outbox holds; return how many events are still waiting.

        The wait before the next attempt doubles while rounds deliver nothing and drops back
        as soon as something gets through.
        """
        blocked: set[int | None] = set()
        waiting = delivered = 0
        delay = self._retry_delay
        for event in self.store.pending_events(limit=200):
            if event.job_id in blocked:
                waiting += 1
                continue
            try:
                await self.deliver(event)
            except RetryAfter as exc:
                seconds = retry_seconds(exc)
                log.warning("Telegram asked to slow down for %ss", seconds)
                delay = max(delay, seconds + 0.5)
                blocked.add(event.job_id)
                waiting += 1
                continue
            except (BadRequest, Forbidden) as exc:
                if not (isinstance(exc, BadRequest) and is_not_modified(exc)):
                    # A permanent refusal (chat gone, bot blocked): retrying would block the job.
                    log.warning("event %s of job %s was refused: %s", event.id, event.job_id, exc)
                self.store.mark_delivered(event.id)
                continue
            except TelegramError as exc:
                log.warning("could not deliver event %s yet: %s", event.id, exc)
                blocked.add(event.job_id)
                waiting += 1
                continue
            self.store.mark_delivered(event.id)
            delivered += 1
        self.delivered_count += delivered
        if delivered or not waiting:
            self._retry_delay = RETRY_DELAY_S
        else:
            self._retry_delay = min(MAX_RETRY_DELAY_S, delay * 2)
        return waiting

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
        match event.payload:
            case Queued() | Resumed():
                await self._post_status(job, place)
            case Started():
                await self._update_status(job, place, force=True)
            case Notice() as notice:
                view = notice_view(job, notice)
                await self._send(place, view, reply_to=self._status_id(job.id))
            case Succeeded() as done:
                await self._update_status(job, place, force=True)
                await self._send(place, views.succeeded_view(job, done.summary, done.links))
            case Failed() as failed:
                await self._update_status(job, place, force=True)
                view = views.failed_view(job, failed.reason, failed.tail, failed.step)
                await self._send(place, view)
            case Cancelled():
                await self._update_status(job, place, force=True)
                await self._send(place, views.cancelled_view(job))
            case Interrupted():
                await self._update_status(job, place, force=True)
                await self._send(place, views.interrupted_view(job))
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
        for chat in self.chats.broadcast_chats():
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
        """Edit the status message of each job whose view may have changed, as pacing
        allows; return the seconds until a held-back edit may go (None: none is held)."""
        now = time.time()
        soonest: float | None = None
        for job_id in sorted(self._dirty):
            job = self.store.find_job(job_id)
            place = job_place(job) if job is not None and job.active else None
            status = self._load_status(job_id) if place is not None else None
            if job is None or place is None or status is None:
                self._dirty.discard(job_id)
                continue
            place = Place(self.chats.current(place.chat_id), place.thread_id)
            at = self.pacer.next_edit_at(place.chat_id, job_id, now)
            if at > now:
                soonest = at if soonest is None else min(soonest, at)
                continue
            self._dirty.discard(job_id)
            try:
                await self._at(place, functools.partial(self._update_status, job))
            except RetryAfter as exc:
                self._dirty.add(job_id)
                return retry_seconds(exc) + 0.5
            except TelegramError as exc:
                log.debug("status edit of job %s failed: %s", job_id, exc)
        for job_id in [j for j in self._status if self._finished(j)]:
            self._status.pop(job_id, None)
            self.pacer.forget(job_id)
        return None if soonest is None else max(0.0, soonest - time.time())

    def _finished(self, job_id: int) -> bool:
        job = self.store.find_job(job_id)
        return job is None or not job.active

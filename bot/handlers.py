"""Thin async handlers: check the user, parse, call the engine, reply with a view.

Every failure a user can cause becomes a clear message; anything unexpected is logged and
answered with one line, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, assert_never

from telegram import Message, Update, Video
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import limits, report_views, runtime_views, views
from bot.chats import ChatBook
from bot.commands import (
    USAGE,
    CancelDeclined,
    CancelRequest,
    CompareRequest,
    HelpRequest,
    JobsRequest,
    LogsRequest,
    PlotRequest,
    ReleaseRequest,
    Request,
    ResultsRequest,
    ResumeRequest,
    RuntimeRequest,
    StatusRequest,
    StopEarlyDeclined,
    StopEarlyRequest,
    SubmitRequest,
    UsageRequest,
    command_name,
    kind_usage,
    named_jobs,
    parse_button,
    parse_command,
)
from bot.config import Config
from bot.downloads import Attachment, Downloads, attachment_name, attachment_of
from bot.errors import NotYoursError, UsageError
from bot.executor import capacity_lines
from bot.gate import Gate
from bot.runtime import RuntimeClock, read_facts
from bot.sending import ChatPositions, send_view
from workers.engine import Engine
from workers.errors import ColabotError, SpecError, StoreError
from workers.jobs import Action, Job, JobSpec, Operation, require
from workers.sharing.owners import Owner, not_yours
from workers.sharing.quotas import week_start

log = logging.getLogger(__name__)

INTERNAL_ERROR = "Something went wrong while handling that; the details are in colabot's log."

ReleaseHandler = Callable[[bool, int], Awaitable[str]]


@dataclass
class Reply:
    """Where a handler answers: the chat, the message to reply to, and the forum topic."""

    chat_id: int
    message_id: int | None
    thread_id: int | None = None


def reply_to(message: Message) -> Reply:
    """Answer a message where it was written (in its forum topic, if it is in one)."""
    thread = message.message_thread_id if message.is_topic_message else None
    return Reply(message.chat_id, message.message_id, thread)


ATTACHMENTS = filters.Document.ALL | filters.VIDEO | filters.ANIMATION


class ChatHandlers:
    """The bot's handlers, bound to one engine and configuration."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        clock: RuntimeClock,
        *,
        chats: ChatBook,
        downloads: Downloads,
        on_submit: Callable[[int], None] | None = None,
        on_release: ReleaseHandler | None = None,
        positions: ChatPositions | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.registry = engine.registry
        self.clock = clock
        self.chats = chats
        self.downloads = downloads
        self.on_submit = on_submit
        self.on_release = on_release
        self.positions = positions or ChatPositions()
        self.gate = Gate(chats, self.positions)
        self._edits_answered: set[tuple[int, int]] = set()

    def register(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Attach the handlers: service updates first, then the access guard, then commands,
        buttons and the rest."""
        app.add_handler(TypeHandler(Update, self.gate.on_service_update), group=-2)
        app.add_handler(TypeHandler(Update, self.gate.guard), group=-1)
        app.add_handler(MessageHandler(filters.UpdateType.EDITED, self.on_edit))
        app.add_handler(MessageHandler(filters.COMMAND, self.on_command))
        app.add_handler(MessageHandler(ATTACHMENTS & filters.CaptionRegex(r"^/"), self.on_command))
        app.add_handler(CallbackQueryHandler(self.on_button))
        app.add_handler(MessageHandler(ATTACHMENTS, self.on_stray_attachment))
        app.add_handler(MessageHandler(filters.ALL, self.on_other))
        app.add_error_handler(self.on_error)

    # entry points -------------------------------------------------------------------------------

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A command, typed or as a file's caption (possibly replying to a file)."""
        message = update.effective_message
        if message is None:
            return
        text = message.text or message.caption or ""
        attachment = attachment_of(message) or attachment_of(message.reply_to_message)
        reply = reply_to(message)
        try:
            if command_name(text) in ("train", "infer") and not self.config.telegram.start_jobs:
                # Companion mode: whatever follows /train, it starts nothing here.
                await self._say(
                    update.get_bot(), reply, views.View(views.esc(views.COMPANION_MODE))
                )
                return
            request = parse_command(
                text,
                self.registry,
                has_document=attachment is not None and command_name(text) in ("train", "infer"),
            )
            await self.dispatch(request, reply, update, attachment)
        except Exception as exc:
            await self._report(exc, reply, context, text)

    async def on_edit(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An edited message: edits are not commands, so say once that nothing is re-run."""
        message = update.edited_message
        if message is None or not (message.text or message.caption or "").startswith("/"):
            return
        key = (message.chat_id, message.message_id)
        if key in self._edits_answered:
            return
        self._edits_answered.add(key)
        await message.reply_text(views.EDIT_NOT_RUN, do_quote=True)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An inline button press: answered at once (Telegram refuses late answers), then
        carried out; the outcome is reported by editing the message or in a new one."""
        query = update.callback_query
        if query is None or query.message is None:
            return
        reply = Reply(query.message.chat.id, None, _thread_of(query.message))
        try:
            request = parse_button(query.data or "")
        except UsageError as exc:
            await _answer(query, exc.problem)
            return
        await _answer(query, views.button_note(request))
        try:
            await self.dispatch(request, reply, update, None)
        except Exception as exc:
            await self._report(exc, reply, context, query.data or "")

    async def on_stray_attachment(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A file without a command: explain how to use it."""
        message = update.effective_message
        attachment = attachment_of(message)
        if message is None or attachment is None:
            return
        name = views.esc(attachment_name(attachment))
        await message.reply_html(
            f"Got {name}. To use it as a job input, reply to it with a command such as "
            f"<code>/train &lt;kind&gt;</code>, or send it again with the command as its caption.",
            do_quote=True,
        )
        await self._video_note(update.get_bot(), message.chat_id, attachment, reply_to(message))

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Plain text gets a hint; anything without text (stickers, polls...) gets nothing."""
        message = update.effective_message
        if message is not None and (message.text or message.caption):
            await message.reply_text("I only understand commands. /help lists them.", do_quote=True)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Last resort: log the error (redacted by the log filter), tell the user briefly."""
        log.error("error while handling an update", exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None:
            with contextlib.suppress(TelegramError):
                await context.bot.send_message(update.effective_chat.id, INTERNAL_ERROR)

    def problem_view(self, exc: Exception, text: str) -> views.View:
        """What the chat (or a notebook cell) is told when a command fails: a usage error
        with the right form, a refused value, or a clear error; never a traceback."""
        if isinstance(exc, UsageError):
            return views.usage_view(exc.problem, exc.usage)
        if isinstance(exc, SpecError):
            return views.usage_view(str(exc), self._usage_for(text))
        if isinstance(exc, StoreError):
            return views.error_view(exc.reason)
        if isinstance(exc, ColabotError):
            return views.error_view(str(exc))
        log.error("error while handling a command", exc_info=exc)
        return views.error_view(INTERNAL_ERROR)

    async def _report(
        self, exc: Exception, reply: Reply, context: ContextTypes.DEFAULT_TYPE, text: str
    ) -> None:
        await self._say(context.bot, reply, self.problem_view(exc, text))

    async def _say(self, bot: Any, reply: Reply, view: views.View) -> None:
        await send_view(
            bot, reply.chat_id, view, reply_to=reply.message_id, thread_id=reply.thread_id
        )

    def _usage_for(self, text: str) -> str:
        name = command_name(text)
        if name in ("train", "infer"):
            parts = text.split()
            if len(parts) > 1 and parts[1].lower() in self.registry.names():
                kind = self.registry.get(parts[1].lower())
                action = Action(name)
                if action in kind.actions:
                    return kind_usage(action, kind.name, kind.inputs(action), kind.params(action))
        return USAGE.get(name, USAGE["help"])

    # dispatch -----------------------------------------------------------------------------------

    async def dispatch(
        self, request: Request, reply: Reply, update: Update, attachment: Attachment | None
    ) -> None:
        """Carry out one request (one that names someone else's job is refused)."""
        bot = update.get_bot()
        self._check_owner(request, update)
        match request:
            case HelpRequest():
                view = views.help_view(
                    request.topic,
                    self.registry,
                    welcome=request.welcome,
                    companion=not self.config.telegram.start_jobs,
                )
                await self._say(bot, reply, view)
            case SubmitRequest():
                if not self.config.telegram.start_jobs:
                    await self._say(bot, reply, views.View(views.esc(views.COMPANION_MODE)))
                    return
                await self._submit(request, reply, update, attachment)
            case JobsRequest():
                mine = None if request.everyone else _user_id(update)
                jobs = self.engine.jobs(request.limit, owner_id=mine)
                places = {j.id: p for j in jobs if (p := self.engine.placement(j.id))}
                view = views.jobs_view(jobs, places=places, owners=request.everyone)
                await self._say(bot, reply, view)
            case UsageRequest():
                await self._usage(reply, update)
            case StatusRequest():
                job = self.engine.job(request.job_id)
                tail = await self.engine.read_log_tail(job.id, 8)
                view = views.status_view(
                    job,
                    self.engine.current_step(job.id),
                    tail,
                    where=self.engine.placement(job.id),
                    quality=self.engine.quality(job.id),
                )
                await self._say(bot, reply, view)
            case LogsRequest():
                await self._logs(request, reply, update)
            case CancelRequest():
                await self._cancel(request, reply, update)
            case CancelDeclined():
                await self._edit_button_message(update, f"Kept job #{request.job_id} running.")
            case StopEarlyRequest():
                await self._stop_early(request, reply, update)
            case StopEarlyDeclined():
                await self._edit_button_message(update, f"Job #{request.job_id} trains on.")
            case PlotRequest():
                await self._plot(request, reply, update)
            case ResultsRequest():
                job = self.engine.job(request.job_id)
                view = views.results_view(job, self.engine.quality(job.id))
                await self._say(bot, reply, view)
            case CompareRequest():
                await self._compare(request, reply, update)
            case ResumeRequest():
                self.engine.resume(request.job_id)
            case RuntimeRequest():
                facts = await asyncio.to_thread(read_facts, self.config.data_dir)
                cluster = await self._cluster_lines()
                await self._say(
                    bot, reply, runtime_views.runtime_view(facts, self.clock, cluster=cluster)
                )
            case ReleaseRequest():
                note = "nothing to release"
                if self.on_release is not None:
                    note = await self.on_release(request.confirmed, reply.chat_id)
                await self._edit_button_message(update, note)
            case _:
                assert_never(request)

    def _check_owner(self, request: Request, update: Update) -> None:
        """Refuse (NotYoursError) a request that names a job neither the caller nor an admin
        may touch; jobs that do not exist are left for the request to report."""
        user_id = _user_id(update)
        policy = self.chats.policy
        for job_id in named_jobs(request):
            job = self.engine.store.find_job(job_id)
            if job is not None and job.owner is not None and not policy.may_act(job.owner, user_id):
                raise NotYoursError(not_yours(job.id, job.owner))

    async def _usage(self, reply: Reply, update: Update) -> None:
        """/usage: the caller's GPU-hours this week and in total; an admin sees everyone's,
        with a bar chart."""
        now = time.time()
        week = self.engine.usage(since=week_start(now), now=now)
        total = self.engine.usage(now=now)
        user_id = _user_id(update)
        admin = user_id is not None and user_id in self.chats.policy.admins
        quota = self.config.quotas.gpu_hours_per_user_per_week
        view = report_views.gpu_usage_view(week, total, user_id, everyone=admin, quota=quota)
        await self._say(update.get_bot(), reply, view)
        if admin and any(u.gpu_hours or u.cpu_hours for u in week):
            picture = await self.engine.usage_chart(week, "GPU-hours this week")
            if picture is not None:
                with picture.open("rb") as handle:
                    await update.get_bot().send_photo(
                        reply.chat_id,
                        handle,
                        filename=picture.name,
                        caption="GPU-hours this week",
                        message_thread_id=reply.thread_id,
                    )

    async def _edit_button_message(self, update: Update, text: str) -> None:
        query = update.callback_query
        if query is None:
            return
        try:
            await query.edit_message_text(views.esc(text), parse_mode="HTML")
        except BadRequest as exc:
            log.debug("could not edit the button message: %s", exc)

    async def _submit(
        self, request: SubmitRequest, reply: Reply, update: Update, attachment: Attachment | None
    ) -> None:
        slot = request.document_slot if attachment is not None else None
        names = {slot: attachment_name(attachment)} if slot and attachment else {}
        # Refuse a bad request, the attached file included, before anything is downloaded.
        spec = self.check_submit(request, names)
        self.engine.check_quota(owner_of(update))
        uploads: dict[str, Path] = {}
        if slot and attachment is not None:
            self.downloads.check_size(attachment, names[slot])
            await self._video_note(update.get_bot(), reply.chat_id, attachment, reply)
            uploads[slot] = await self.downloads.fetch(attachment, names[slot])
        owner = owner_of(update)
        origin = {
            "chat_id": reply.chat_id,
            "message_id": reply.message_id,
            "user_id": owner.user_id if owner is not None else None,
        }
        if reply.thread_id is not None:
            origin["thread_id"] = reply.thread_id
        try:
            self.submit(spec, origin, uploads, owner=owner)
        finally:
            for path in uploads.values():
                if path.exists():
                    path.unlink()

    def check_submit(self, request: SubmitRequest, upload_names: dict[str, str]) -> JobSpec:
        """The job a /train or /infer request asks for, checked (SpecError, DiskSpaceError)."""
        spec = JobSpec(request.kind, request.action, dict(request.inputs), dict(request.params))
        self.engine.check(spec, upload_names)
        self.engine.disk.check_room()
        return spec

    def submit(
        self,
        spec: JobSpec,
        origin: dict[str, Any],
        uploads: dict[str, Path] | None = None,
        *,
        owner: Owner | None = None,
    ) -> Job:
        """Queue a checked job, as the chat or a notebook cell asked for it; its owner is
        ``owner``, else the user the origin names (a notebook's user)."""
        user_id = origin.get("user_id")
        if owner is None and isinstance(user_id, int):
            owner = Owner(user_id)
        job = self.engine.submit(spec, origin, owner=owner, uploads=uploads or {})
        if self.on_submit is not None:
            self.on_submit(job.id)
        return job

    async def _video_note(
        self, bot: Any, chat_id: int, attachment: Attachment, reply: Reply
    ) -> None:
        """Once per chat: a clip sent as a video was re-encoded; sending it as a file keeps it."""
        if not isinstance(attachment, Video):
            return
        if not self.chats.first_video(chat_id):
            return
        await send_view(
            bot, chat_id, views.View(views.esc(views.VIDEO_NOTE)), thread_id=reply.thread_id
        )

    async def _cluster_lines(self) -> list[str] | None:
        """The cluster's nodes and GPUs, for /runtime (None: jobs run on this machine)."""
        try:
            capacity = await self.engine.capacity()
        except ColabotError as exc:
            return [f"{self.engine.executor.name} cluster: {exc}"]
        return capacity_lines(capacity) if capacity is not None else None

    async def _logs(self, request: LogsRequest, reply: Reply, update: Update) -> None:
        lines = await self.engine.read_log_tail(request.job_id, request.lines)
        bot = update.get_bot()
        if not lines:
            view = views.View(f"Job #{request.job_id} has no log lines yet.")
            await self._say(bot, reply, view)
            return
        text = f"Last {len(lines)} lines of job #{request.job_id}:\n" + views.pre(lines)
        if views.fits(text):
            await self._say(bot, reply, views.View(text))
            return
        data = ("\n".join(lines) + "\n").encode()
        await bot.send_document(
            reply.chat_id,
            data,
            filename=f"job-{request.job_id}-log.txt",
            caption=limits.caption(f"Last {len(lines)} lines of job #{request.job_id}"),
            reply_to_message_id=reply.message_id,
            allow_sending_without_reply=True,
            message_thread_id=reply.thread_id,
        )

    async def _cancel(self, request: CancelRequest, reply: Reply, update: Update) -> None:
        job = self.engine.job(request.job_id)
        require(job, Operation.CANCEL)
        if not request.confirmed:
            await self._say(update.get_bot(), reply, views.cancel_question(job))
            return
        await self._edit_button_message(update, f"Cancelling job #{job.id}…")
        done = await self.engine.cancel(job.id)
        await self._edit_button_message(update, views.cancel_outcome(done))

    async def _stop_early(self, request: StopEarlyRequest, reply: Reply, update: Update) -> None:
        job = self.engine.job(request.job_id)
        if not request.confirmed:
            self.engine.stop_early(job.id, dry_run=True)  # refuses what cannot stop early
            await self._say(update.get_bot(), reply, views.stop_early_question(job))
            return
        step = self.engine.stop_early(job.id)
        outcome = views.stop_early_outcome(job, step.name, step.stops_when)
        if update.callback_query is None:
            await self._say(update.get_bot(), reply, views.View(views.esc(outcome)))
        else:
            await self._edit_button_message(update, outcome)

    async def _plot(self, request: PlotRequest, reply: Reply, update: Update) -> None:
        bot = update.get_bot()
        picture = await self.engine.plot(request.job_id)
        job = self.engine.job(request.job_id)
        await bot.send_photo(
            reply.chat_id,
            picture,
            caption=limits.caption(views.plot_caption(job)),
            reply_to_message_id=reply.message_id,
            allow_sending_without_reply=True,
            message_thread_id=reply.thread_id,
        )
        picture.unlink(missing_ok=True)

    async def _compare(self, request: CompareRequest, reply: Reply, update: Update) -> None:
        """Both trainings side by side; then, when it could be drawn, the picture of both
        loss curves (the text comes either way)."""
        bot = update.get_bot()
        both = await self.engine.compare(request.first, request.second)
        await self._say(bot, reply, report_views.compare_view(both))
        if both.picture is None:
            return
        try:
            await bot.send_photo(
                reply.chat_id,
                both.picture,
                caption=limits.caption(report_views.compare_caption(both)),
                reply_to_message_id=reply.message_id,
                allow_sending_without_reply=True,
                message_thread_id=reply.thread_id,
            )
        finally:
            both.picture.unlink(missing_ok=True)


async def _answer(query: Any, text: str | None) -> None:
    """Answer a button press; an answer Telegram refuses (too late, already answered) only
    means the spinner stopped on its own, so it is harmless."""
    try:
        await query.answer(limits.callback_answer(text) if text else None)
    except BadRequest as exc:
        log.info("the button answer came too late: %s", exc.message)


def _thread_of(message: Any) -> int | None:
    """The forum topic a message is in, if any."""
    if isinstance(message, Message) and message.is_topic_message:
        return message.message_thread_id
    return None


def owner_of(update: Update) -> Owner | None:
    """Who sent an update, as a job's owner: ``@username``, else their first name."""
    user = update.effective_user
    if user is None:
        return None
    name = f"@{user.username}" if user.username else (user.first_name or "")
    return Owner(user.id, name)


def _user_id(update: Update) -> int | None:
    return update.effective_user.id if update.effective_user is not None else None

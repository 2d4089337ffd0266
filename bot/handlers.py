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
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import limits, views
from bot.access import Verdict
from bot.chats import ChatBook
from bot.commands import (
    USAGE,
    CancelDeclined,
    CancelRequest,
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
    command_name,
    kind_usage,
    parse_button,
    parse_command,
)
from bot.config import Config
from bot.delivery import ChatPositions, send_view
from bot.downloads import Attachment, Downloads, attachment_name, attachment_of
from bot.errors import UsageError
from bot.executor import capacity_lines
from bot.runtime import RuntimeClock, read_facts
from workers.engine import Engine
from workers.errors import ColabotError, SpecError, StoreError
from workers.jobs import Action, JobSpec, Operation, require

log = logging.getLogger(__name__)

REFUSAL_COOLDOWN_S = 600.0
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
        self._refused: dict[int, float] = {}
        self._edits_answered: set[tuple[int, int]] = set()

    def register(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Attach the handlers: service updates first, then the access guard, then commands,
        buttons and the rest."""
        app.add_handler(TypeHandler(Update, self.on_service_update), group=-2)
        app.add_handler(TypeHandler(Update, self.guard), group=-1)
        app.add_handler(MessageHandler(filters.UpdateType.EDITED, self.on_edit))
        app.add_handler(MessageHandler(filters.COMMAND, self.on_command))
        app.add_handler(MessageHandler(ATTACHMENTS & filters.CaptionRegex(r"^/"), self.on_command))
        app.add_handler(CallbackQueryHandler(self.on_button))
        app.add_handler(MessageHandler(ATTACHMENTS, self.on_stray_attachment))
        app.add_handler(MessageHandler(filters.ALL, self.on_other))
        app.add_error_handler(self.on_error)

    # service updates ----------------------------------------------------------------------------

    async def on_service_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Telegram's own notes about chats, handled quietly and never answered: the bot was
        removed or blocked, a group became a supergroup, members came or went.

        They pass their own access guard before anything is written: only a note about a
        chat colabot serves changes what it keeps (whoever caused it: Telegram vouches for
        the note); a stranger's chat writes nothing. Fails closed: whatever goes wrong, the
        update stops here, unanswered.
        """
        if not _is_service_update(update):
            return
        try:
            chat_id, chat_type = _service_chat(update)
            if self.chats.serves(chat_id, chat_type):
                self._apply_service_update(update)
            else:
                # Only the id: nothing a stranger's chat carries is logged.
                log.info("ignored a service update about chat %s (not served)", chat_id)
        except Exception:
            log.exception("handling a service update failed; it stops here")
        raise ApplicationHandlerStop

    def _apply_service_update(self, update: Update) -> None:
        """What a note about a served chat changes: a chat that removed or blocked the bot
        is forgotten, a group that became a supergroup is followed."""
        member = update.my_chat_member
        if member is not None:
            if member.new_chat_member.status in ("kicked", "left"):
                self.chats.forget(member.chat.id, "the bot was removed from it or blocked")
            return
        message = update.message
        if message is None:
            return
        if message.migrate_to_chat_id:
            self.chats.migrate(message.chat.id, message.migrate_to_chat_id)
        elif message.migrate_from_chat_id:
            self.chats.migrate(message.migrate_from_chat_id, message.chat.id)

    # access -------------------------------------------------------------------------------------

    async def guard(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Let allowed users in allowed chats through; answer anyone else once, and stop.

        Fails closed: whatever goes wrong while deciding or refusing, the update stops here.
        """
        try:
            verdict = self._verdict(update)
        except Exception:
            log.exception("the access guard failed; refusing the update")
            verdict = Verdict.STRANGER
        if verdict is Verdict.ALLOW:
            self._note_allowed(update)
            return
        try:
            await self._refuse(update, verdict)
        except Exception as exc:
            log.info("could not send the refusal: %s", type(exc).__name__)
        finally:
            # Whatever happened above, nothing may pass a refused update.
            raise ApplicationHandlerStop

    def _verdict(self, update: Update) -> Verdict:
        user = update.effective_user
        chat = update.effective_chat
        return self.chats.verdict(
            user.id if user is not None else None,
            chat.id if chat is not None else None,
            chat.type if chat is not None else None,
        )

    def _note_allowed(self, update: Update) -> None:
        chat, message = update.effective_chat, update.effective_message
        if chat is None:
            return
        try:
            self.chats.met(chat.id)
        except ColabotError as exc:
            log.warning("could not remember chat %s: %s", chat.id, exc)
        if message is not None:
            self.positions.seen(chat.id, message.message_id)

    async def _refuse(self, update: Update, verdict: Verdict) -> None:
        user = update.effective_user
        user_id = user.id if user is not None else None
        # Only the id: nothing a stranger sends (text, names, files) is ever logged.
        log.warning("refused an update from user %s (%s)", user_id, verdict.value)
        chat = update.effective_chat
        text = views.REFUSAL
        if verdict is Verdict.CHAT_NOT_ALLOWED and chat is not None:
            text = views.chat_not_allowed(chat.id)
        if update.callback_query is not None:
            # Only the presser sees it, and an unanswered button keeps spinning: always answer.
            await update.callback_query.answer(limits.callback_answer(text))
            return
        now = time.monotonic()
        if user_id is None or now - self._refused.get(user_id, -1e9) <= REFUSAL_COOLDOWN_S:
            return
        self._refused[user_id] = now
        if update.effective_message is not None:
            await update.effective_message.reply_text(text)

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

    async def _report(
        self, exc: Exception, reply: Reply, context: ContextTypes.DEFAULT_TYPE, text: str
    ) -> None:
        if isinstance(exc, UsageError):
            view = views.usage_view(exc.problem, exc.usage)
        elif isinstance(exc, SpecError):
            view = views.usage_view(str(exc), self._usage_for(text))
        elif isinstance(exc, StoreError):
            view = views.error_view(exc.reason)
        elif isinstance(exc, ColabotError):
            view = views.error_view(str(exc))
        else:
            log.error("error while handling a command", exc_info=exc)
            view = views.error_view(INTERNAL_ERROR)
        await self._say(context.bot, reply, view)

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
        """Carry out one request."""
        bot = update.get_bot()
        match request:
            case HelpRequest():
                view = views.help_view(request.topic, self.registry, welcome=request.welcome)
                await self._say(bot, reply, view)
            case SubmitRequest():
                await self._submit(request, reply, update, attachment)
            case JobsRequest():
                jobs = self.engine.jobs(request.limit)
                places = {j.id: p for j in jobs if (p := self.engine.placement(j.id))}
                await self._say(bot, reply, views.jobs_view(jobs, places=places))
            case StatusRequest():
                job = self.engine.job(request.job_id)
                tail = await asyncio.to_thread(self.engine.log_tail, job.id, 8)
                view = views.status_view(
                    job, self.engine.current_step(job.id), tail, where=self.engine.placement(job.id)
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
                await self._say(bot, reply, views.results_view(self.engine.job(request.job_id)))
            case ResumeRequest():
                self.engine.resume(request.job_id)
            case RuntimeRequest():
                facts = await asyncio.to_thread(read_facts, self.config.data_dir)
                cluster = await self._cluster_lines()
                await self._say(bot, reply, views.runtime_view(facts, self.clock, cluster=cluster))
            case ReleaseRequest():
                note = "nothing to release"
                if self.on_release is not None:
                    note = await self.on_release(request.confirmed, reply.chat_id)
                await self._edit_button_message(update, note)
            case _:
                assert_never(request)

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
        spec = JobSpec(request.kind, request.action, dict(request.inputs), dict(request.params))
        slot = request.document_slot if attachment is not None else None
        names = {slot: attachment_name(attachment)} if slot and attachment else {}
        # Refuse a bad request, the attached file included, before anything is downloaded.
        self.engine.check(spec, names)
        self.engine.disk.check_room()
        uploads: dict[str, Path] = {}
        if slot and attachment is not None:
            self.downloads.check_size(attachment, names[slot])
            await self._video_note(update.get_bot(), reply.chat_id, attachment, reply)
            uploads[slot] = await self.downloads.fetch(attachment, names[slot])
        origin = {
            "chat_id": reply.chat_id,
            "message_id": reply.message_id,
            "user_id": update.effective_user.id if update.effective_user else None,
        }
        if reply.thread_id is not None:
            origin["thread_id"] = reply.thread_id
        try:
            job = self.engine.submit(spec, origin, uploads=uploads)
        finally:
            for path in uploads.values():
                if path.exists():
                    path.unlink()
        if self.on_submit is not None:
            self.on_submit(job.id)

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
        lines = await asyncio.to_thread(self.engine.log_tail, request.job_id, request.lines)
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
            picture.read_bytes(),
            caption=limits.caption(views.plot_caption(job)),
            reply_to_message_id=reply.message_id,
            allow_sending_without_reply=True,
            message_thread_id=reply.thread_id,
        )
        picture.unlink(missing_ok=True)


async def _answer(query: Any, text: str | None) -> None:
    """Answer a button press; an answer Telegram refuses (too late, already answered) only
    means the spinner stopped on its own, so it is harmless."""
    try:
        await query.answer(limits.callback_answer(text) if text else None)
    except BadRequest as exc:
        log.info("the button answer came too late: %s", exc.message)


def _is_service_update(update: Update) -> bool:
    """Whether an update is one of Telegram's notes about a chat rather than something a
    person sent: membership changes (the bot's own and others'), join requests, and service
    messages (members came or left, a migration, a new title...)."""
    if update.my_chat_member or update.chat_member or update.chat_join_request:
        return True
    return update.message is not None and bool(filters.StatusUpdate.ALL.check_update(update))


def _service_chat(update: Update) -> tuple[int | None, str | None]:
    """The chat a service update is about, and its type. The note that arrives in the new
    supergroup after a migration is about the group it came from."""
    message = update.message
    if message is not None and message.migrate_from_chat_id:
        return message.migrate_from_chat_id, "group"
    chat = update.effective_chat
    return (chat.id, chat.type) if chat is not None else (None, None)


def _thread_of(message: Any) -> int | None:
    """The forum topic a message is in, if any."""
    if isinstance(message, Message) and message.is_topic_message:
        return message.message_thread_id
    return None

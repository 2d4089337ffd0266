"""A Telegram Bot API server on loopback, and the Python API that plays the people in it.

Point python-telegram-bot at :attr:`BotApiEmulator.base_url` and it runs unchanged: long
polling, sending, editing, files and callback queries behave as on Telegram, including the
errors. Tests and the terminal chat drive the human side in-process and watch what the bot
does through events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from aiohttp import web

from emulator import users
from emulator.errors import CONFLICT_DESCRIPTION, ApiError
from emulator.events import ApiCall, BotEvent, EventKind, EventListener, Journal
from emulator.flood import (
    DEFAULT_FLOOD_LIMITS,
    FloodGate,
    FloodLimits,
    FloodRefusal,
    RateReport,
    SentMessage,
    rate_report,
)
from emulator.media import guess_mime_type
from emulator.methods import BotApiMethods
from emulator.mode import ServerMode
from emulator.params import Params, read_params
from emulator.state import DEFAULT_USER_ID, EmulatorState, JSONDict, MessageRecord
from emulator.storage import FileStore

if TYPE_CHECKING:
    from types import TracebackType

_LOGGER = logging.getLogger(__name__)
_MAX_FORM_BYTES = 2 * 1024 * 1024
_MAX_POLL_SECONDS = 50.0
_SHUTDOWN_SECONDS = 5.0

DEFAULT_BOT_USERNAME = "colabot_offline_bot"
DEFAULT_BOT_NAME = "colabot"
DEFAULT_BOT_ID = 1000001
# The random part of a token, as long as Telegram's (35 characters of base64url).
_TOKEN_SECRET_BYTES = 26


@dataclass(eq=False)
class _Poll:
    """A ``getUpdates`` request waiting for updates."""

    request: web.Request
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: Literal["waiting", "conflict", "abandoned"] = "waiting"
    parked: bool = False

    def client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()


class DropConnection(Exception):
    """Raised by :meth:`BotApiEmulator.before_method` to close the connection unanswered."""


@dataclass(frozen=True)
class OddReply:
    """An answer :meth:`BotApiEmulator.before_method` gives instead of the method's own."""

    result: Any


class BotApiEmulator:
    """A loopback Telegram Bot API for one bot, with the people's side as Python calls.

    Every start makes a new random token, ``<bot_id>:<secret>`` (:attr:`token`), and only
    that token is accepted: any other gets Telegram's 401 Unauthorized. Loopback is no trust
    boundary (every local user reaches it), so without the token nobody else on the machine
    can read the chat or speak as the bot. Files the bot sends and files people upload are
    kept under ``files_dir``.

    ``limits`` are Telegram's flood limits, enforced with its 429 answer (see
    :mod:`emulator.flood`); ``None`` turns them off. Either way every message the bot sends
    or edits is recorded (:attr:`sent_messages`) for :meth:`rate_report`.
    """

    def __init__(
        self,
        files_dir: Path,
        *,
        bot_username: str = DEFAULT_BOT_USERNAME,
        bot_first_name: str = DEFAULT_BOT_NAME,
        clock: Callable[[], float] = time.time,
        mode: ServerMode | None = None,
        bot_id: int = DEFAULT_BOT_ID,
        limits: FloodLimits | None = DEFAULT_FLOOD_LIMITS,
    ) -> None:
        self.files_dir = Path(files_dir)
        self.bot_id = bot_id
        self.mode = mode or ServerMode()
        self.state = EmulatorState(clock=clock)
        self.journal = Journal(clock=clock)
        self.store = FileStore(self.files_dir)
        self.flood = FloodGate(limits)
        self.api = BotApiMethods(
            self.state,
            self.store,
            self.journal,
            bot_username=bot_username,
            bot_first_name=bot_first_name,
            mode=self.mode,
            flood=self.flood,
        )
        self._polls: dict[str, _Poll] = {}
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._token: str | None = None
        self._stopping = False
        self._stopped = asyncio.Event()

    # Lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start serving on ``host:port`` (port 0 picks a free one), with a new token."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        self._token = f"{self.bot_id}:{secrets.token_urlsafe(_TOKEN_SECRET_BYTES)}"
        await self.store.prepare()
        app = web.Application(client_max_size=_MAX_FORM_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        if self.mode.serves_files:
            app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_SECONDS,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        if not runner.addresses:
            await runner.cleanup()
            raise RuntimeError("the emulator could not open a listening socket")
        bound_host, bound_port = runner.addresses[0][:2]
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._url = f"http://{shown_host}:{bound_port}"
        self._runner = runner
        self._stopping = False
        self._stopped = asyncio.Event()
        _LOGGER.info("Bot API emulator listening on %s", self._url)

    async def stop(self) -> None:
        """Answer waiting long polls, stop serving and remove unkept uploads."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping = True
        self._stopped.set()
        for poll in self._polls.values():
            poll.wake.set()
        await runner.cleanup()
        await self.store.clear_staging()
        self._url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:8081``."""
        if self._url is None:
            raise RuntimeError("the emulator is not running; await start() first")
        return self._url

    @property
    def token(self) -> str:
        """The bot token this start accepts (the only one), made afresh at each start."""
        if self._token is None or self._runner is None:
            raise RuntimeError("the emulator is not running; await start() first")
        return self._token

    def _accepts(self, token: str) -> bool:
        """Whether ``token`` is this start's token (compared in constant time)."""
        expected = self._token
        return expected is not None and secrets.compare_digest(token.encode(), expected.encode())

    @property
    def base_url(self) -> str:
        """What ``ApplicationBuilder().base_url()`` takes."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """What ``ApplicationBuilder().base_file_url()`` takes."""
        return f"{self.url}/file/bot"

    # The people's side

    def add_chat(
        self,
        chat_id: int,
        *,
        first_name: str | None = None,
        username: str | None = None,
        title: str | None = None,
    ) -> JSONDict:
        """Create a chat before anyone writes in it (a positive id is a private chat).

        Telegram only lets a bot write to people who wrote to it first; this stands for that.
        """
        user = self.state.user(chat_id, first_name, username) if chat_id > 0 else None
        return dict(self.state.add_chat(chat_id, user=user, title=title).chat)

    async def send_text(
        self,
        text: str,
        *,
        user_id: int = DEFAULT_USER_ID,
        chat_id: int | None = None,
        first_name: str | None = None,
        username: str | None = None,
        reply_to_message_id: int | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """Write ``text`` as a person and return the Message the bot will receive.

        ``chat_id`` defaults to the person's private chat; commands get their entities;
        ``thread_id`` writes in a forum topic.
        """
        user, chat = users.user_chat(self.state, user_id, chat_id, first_name, username)
        record = users.write_text(
            self.state,
            user,
            chat,
            text,
            reply_to_message_id=reply_to_message_id,
            thread_id=thread_id,
        )
        self._wake_polls()
        return record.snapshot()

    async def edit_text(
        self,
        message_id: int,
        text: str,
        *,
        user_id: int = DEFAULT_USER_ID,
        chat_id: int | None = None,
    ) -> JSONDict:
        """Edit a message the person wrote, as Telegram's clients allow; the bot gets an
        ``edited_message`` update."""
        user = self.state.user(user_id)
        record = users.edit_text(
            self.state, user, user_id if chat_id is None else chat_id, message_id, text
        )
        self._wake_polls()
        return record.snapshot()

    async def send_document(
        self,
        source: Path | str | bytes,
        filename: str | None = None,
        caption: str | None = None,
        *,
        user_id: int = DEFAULT_USER_ID,
        chat_id: int | None = None,
        first_name: str | None = None,
        mime_type: str | None = None,
        reported_size: int | None = None,
        reply_to_message_id: int | None = None,
    ) -> JSONDict:
        """Upload a file (a path or bytes) as a person; return the Message the bot receives.

        ``reported_size`` is the size Telegram reports, so a test can stand in a small file
        for a large one.
        """
        user, chat = users.user_chat(self.state, user_id, chat_id, first_name)
        if isinstance(source, bytes):
            name = filename or "document"
        else:
            path = await asyncio.to_thread(Path(source).expanduser)
            if not await asyncio.to_thread(path.is_file):
                raise ValueError(f"no such file: {path}")
            name = filename or path.name
        local = await self.store.copy_in(
            source if isinstance(source, bytes) else path, "user", name
        )
        size = await asyncio.to_thread(lambda: local.stat().st_size)
        if size == 0:
            raise ValueError("Telegram does not accept empty files")
        stored = self.state.add_file(
            "document",
            local,
            file_size=reported_size if reported_size is not None else size,
            file_name=name,
            mime_type=mime_type or guess_mime_type(name),
        )
        record = users.post_document(
            self.state, user, chat, stored, caption, reply_to_message_id=reply_to_message_id
        )
        self._wake_polls()
        return record.snapshot()

    async def send_video(
        self,
        source: Path | bytes,
        filename: str | None = None,
        caption: str | None = None,
        *,
        user_id: int = DEFAULT_USER_ID,
        chat_id: int | None = None,
        animation: bool = False,
        mime_type: str = "video/mp4",
        reply_to_message_id: int | None = None,
    ) -> JSONDict:
        """Send a clip as a phone client does: as a ``video`` (re-encoded by Telegram, so no
        file name unless the client kept one) or as an ``animation`` (a GIF-like clip, which
        messages carry as ``animation`` and, for older clients, as ``document``)."""
        user, chat = users.user_chat(self.state, user_id, chat_id, None)
        local = await self.store.copy_in(source, "user", filename or "clip.mp4")
        size = await asyncio.to_thread(lambda: local.stat().st_size)
        stored = self.state.add_file(
            "animation" if animation else "video",
            local,
            file_size=size,
            file_name=filename,
            mime_type=mime_type,
            width=128,
            height=128,
            duration=1,
        )
        record = users.post_media(
            self.state, user, chat, stored, caption, reply_to_message_id=reply_to_message_id
        )
        self._wake_polls()
        return record.snapshot()

    def create_topic(self, chat_id: int, name: str, *, user_id: int = DEFAULT_USER_ID) -> int:
        """Open a forum topic in a supergroup; return its ``message_thread_id``."""
        user = self.state.user(user_id)
        return users.create_topic(self.state, user, chat_id, name)

    def set_profile_photo(self, user_id: int, image: bytes) -> None:
        """Give a person a profile photo (``getUserProfilePhotos`` lists it)."""
        path = self.files_dir / "profiles" / f"{user_id}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)
        stored = self.state.add_file("photo", path, file_size=len(image), width=64, height=64)
        self.state.profile_photos.setdefault(user_id, []).insert(0, stored)

    async def upgrade_to_supergroup(
        self, chat_id: int, *, user_id: int = DEFAULT_USER_ID, announce: bool = True
    ) -> int:
        """Turn a group into a supergroup with a new id, as Telegram does when a group grows
        or gets admin features. The bot then gets 400 with ``migrate_to_chat_id`` for the old
        id. ``announce`` sends the two service messages that tell it (a bot that was not
        polling at the time never sees them)."""
        user = self.state.user(user_id)
        new_id = users.upgrade_group(self.state, user, chat_id, announce=announce)
        self._wake_polls()
        return new_id

    async def remove_bot(self, chat_id: int, *, user_id: int = DEFAULT_USER_ID) -> None:
        """Kick the bot from a group, or block it in a private chat; the bot gets a
        ``my_chat_member`` update and 403 for everything it sends there afterwards."""
        user = self.state.user(user_id)
        users.remove_bot(self.state, user, chat_id, self.api.bot_user(self.bot_id))
        self._wake_polls()

    async def add_members(
        self, chat_id: int, member_ids: list[int], *, user_id: int = DEFAULT_USER_ID
    ) -> JSONDict:
        """Add people to a group: a ``new_chat_members`` service message."""
        user = self.state.user(user_id)
        record = users.add_members(self.state, user, chat_id, member_ids)
        self._wake_polls()
        return record.snapshot()

    async def press_button(
        self,
        chat_id: int,
        message_id: int,
        callback_data: str,
        *,
        user_id: int = DEFAULT_USER_ID,
        first_name: str | None = None,
    ) -> str:
        """Press the inline button carrying ``callback_data``; return the callback query id."""
        user = self.state.user(user_id, first_name)
        query_id = users.press(self.state, user, chat_id, message_id, callback_data)
        self._wake_polls()
        return query_id

    # Watching the bot

    @property
    def events(self) -> list[BotEvent]:
        """Every change the bot made to a chat, oldest first."""
        return list(self.journal.events)

    @property
    def calls(self) -> list[ApiCall]:
        """Every Bot API request, oldest first, with its status once answered."""
        return list(self.journal.calls)

    def subscribe(self) -> asyncio.Queue[BotEvent]:
        """Return a queue that receives every later event."""
        return self.journal.subscribe()

    def unsubscribe(self, queue: asyncio.Queue[BotEvent]) -> None:
        """Stop feeding a queue from :meth:`subscribe`."""
        self.journal.unsubscribe(queue)

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` as each event happens, before the bot gets its answer."""
        self.journal.add_listener(listener)

    def remove_listener(self, listener: EventListener) -> None:
        """Stop calling a listener."""
        self.journal.remove_listener(listener)

    async def wait_for(
        self,
        predicate: Callable[[BotEvent], bool] | None = None,
        *,
        kind: EventKind | None = None,
        chat_id: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - a per-call limit reads better in tests
    ) -> BotEvent:
        """Return the earliest matching event not returned before, waiting up to ``timeout``.

        Events that happened before the call count, so trigger first and wait after.
        """
        return await self.journal.wait_for(predicate, kind=kind, chat_id=chat_id, timeout=timeout)

    async def wait_for_call(
        self,
        method: str,
        *,
        predicate: Callable[[ApiCall], bool] | None = None,
        after: int = 0,
        finished: bool = False,
        timeout: float = 10.0,  # noqa: ASYNC109 - a per-call limit reads better in tests
    ) -> ApiCall:
        """Return the first call of ``method`` at index ``after`` of :attr:`calls` or later."""
        return await self.journal.wait_for_call(
            method, predicate=predicate, after=after, finished=finished, timeout=timeout
        )

    @property
    def limits(self) -> FloodLimits | None:
        """The flood limits enforced (``None``: none)."""
        return self.flood.limits

    @property
    def flood_refusals(self) -> list[FloodRefusal]:
        """Every call answered 429 for going over a flood limit, oldest first (failures
        injected by a test are not among them)."""
        return list(self.flood.refusals)

    @property
    def sent_messages(self) -> list[SentMessage]:
        """Every message the bot sent or edited (an album: one per item), oldest first."""
        return list(self.flood.sent)

    def rate_report(self) -> RateReport:
        """The figures of the run so far: per chat the most messages in any minute and in
        any second, over all chats the most in any second, and the refusals."""
        return rate_report(self.flood.sent, self.flood.refusals)

    @property
    def polling(self) -> bool:
        """Whether a ``getUpdates`` long poll is waiting for updates right now."""
        return any(poll.parked and poll.outcome == "waiting" for poll in self._polls.values())

    async def wait_until_polling(
        self,
        timeout: float = 10.0,  # noqa: ASYNC109 - a per-call limit reads better in tests
    ) -> None:
        """Wait until a bot is parked in a ``getUpdates`` long poll."""
        await self.journal.wait_until(
            lambda: True if self.polling else None,
            timeout=timeout,
            explain=lambda: f"no getUpdates long poll began within {timeout:g} s",
        )

    def messages(self, chat_id: int) -> list[JSONDict]:
        """The chat's messages as they stand now (edits applied, deletions gone)."""
        return [record.snapshot() for record in self.state.messages(chat_id)]

    def message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """One message as it stands now, or ``None``."""
        record = self.state.get_message(chat_id, message_id)
        return record.snapshot() if record is not None else None

    def last_text(self, chat_id: int, *, from_bot: bool = True) -> str | None:
        """The text (or caption) of :meth:`last_message`."""
        records = self._records(chat_id, from_bot)
        return records[-1].text if records else None

    def local_path(self, chat_id: int, message_id: int) -> Path | None:
        """Where the file of a document or photo message lies on disk."""
        record = self.state.get_message(chat_id, message_id)
        return record.local_path if record is not None else None

    def _records(self, chat_id: int, from_bot: bool) -> list[MessageRecord]:
        records = self.state.messages(chat_id)
        return [r for r in records if r.from_bot] if from_bot else records

    # A seam for fault injection

    async def before_method(self, request: web.Request, method: str) -> OddReply | None:
        """Called before each method is answered (``method`` in lower case). Nothing happens
        here; a subclass may raise ApiError (an error answer), raise DropConnection (after
        closing ``request.transport``), or return an OddReply."""
        return None

    # HTTP

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        method = request.match_info["method"]
        if not self._accepts(token):
            _LOGGER.debug("refused a %s call with a wrong token", method)
            return _error_response(ApiError(401, "Unauthorized"))
        key = method.lower()
        call = self.journal.start_call(method, {})
        if key != "getupdates" and key not in self.api.handlers:
            return self._finish(call, ApiError(404, "Not Found: method not found"))
        params: Params | None = None
        try:
            params = await read_params(request, self.store.staging, self.api.upload_limit(key))
            call.params = params.summary()
            odd = await self.before_method(request, key)
            if odd is not None:
                self.journal.finish_call(call, 200, "an odd reply, on purpose")
                return web.json_response({"ok": True, "result": odd.result})
            self.api.token = token
            bot = self.api.bot_user(self.bot_id)
            if key == "getupdates":
                result: Any = await self._get_updates(request, token, params)
            else:
                result = await self.api.handlers[key](bot, params)
        except ApiError as exc:
            return self._finish(call, exc)
        except DropConnection:
            call.description = "connection dropped on purpose"
            _LOGGER.debug("dropped a %s call on purpose", method)
            # The transport is already closed: nothing of this response reaches the client.
            return web.Response(status=500)
        except Exception:
            _LOGGER.exception("the emulator failed to answer %s", method)
            return self._finish(call, ApiError(500, "Internal Server Error"))
        finally:
            if params is not None:
                await params.discard()
        self.journal.finish_call(call, 200)
        return web.json_response({"ok": True, "result": result})

    def _finish(self, call: ApiCall, error: ApiError) -> web.Response:
        self.journal.finish_call(call, error.status, error.description)
        _LOGGER.debug("%s answered %s: %s", call.method, error.status, error.description)
        return _error_response(error)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if not self._accepts(request.match_info["token"]):
            return _error_response(ApiError(401, "Unauthorized"))
        stored = self.state.files_by_path.get(request.match_info["file_path"])
        if stored is None or not await asyncio.to_thread(stored.local_path.is_file):
            return _error_response(ApiError(404, "Not Found"))
        return web.FileResponse(stored.local_path)

    async def _handle_unknown(self, request: web.Request) -> web.StreamResponse:
        return _error_response(ApiError(404, "Not Found"))

    # Long polling

    async def _get_updates(self, request: web.Request, token: str, params: Params) -> Any:
        offset = params.integer("offset")
        limit = params.integer("limit") or 100
        timeout = min(max(params.number("timeout") or 0.0, 0.0), _MAX_POLL_SECONDS)
        allowed = params.json("allowed_updates", "allowed updates")
        self._supersede(token)
        poll = _Poll(request)
        self._polls[token] = poll
        try:
            if offset is not None:
                self.state.confirm_updates(offset)
            if isinstance(allowed, list):
                self.state.set_allowed_updates([str(kind) for kind in allowed])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                if poll.outcome == "conflict":
                    raise ApiError(409, CONFLICT_DESCRIPTION)
                updates = self.state.pending_updates(limit)
                remaining = deadline - loop.time()
                if updates or remaining <= 0 or self._stopping or poll.outcome == "abandoned":
                    return updates
                poll.wake.clear()
                if not poll.parked:
                    poll.parked = True
                    self.journal.signal()
                # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel (the client
                # left) that comes just as the poll is woken.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await poll.wake.wait()
        finally:
            if self._polls.get(token) is poll:
                del self._polls[token]

    def _supersede(self, token: str) -> None:
        """End the previous long poll of ``token``: a conflict, unless its client left."""
        previous = self._polls.pop(token, None)
        if previous is None:
            return
        previous.outcome = "abandoned" if previous.client_gone() else "conflict"
        previous.wake.set()

    def _wake_polls(self) -> None:
        for poll in self._polls.values():
            poll.wake.set()


def _error_response(error: ApiError) -> web.Response:
    return web.json_response(error.to_json(), status=error.status)

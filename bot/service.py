"""colabot's parts wired together, started and stopped as one: the engine, the results
backend, the Telegram application, outbox delivery and the heartbeat.

Used by ``colabot run`` (online or with the offline terminal chat) and by notebook mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import sys
import time
from typing import Any, TextIO

from telegram.error import Conflict, InvalidToken, TelegramError
from telegram.ext import Application

from bot import runtime_views
from bot.app import build_application
from bot.chats import ChatBook
from bot.cli import register_secrets, say
from bot.config import Config, access_policy, quota_exempt
from bot.delivery import Delivery
from bot.downloads import Downloads, ServerFiles
from bot.errors import ConfigError
from bot.executor import open_executor
from bot.handlers import ChatHandlers
from bot.heartbeat import Heartbeat
from bot.limits import DOCUMENT_UPLOAD_BYTES, MB
from bot.results import drive_client_factory, open_results
from bot.runtime import RuntimeClock, runtime_clock, visible_gpu_count
from bot.sending import ChatPositions, view_notice
from workers.engine import Engine, EngineSettings
from workers.errors import ColabotError, StoreError
from workers.executors.base import Executor
from workers.inputs.fetch import Fetcher
from workers.kinds.registry import default_registry
from workers.results.durability import Keeper
from workers.store.database import Store
from workers.store.datadir import DataDirLock, make_private

log = logging.getLogger(__name__)

STOP_POLLING_S = 10.0
"""How long stopping waits for Telegram to confirm the updates colabot has read."""

# Three 409 Conflicts within a minute: another process polls with the same token.
CONFLICT_LIMIT = 3
CONFLICT_WINDOW_S = 60.0
OFFLINE_BANNER = (
    "colabot: no telegram.token is set, so this is the offline chat. Type /help; "
    "Ctrl-D quits. Set COLABOT_TELEGRAM_TOKEN to use Telegram."
)


class Colabot:
    """One running colabot: call :meth:`start` inside an event loop, then :meth:`stop`."""

    def __init__(self, config: Config, *, clock: RuntimeClock | None = None) -> None:
        self.config = config
        self.clock = clock or runtime_clock(config)
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.executor: Executor | None = None
        self.app: Application[Any, Any, Any, Any, Any, Any] | None = None
        self.delivery: Delivery | None = None
        self.handlers: ChatHandlers | None = None
        self.keeper: Keeper | None = None
        self.heartbeat: Heartbeat | None = None
        self.positions = ChatPositions()
        self.policy = access_policy(config)
        self.chats: ChatBook | None = None
        self.lock = DataDirLock(config.data_dir)
        self.running = False
        self.fatal: ColabotError | None = None
        self.failed = asyncio.Event()
        self._conflicts: list[float] = []
        register_secrets(config)

    async def start(self) -> None:
        """Start everything; return once the bot is polling.

        Raise ConfigError (one line, naming the setting) when the token, the results backend
        or another setting cannot be used, DataDirLockedError when another colabot holds the
        data folder, StoreError when its database cannot be used. Whatever failed, what was
        started is stopped again.
        """
        self.lock.acquire()
        try:
            await self._start()
        except BaseException:
            await self._abandon_start()
            raise

    async def _abandon_start(self) -> None:
        """Undo a start that failed half-way."""
        with contextlib.suppress(Exception):
            if self.app is not None:
                if self.app.updater is not None and self.app.updater.running:
                    await stop_polling(self.app)
                if self.app.running:
                    await self.app.stop()
                await self.app.shutdown()
        with contextlib.suppress(Exception):
            if self.delivery is not None:
                await self.delivery.stop()
        with contextlib.suppress(Exception):
            if self.engine is not None:
                await self.engine.stop()
            elif self.executor is not None:
                await self.executor.close()
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()
        self.lock.release()

    async def _start(self) -> None:
        config = self.config
        opened = await asyncio.to_thread(open_results, config)
        cluster = await open_executor(config)
        self.executor = cluster.executor
        self.store = Store(config.data_dir)
        settings = EngineSettings(
            data_dir=config.data_dir,
            max_parallel_jobs=config.worker.max_parallel_jobs,
            input_roots=tuple(r.expanduser() for r in config.worker.input_roots),
            default_timeout_s=(config.worker.job_timeout_minutes * 60) or None,
            send_files_under_bytes=min(
                int(config.results.send_files_under_mb * MB), DOCUMENT_UPLOAD_BYTES
            ),
            min_free_disk_mb=config.worker.min_free_disk_mb,
            wandb=config.wandb,
            quotas=config.quotas,
            quota_exempt=quota_exempt(config),
            local_gpus=await asyncio.to_thread(visible_gpu_count),
        )
        self.engine = Engine(
            settings,
            self.store,
            default_registry(),
            results=opened.backend,
            executor=cluster.executor,
        )
        self.engine.inputs.use_remote(
            Fetcher(
                config.inputs,
                settings.cache_dir,
                drive_client_factory(config, opened.backend),
            )
        )
        self.keeper = Keeper(self.engine, opened.backend)
        tg = config.telegram
        self.app = build_application(tg.token, tg.api_url, foreground=self.engine.foreground)
        self.positions = ChatPositions()
        self.chats = ChatBook(self.store, self.policy)
        self.delivery = Delivery(
            self.app.bot, self.engine, chats=self.chats, positions=self.positions
        )
        self.heartbeat = Heartbeat(config, self.engine, self.keeper, self.clock, self.delivery)
        server = ServerFiles(
            self_hosted=bool(tg.api_url),
            local_mode=tg.local_mode,
            local_dir=tg.local_files_dir.expanduser() if tg.local_files_dir else None,
        )
        self.handlers = ChatHandlers(
            config,
            self.engine,
            self.clock,
            chats=self.chats,
            downloads=Downloads(config.data_dir / "staging", tg.max_download_mb, server, tg.token),
            on_submit=self.heartbeat.check_new_job,
            on_release=self.heartbeat.release,
            positions=self.positions,
        )
        self.handlers.register(self.app)
        try:
            await self.app.initialize()
        except InvalidToken:
            raise ConfigError(
                "telegram.token", "Telegram rejected the bot token: check it with @BotFather"
            ) from None
        await self.engine.start()
        snapshot, lost = await self.keeper.carry_over()
        await self.app.start()
        assert self.app.updater is not None and self.app.job_queue is not None
        await self.app.updater.start_polling(
            drop_pending_updates=False, error_callback=self._polling_error
        )
        self.heartbeat.schedule(self.app.job_queue)
        self.delivery.start()
        self.running = True
        # What is loaded by now lives as long as colabot: the collector's full passes need
        # not walk it again (one over all of it takes about 50 ms, measured at start).
        gc.freeze()
        for note in (self.clock.note, opened.note):
            if note:
                self.engine.notice(None, note)
        if snapshot is not None:
            for record in lost:
                view = runtime_views.lost_job_view(
                    record.job, snapshot.saved_at, record.checkpoint_note
                )
                self.engine.post(record.job.id, view_notice(view))
        log.info(
            "colabot is running (bot api: %s; results: %s; jobs run on: %s)",
            tg.api_url or "Telegram",
            opened.description,
            cluster.description,
        )

    def _polling_error(self, exc: TelegramError) -> None:
        """An error while polling Telegram: one line in the log; a lasting 409 Conflict
        (another process polls with this token) stops colabot."""
        if not isinstance(exc, Conflict):
            log.warning("polling Telegram failed (%s); trying again", exc)
            return
        now = time.monotonic()
        self._conflicts = [t for t in self._conflicts if now - t < CONFLICT_WINDOW_S] + [now]
        if len(self._conflicts) < CONFLICT_LIMIT or self.fatal is not None:
            return
        self.fatal = ConfigError(
            "telegram.token",
            "another process is polling Telegram with this bot token (409 Conflict): stop the "
            "other colabot, or give this one its own bot",
        )
        self.failed.set()

    async def stop(self) -> None:
        """Stop polling, interrupt running jobs (they stay resumable), flush and close."""
        if not self.running:
            return
        self.running = False
        app = self.app
        assert app is not None and self.engine is not None and self.delivery is not None
        if app.updater is not None and app.updater.running:
            await stop_polling(app)
        await self.engine.stop()
        if self.keeper is not None:
            await self.keeper.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.delivery.deliver_pending(), timeout=10)
        await self.delivery.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        if self.store is not None:
            self.store.close()
        self.lock.release()
        log.info("colabot stopped")


async def stop_polling(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Stop fetching updates. python-telegram-bot then tells Telegram which it has read,
    and waits up to its read timeout (40 s) for the answer: a Telegram that does not answer
    gets :data:`STOP_POLLING_S`, so the jobs' interruption and the results' last upload
    (the runtime may be going away) wait no longer. Unconfirmed updates come again at the
    next start, as they would after the read timeout."""
    assert app.updater is not None
    try:
        async with asyncio.timeout(STOP_POLLING_S):
            await app.updater.stop()
    except TimeoutError:
        log.warning(
            "Telegram did not confirm the last updates read within %gs; stopping anyway",
            STOP_POLLING_S,
        )


def offline_config(config: Config, api_url: str, token: str, user_id: int) -> Config:
    """The configuration the bot runs with against the offline chat's emulator (``token``:
    the one it made at its start)."""
    telegram = dataclasses.replace(
        config.telegram, token=token, api_url=api_url, allowed_users=(user_id,)
    )
    return config.replace(telegram=telegram)


async def run_offline(
    config: Config, *, input: TextIO | None = None, output: TextIO | None = None
) -> int:
    """Run colabot against a loopback Bot API with a chat in this terminal."""
    from emulator.server import BotApiEmulator
    from emulator.state import DEFAULT_USER_ID
    from emulator.terminal import TerminalChat

    folder = config.data_dir / "offline-chat"
    emulator = BotApiEmulator(folder)
    try:
        make_private(config.data_dir)  # the emulator's files are the first in it
        await emulator.start()
    except OSError as exc:
        raise StoreError(
            str(folder), f"cannot use the data folder: {exc.strerror or exc}"
        ) from None
    colabot = Colabot(offline_config(config, emulator.url, emulator.token, DEFAULT_USER_ID))
    stop = asyncio.Event()
    _on_signals(stop)
    try:
        await colabot.start()
        print(OFFLINE_BANNER, file=sys.stderr)
        chat = TerminalChat(emulator, DEFAULT_USER_ID, input=input, output=output)
        chatting = asyncio.create_task(chat.run())
        stopping = asyncio.create_task(_until(stop, colabot.failed))
        await asyncio.wait({chatting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (chatting, stopping):
            task.cancel()
    finally:
        await colabot.stop()
        await emulator.stop()
    return 0


async def run_online(config: Config) -> int:
    """Run colabot against Telegram (or the configured Bot API server) until a signal."""
    colabot = Colabot(config)
    stop = asyncio.Event()
    _on_signals(stop)
    await colabot.start()
    try:
        await _until(stop, colabot.failed)
    finally:
        await colabot.stop()
    if colabot.fatal is not None:
        raise colabot.fatal
    return 0


async def _until(*events: asyncio.Event) -> None:
    """Wait until any of the events is set."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def run_until_interrupted(config: Config) -> int:
    """``colabot run``: offline chat without a token, Telegram with one."""
    try:
        if config.offline:
            return asyncio.run(run_offline(config))
        return asyncio.run(run_online(config))
    except ConfigError as exc:
        say(f"config error: {exc}", error=True)
    except ColabotError as exc:
        say(f"colabot could not start: {exc}", error=True)
    return 1

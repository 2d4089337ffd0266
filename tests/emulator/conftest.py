"""Fixtures: a running emulator, a bare Bot on it, and real polling Applications."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot
from telegram.ext import Application, ApplicationBuilder, BaseHandler, BaseRateLimiter

from emulator import BotApiEmulator
from tests.emulator.faults import FaultyBotApi
from tests.emulator.helpers import BOT_ID, BOT_USERNAME, POLL_TIMEOUT, USER_ID, AppStarter


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    """Where the emulator keeps files."""
    return tmp_path / "telegram-files"


@pytest.fixture
async def emulator(files_dir: Path) -> AsyncIterator[FaultyBotApi]:
    """A running emulator on 127.0.0.1 with a random port."""
    emu = FaultyBotApi(files_dir, bot_username=BOT_USERNAME, bot_id=BOT_ID)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
async def bot(emulator: BotApiEmulator) -> AsyncIterator[Bot]:
    """An initialized Bot talking to the emulator, with the user's chat already open."""
    emulator.add_chat(USER_ID, first_name="Ada")
    telegram_bot = Bot(
        emulator.token, base_url=emulator.base_url, base_file_url=emulator.base_file_url
    )
    async with telegram_bot:
        yield telegram_bot


@pytest.fixture
async def start_app(emulator: BotApiEmulator) -> AsyncIterator[AppStarter]:
    """Start Applications the notebook way; all are stopped in reverse order afterwards.

    ``await start_app(*handlers, rate_limiter=None, error_callback=None, token=None)``;
    ``token`` defaults to the emulator's own.
    """
    started: list[Application[Any, Any, Any, Any, Any, Any]] = []

    async def start(
        *handlers: BaseHandler[Any, Any, Any],
        rate_limiter: BaseRateLimiter[Any] | None = None,
        error_callback: Callable[[Exception], None] | None = None,
        token: str | None = None,
    ) -> Application[Any, Any, Any, Any, Any, Any]:
        builder = (
            ApplicationBuilder()
            .token(token or emulator.token)
            .base_url(emulator.base_url)
            .base_file_url(emulator.base_file_url)
        )
        if rate_limiter is not None:
            builder = builder.rate_limiter(rate_limiter)
        app = builder.build()
        for handler in handlers:
            app.add_handler(handler)
        await app.initialize()
        started.append(app)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(
            poll_interval=0, timeout=POLL_TIMEOUT, error_callback=error_callback
        )
        return app

    yield start
    for app in reversed(started):
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()

"""Fixtures for end-to-end chat tests: the emulator, a running colabot, and a person."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import (
    Config,
    HeartbeatConfig,
    ResultsConfig,
    TelegramConfig,
    WorkerConfig,
)
from bot.runtime import RuntimeClock
from bot.service import Colabot
from emulator import DEFAULT_USER_ID, BotApiEmulator, BotEvent
from emulator.mode import ServerMode
from tests.emulator.faults import FaultyBotApi

BOT_ID = 123456
"""The emulated bot: its token is ``emu.token``, ``f"{BOT_ID}:<random>"``, new at each start."""
USER = DEFAULT_USER_ID
STRANGER = 4242


@pytest.fixture
def emu_mode(request: pytest.FixtureRequest) -> ServerMode:
    """How the emulated server behaves: Telegram's own, unless a test asks for another with
    ``@pytest.mark.parametrize("emu_mode", [ServerMode(...)], indirect=True)``."""
    mode = getattr(request, "param", ServerMode())
    assert isinstance(mode, ServerMode)
    return mode


@pytest.fixture
async def emu(tmp_path: Path, emu_mode: ServerMode) -> AsyncIterator[FaultyBotApi]:
    """A running Bot API emulator (that can be told to fail)."""
    emulator = FaultyBotApi(tmp_path / "telegram", mode=emu_mode, bot_id=BOT_ID)
    await emulator.start()
    emulator.add_chat(USER, first_name="Ada")
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
def inputs_dir(tmp_path: Path) -> Path:
    """The allowed input folder."""
    root = tmp_path / "inputs"
    root.mkdir()
    return root


@pytest.fixture
def chat_config(tmp_path: Path, emu: BotApiEmulator, inputs_dir: Path) -> Config:
    """A configuration pointing colabot at the emulator, for one allowed user."""
    return Config(
        telegram=TelegramConfig(token=emu.token, api_url=emu.url, allowed_users=(USER,)),
        worker=WorkerConfig(
            data_dir=tmp_path / "data", max_parallel_jobs=2, input_roots=(inputs_dir,)
        ),
        results=ResultsConfig(dir=tmp_path / "results"),
        heartbeat=HeartbeatConfig(interval_minutes=0),
    )


@pytest.fixture
async def start_colabot(emu: BotApiEmulator) -> AsyncIterator[Callable[..., Any]]:
    """``await start_colabot(config)`` -> a running Colabot, stopped after the test (and
    before the emulator)."""
    started: list[Colabot] = []

    async def start(config: Config, clock: RuntimeClock | None = None, **changes: Any) -> Colabot:
        colabot = Colabot(
            dataclasses.replace(config, **changes) if changes else config, clock=clock
        )
        await colabot.start()
        started.append(colabot)
        return colabot

    yield start
    for colabot in reversed(started):
        await colabot.stop()


@pytest.fixture
async def colabot(start_colabot: Callable[..., Any], chat_config: Config) -> Colabot:
    """A running colabot talking to the emulator."""
    return await start_colabot(chat_config)  # type: ignore[no-any-return]


def secret_of(emu: BotApiEmulator) -> str:
    """The secret part of the emulator's token: what must never show anywhere."""
    return emu.token.partition(":")[2]


class Person:
    """The allowed user's side of the chat."""

    def __init__(self, emu: BotApiEmulator, user_id: int = USER) -> None:
        self.emu = emu
        self.user_id = user_id

    async def say(self, text: str, timeout: float = 15.0) -> BotEvent:
        """Send a text and return the bot's reply to it."""
        sent = await self.emu.send_text(text, user_id=self.user_id)
        return await self.reply_to(sent["message_id"], timeout=timeout)

    async def reply_to(self, message_id: int, timeout: float = 15.0) -> BotEvent:
        """The bot's first new message replying to ``message_id``."""
        return await self.emu.wait_for(
            lambda e: (
                e.kind in ("message", "document", "photo")
                and ((e.message or {}).get("reply_to_message") or {}).get("message_id")
                == message_id
            ),
            chat_id=self.user_id,
            timeout=timeout,
        )

    async def next_message(self, contains: str = "", timeout: float = 15.0) -> BotEvent:
        """The next new message (text, document or photo) from the bot, optionally containing
        ``contains``."""
        return await self.emu.wait_for(
            lambda e: (
                e.kind in ("message", "document", "photo")
                and contains in (e.text or "") + str((e.message or {}).get("caption", ""))
            ),
            chat_id=self.user_id,
            timeout=timeout,
        )

    async def next_edit(self, contains: str, timeout: float = 30.0) -> BotEvent:
        """The next edit whose text contains ``contains``."""
        return await self.emu.wait_for(
            lambda e: e.kind == "edit" and contains in (e.text or ""),
            chat_id=self.user_id,
            timeout=timeout,
        )

    async def press(self, event: BotEvent, label: str) -> str:
        """Press the button labelled ``label`` on the message of ``event``."""
        message = self.emu.message(self.user_id, event.message_id or 0) or {}
        rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
        for row in rows:
            for button in row:
                if button["text"] == label:
                    return await self.emu.press_button(
                        self.user_id,
                        event.message_id or 0,
                        button["callback_data"],
                        user_id=self.user_id,
                    )
        raise AssertionError(f"no button {label!r} on message {event.describe()}")


@pytest.fixture
def person(emu: BotApiEmulator) -> Person:
    """The allowed user."""
    return Person(emu)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Wait, up to ``timeout`` seconds, until a cheap condition holds (checked every 20 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def bot_process_env(home: Path, emu: BotApiEmulator, **settings: str) -> dict[str, str]:
    """The environment of a colabot process of its own on the emulator, for the allowed
    user: ours without COLABOT_ settings, plus ``settings`` (``ray_token`` ->
    ``COLABOT_RAY_TOKEN``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLABOT_")}
    env.update(
        HOME=str(home),
        COLABOT_TELEGRAM_TOKEN=emu.token,
        COLABOT_TELEGRAM_API_URL=emu.url,
        COLABOT_TELEGRAM_ALLOWED_USERS=str(USER),
        COLABOT_WORKER_DATA_DIR=str(home / "data"),
        COLABOT_RESULTS_DIR=str(home / "results"),
        COLABOT_HEARTBEAT_INTERVAL_MINUTES="0",
    )
    env.update({f"COLABOT_{key.upper()}": value for key, value in settings.items()})
    return env


async def start_bot_process(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    """``colabot run`` in a process of its own (to be killed, or stopped with SIGINT)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def run_bot_until_it_exits(env: dict[str, str], cwd: Path) -> tuple[int, list[str]]:
    """``colabot run`` that is expected to stop at start: its exit code and stderr lines."""
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return out.returncode, [line for line in out.stderr.splitlines() if line.strip()]

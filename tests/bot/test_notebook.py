"""Notebook mode: start inside a running loop, restart without a getUpdates conflict."""

from __future__ import annotations

import pytest

from bot import notebook
from bot.config import Config
from bot.errors import ConfigError
from emulator import BotApiEmulator
from tests.bot.conftest import Person


async def test_start_twice_stops_the_first_instance_first(
    chat_config: Config, emu: BotApiEmulator, person: Person
) -> None:
    first = await notebook.start(chat_config)
    try:
        second = await notebook.start(chat_config)
        assert not first.running and second.running
        assert notebook.current() is second
        reply = await person.say("/help")
        assert "Commands" in (reply.text or "")
        await person.say("/jobs")
    finally:
        await notebook.stop()
    assert notebook.current() is None
    conflicts = [c for c in emu.calls if c.status == 409]
    assert conflicts == []
    answers = [e for e in emu.events if "Commands" in (e.text or "")]
    assert len(answers) == 1


async def test_stop_without_start_is_harmless() -> None:
    await notebook.stop()


async def test_notebook_mode_needs_a_token(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match=r"telegram\.token: notebook mode needs a bot token"):
        await notebook.start(Config())

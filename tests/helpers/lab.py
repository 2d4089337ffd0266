"""A lab's chat: Alice (the emulator's default user), Bob and an admin, Ada; the chat
configuration that allows all three and makes Ada the admin."""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.config import Config
from emulator import BotApiEmulator
from tests.helpers.chat import USER, Person

ALICE = USER
BOB = 5151
ADMIN = 6161


def lab_config(config: Config, **telegram: Any) -> Config:
    """``config`` for Alice, Bob and Ada (the admin), with ``telegram`` changes."""
    tg = dataclasses.replace(
        config.telegram, allowed_users=(ALICE, BOB, ADMIN), admins=(ADMIN,), **telegram
    )
    return dataclasses.replace(config, telegram=tg)


def lab_people(emu: BotApiEmulator) -> tuple[Person, Person, Person]:
    """Alice (@alice), Bob (no username) and Ada (@ada), each with a private chat."""
    emu.add_chat(ALICE, first_name="Alice", username="alice")
    emu.add_chat(BOB, first_name="Bob")
    emu.add_chat(ADMIN, first_name="Ada", username="ada")
    return Person(emu, ALICE), Person(emu, BOB), Person(emu, ADMIN)

"""A self-hosted telegram-bot-api server: it serves no file downloads; with --local it hands
out absolute paths on its disk and has no 20 MB limit. colabot copies files from that disk."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config, TelegramConfig, parse_config
from bot.errors import ConfigError
from emulator import BotApiEmulator
from emulator.mode import ServerMode
from tests.helpers.chat import USER, Person

LOCAL = ServerMode(self_hosted=True, local=True)
NOT_LOCAL = ServerMode(self_hosted=True)


def self_hosted(config: Config, **changes: object) -> Config:
    telegram = dataclasses.replace(config.telegram, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(config, telegram=telegram)


@pytest.mark.parametrize("emu_mode", [LOCAL], indirect=True)
async def test_a_local_server_hands_over_large_files_from_its_disk(
    start_colabot: Any, chat_config: Config, person: Person, emu: BotApiEmulator, tmp_path: Path
) -> None:
    # The server keeps files in /var/lib/telegram-bot-api/<token>/<type>/ on its machine;
    # colabot's machine mounts that folder elsewhere (a shared volume).
    shared = tmp_path / "shared-volume"
    (shared / emu.token).mkdir(parents=True)
    (shared / emu.token / "documents").symlink_to(emu.files_dir / "user")
    config = self_hosted(chat_config, local_mode=True, local_files_dir=shared, max_download_mb=100)
    colabot = await start_colabot(config)
    data = tmp_path / "big.bin"
    data.write_bytes(os.urandom(21 * 1024 * 1024))
    await emu.send_document(data, caption="/train selftest steps=1 delay=0", user_id=USER)
    await person.next_message("#1 selftest train finished", timeout=60)
    result = json.loads((colabot.engine.workdir(1) / "outputs" / "result.json").read_text())
    assert result["input"]["bytes"] == 21 * 1024 * 1024


@pytest.mark.parametrize("emu_mode", [LOCAL], indirect=True)
async def test_a_local_server_whose_disk_colabot_cannot_see_is_explained(
    start_colabot: Any, chat_config: Config, person: Person, emu: BotApiEmulator
) -> None:
    await start_colabot(self_hosted(chat_config, local_mode=True))
    await emu.send_document(b"abc", "notes.txt", caption="/train selftest", user_id=USER)
    reply = await person.next_message("notes.txt")
    assert "keeps this file on its own disk, and colabot cannot read it there" in (reply.text or "")
    assert "telegram.local_files_dir" in (reply.text or "")


@pytest.mark.parametrize("emu_mode", [NOT_LOCAL], indirect=True)
async def test_a_server_without_local_mode_explains_why_it_cannot_hand_over_files(
    start_colabot: Any, chat_config: Config, person: Person, emu: BotApiEmulator
) -> None:
    await start_colabot(chat_config)
    await emu.send_document(b"abc", "notes.txt", caption="/train selftest", user_id=USER)
    reply = await person.next_message("notes.txt")
    text = reply.text or ""
    assert "this Bot API server does not serve file downloads" in text
    assert "telegram.local_mode = true" in text and "telegram.local_files_dir" in text


def test_downloads_over_20_mb_need_a_local_server() -> None:
    with pytest.raises(
        ConfigError, match="needs a self-hosted Bot API server started with --local"
    ):
        parse_config({"telegram": {"max_download_mb": 100}}, {})
    with pytest.raises(ConfigError, match=r"telegram\.local_mode: needs telegram\.api_url"):
        parse_config({"telegram": {"local_mode": True}}, {})
    fine = parse_config(
        {
            "telegram": {
                "local_mode": True,
                "api_url": "http://127.0.0.1:8081",
                "max_download_mb": 2000,
            }
        },
        {},
    )
    assert fine.telegram == TelegramConfig(
        api_url="http://127.0.0.1:8081", local_mode=True, max_download_mb=2000
    )

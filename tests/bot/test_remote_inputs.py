"""Job inputs from URLs and Drive links, through the chat."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.service import Colabot
from emulator import BotApiEmulator
from tests.helpers.chat import Person
from tests.loopback.drive_server import DriveServer
from tests.loopback.http_server import HttpServer
from workers.drive.settings import DriveSettings
from workers.inputs.netpolicy import FetchPolicy


def loopback_inputs(config: Config) -> Config:
    """Allow the loopback test server as a source (off by default)."""
    return dataclasses.replace(
        config, inputs=FetchPolicy(allow_private_addresses=True, timeout_seconds=5)
    )


async def test_train_from_a_url_shows_download_progress_and_uses_the_file(
    http_server: HttpServer,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    emu: BotApiEmulator,
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    url = http_server.add("corpus.bin", data, drop_times=1)
    colabot: Colabot = await start_colabot(loopback_inputs(chat_config))
    await person.say(f"/train selftest {url} steps=1 delay=0")
    await person.next_message("finished", timeout=60)
    assert colabot.engine is not None
    result = json.loads((colabot.engine.workdir(1) / "outputs" / "result.json").read_text())
    assert result["input"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert any(r is not None for r in http_server.ranges_seen("/files/corpus.bin"))
    await colabot.stop()


async def test_internal_urls_are_refused_before_anything_runs(
    colabot: Colabot, person: Person
) -> None:
    for url, why in (
        ("http://127.0.0.1:8080/admin", "an address on this machine"),
        ("http://169.254.169.254/latest/meta-data", "a cloud metadata service"),
        ("http://localhost/x", "localhost is a local address"),
    ):
        reply = await person.say(f"/train selftest {url}")
        assert why in (reply.text or "")
    assert colabot.engine is not None and colabot.engine.jobs() == []


async def test_a_missing_url_fails_the_job_with_the_reason(
    http_server: HttpServer,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
) -> None:
    colabot: Colabot = await start_colabot(loopback_inputs(chat_config))
    await person.say(f"/train selftest {http_server.url('/status/404')}")
    failed = await person.next_message("failed")
    assert "not found (HTTP 404)" in (failed.text or "")
    await colabot.stop()


async def test_train_from_a_drive_link(
    drive_server: DriveServer,
    service_account_file: Path,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
) -> None:
    file_id = drive_server.add_file("notes.txt", b"from drive\n" * 10)
    config = dataclasses.replace(
        chat_config,
        drive=DriveSettings(service_account_file=service_account_file, api_url=drive_server.url),
    )
    colabot: Colabot = await start_colabot(config)
    await person.say(
        f"/train selftest https://drive.google.com/file/d/{file_id}/view?usp=sharing"
        " steps=1 delay=0"
    )
    await person.next_message("finished", timeout=60)
    assert colabot.engine is not None
    result = json.loads((colabot.engine.workdir(1) / "outputs" / "result.json").read_text())
    assert result["input"]["name"] == "notes.txt" and result["input"]["bytes"] == 110
    await colabot.stop()


async def test_drive_links_without_credentials_are_refused(
    colabot: Colabot, person: Person
) -> None:
    reply = await person.say(
        "/train selftest https://drive.google.com/drive/folders/1AbCdEfGhIjKlMnOpQrStUvWxYz"
    )
    assert "Drive links need Drive credentials" in (reply.text or "")

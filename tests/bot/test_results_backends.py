"""Results through the chat with the Drive backend, and start-up when it cannot be used."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config, ResultsConfig
from bot.errors import ConfigError
from bot.service import Colabot
from tests.helpers.chat import Person
from tests.loopback.drive_server import DriveServer
from workers.drive.settings import DriveSettings

# Tests stop colabot themselves while the Drive server still runs: its final snapshot upload
# would otherwise retry against a server already torn down.


def drive_config(
    config: Config, server: DriveServer, key: Path, folder: str, **results: Any
) -> Config:
    return dataclasses.replace(
        config,
        results=dataclasses.replace(config.results, backend="drive", **results),
        drive=DriveSettings(
            service_account_file=key,
            folder_id=folder,
            share_anyone=True,
            api_url=server.url,
            chunk_mb=1,
        ),
    )


async def test_job_results_go_to_drive_and_the_links_to_the_chat(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    drive_server: DriveServer,
    service_account_file: Path,
    shared_drive: str,
) -> None:
    folder = drive_server.add_folder("results", shared_drive)
    colabot = await start_colabot(
        drive_config(chat_config, drive_server, service_account_file, folder)
    )
    await person.say("/train selftest steps=2 delay=0")
    done = await person.next_message("finished", timeout=30)
    text = done.text or ""
    assert "model" in text and "result.json" in text
    links = [e["url"] for e in (done.message or {}).get("entities", []) if e.get("url")]
    assert links and all(link.startswith(drive_server.url) or "http" in link for link in links)
    job_folder = next(f for f in drive_server.children(folder) if f.title == "job-1")
    titles = sorted(f.title for f in drive_server.children(job_folder.id))
    assert titles == ["job.log", "model.zip", "result.json"]
    results = await person.say("/results 1")
    assert "result.json" in (results.text or "")
    await colabot.stop()


async def test_links_drive_may_not_share_stay_private_and_the_chat_says_why(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    drive_server: DriveServer,
    service_account_file: Path,
) -> None:
    from tests.loopback.drive_server import DEFAULT_ACCOUNT

    drive = drive_server.add_shared_drive(
        "Lab", {DEFAULT_ACCOUNT: "fileOrganizer"}, domain_users_only=True
    )
    folder = drive_server.add_folder("results", drive)
    colabot = await start_colabot(
        drive_config(chat_config, drive_server, service_account_file, folder)
    )
    await person.say("/train selftest steps=1 delay=0")
    done = await person.next_message("finished", timeout=30)
    text = done.text or ""
    assert "result.json" in text
    assert (
        "job-1 folder: the links above open only for people who may read it, since the "
        "organisation that owns this shared drive does not allow sharing outside it"
    ) in text
    job_folder = next(f for f in drive_server.children(folder) if f.title == "job-1")
    kept = drive_server.children(job_folder.id)
    assert sorted(f.title for f in kept) == ["job.log", "model.zip", "result.json"]
    assert all(drive_server.permissions(f.id) == [] for f in kept)
    await colabot.stop()


async def test_refused_drive_credentials_stop_start_up_naming_the_setting(
    chat_config: Config,
    drive_server: DriveServer,
    tmp_path: Path,
) -> None:
    from tests.loopback.drive_server import write_service_account_key

    untrusted = tmp_path / "stranger.json"
    write_service_account_key(untrusted, "who@example.iam")
    config = drive_config(chat_config, drive_server, untrusted, drive_server.add_folder("r"))
    with pytest.raises(ConfigError) as caught:
        await Colabot(config).start()
    assert caught.value.key == "drive.service_account_file"
    assert "Google Drive cannot be used for results" in caught.value.problem


async def test_a_configured_fallback_uses_the_local_folder_and_says_so(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    drive_server: DriveServer,
    tmp_path: Path,
) -> None:
    from tests.loopback.drive_server import write_service_account_key

    untrusted = tmp_path / "stranger.json"
    write_service_account_key(untrusted, "who@example.iam")
    config = drive_config(chat_config, drive_server, untrusted, "missing-folder", fallback="local")
    await start_colabot(config)
    note = await person.next_message("could not be used for results")
    assert str(chat_config.results.dir) in (note.text or "")
    await person.say("/train selftest steps=1 delay=0")
    await person.next_message("finished")
    assert (chat_config.results.dir / "job-1" / "result.json").exists()


async def test_a_quota_error_keeps_the_job_and_says_why(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    drive_server: DriveServer,
    service_account_file: Path,
    shared_drive: str,
) -> None:
    folder = drive_server.add_folder("results", shared_drive)
    colabot = await start_colabot(
        drive_config(chat_config, drive_server, service_account_file, folder)
    )
    drive_server.quota_bytes = 10
    await person.say("/train selftest steps=1 delay=0")
    note = await person.next_message("could not be saved to Google Drive", timeout=30)
    assert "quota" in (note.text or "").lower()
    assert "still on this machine" in (note.text or "")
    done = await person.next_message("finished")
    assert "result.json" in (done.text or "")
    drive_server.quota_bytes = None
    await colabot.stop()


def test_an_unwritable_local_results_folder_is_a_config_error(
    tmp_path: Path, chat_config: Config
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    config = dataclasses.replace(chat_config, results=ResultsConfig(dir=blocker / "results"))
    from bot.results import open_results

    with pytest.raises(ConfigError) as caught:
        open_results(config)
    assert caught.value.key == "results.dir" and "not writable" in caught.value.problem

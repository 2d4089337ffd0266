"""Private by default: another user on the machine reads nothing colabot keeps.

Whatever the umask colabot is started with (022 and 002, the usual ones, both let others
read), the data folder is 0700 and every file in it 0600: the database and its WAL files, the
lock, job logs, requests, outputs, staged uploads, the download cache, plots and stop files.
A stop file's name that someone placed a link at is neither followed nor counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.service import Colabot
from tests.helpers.chat import USER, Person
from tests.helpers.cli import colabot_env, run_cli
from tests.helpers.engine import WaitForState, local_run
from tests.helpers.spacy_data import SpacyCorpus, copy_spacy_corpus
from tests.loopback.http_server import HttpServer
from workers.engine import Engine
from workers.inputs.netpolicy import FetchPolicy
from workers.jobs import Action, JobSpec, JobState
from workers.store.datadir import instance_id

TRAIN_TIMEOUT = 120.0


@pytest.fixture(params=[0o022, 0o002], ids=["umask-022", "umask-002"])
def loose_umask(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    """colabot started with a umask that lets others read (and, 002, its group write); the
    test's own umask comes back afterwards. Requested first, before any data folder exists."""
    assert not (tmp_path / "data").exists(), "request loose_umask before the data folder"
    before = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(before)


def not_private(root: Path) -> list[str]:
    """Everything under ``root`` (itself included) that another user could read: folders
    not 0700, files not 0600, and anything else (links, pipes)."""
    found = []
    for path in [root, *sorted(root.rglob("*"))]:
        mode = path.lstat().st_mode
        wanted = 0o700 if stat.S_ISDIR(mode) else 0o600 if stat.S_ISREG(mode) else None
        if wanted is None or stat.S_IMODE(mode) != wanted:
            found.append(f"{path.relative_to(root.parent)} {oct(stat.S_IMODE(mode))}")
    return found


def names_under(root: Path) -> set[str]:
    """The paths under ``root``, relative to it."""
    return {str(path.relative_to(root)) for path in root.rglob("*")}


# ----------------------------------------------------------------------------- the engine


@pytest.fixture
def corpus(spacy_corpus: SpacyCorpus, input_root: Path) -> SpacyCorpus:
    """The spaCy test corpus inside the engine's allowed input folder."""
    return copy_spacy_corpus(spacy_corpus, input_root / "corpus")


async def test_the_engine_keeps_everything_private_and_follows_no_planted_stop_file(
    loose_umask: int,
    engine: Engine,
    wait_for_state: WaitForState,
    corpus: SpacyCorpus,
    tmp_path: Path,
) -> None:
    inputs = {"config": str(corpus.config), "train": str(corpus.train), "dev": str(corpus.dev)}
    params: dict[str, str | int | float | bool] = {
        "max_steps": "100000",
        "eval_frequency": "10",
        "gpu": "cpu",
    }
    job = engine.submit(JobSpec("spacy", Action.TRAIN, inputs, params))
    steps: list[int] = []
    evaluated = asyncio.Event()

    def seen(job_id: int, step: int | None) -> None:
        if job_id == job.id and step:
            steps.append(step)
            evaluated.set()

    engine.on_progress(lambda job_id, progress: seen(job_id, progress.step))
    await asyncio.wait_for(evaluated.wait(), TRAIN_TIMEOUT)

    # Someone places a link at the stop file's name, to a file of colabot's user.
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    stop_file = engine.workdir(job.id) / "work" / "stop-early"
    stop_file.symlink_to(victim)
    planted_at = steps[-1]
    later = asyncio.Event()
    engine.on_progress(lambda _id, p: later.set() if (p.step or 0) >= planted_at + 20 else None)
    await asyncio.wait_for(later.wait(), TRAIN_TIMEOUT)
    assert engine.job(job.id).state is JobState.RUNNING, "a planted link counted as a stop"

    picture = await engine.plot(job.id)
    assert stat.S_IMODE(picture.stat().st_mode) == 0o600
    engine.stop_early(job.id)
    done = await wait_for_state(engine, job.id, timeout=TRAIN_TIMEOUT)
    assert done.state is JobState.SUCCEEDED, done.error
    assert "stopped early at step " in done.summary
    assert victim.read_text() == "keep me\n" and not victim.is_symlink()
    assert stop_file.is_file() and not stop_file.is_symlink()
    instance_id(engine.settings.data_dir)

    data = engine.settings.data_dir
    names = names_under(data)
    expected = {
        "colabot.sqlite3",
        "colabot.sqlite3-wal",
        "colabot.sqlite3-shm",
        "instance-id",
        "jobs/1/job.log",
        "jobs/1/work/request.json",
        "jobs/1/work/stop-early",
        "jobs/1/outputs/training/model-best/meta.json",
        "jobs/1/packed/model-best.zip",
        f"jobs/1/plots/{picture.name}",
    }
    assert expected <= names, "\n".join(sorted(names))
    assert not_private(data) == []


async def test_a_link_planted_at_the_selftest_stop_file_is_no_stop(
    loose_umask: int, engine: Engine, wait_for_state: WaitForState, tmp_path: Path
) -> None:
    job = engine.submit(JobSpec("selftest", Action.TRAIN, {}, {"steps": "100000", "delay": "0.02"}))
    started = asyncio.Event()
    engine.on_progress(lambda _id, p: started.set() if (p.step or 0) >= 2 else None)
    await asyncio.wait_for(started.wait(), 30)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    stop_file = engine.workdir(job.id) / "work" / "stop-early"
    stop_file.symlink_to(victim)
    planted_at = engine.job(job.id).progress.step or 0
    later = asyncio.Event()
    engine.on_progress(lambda _id, p: later.set() if (p.step or 0) >= planted_at + 20 else None)
    await asyncio.wait_for(later.wait(), 30)
    assert engine.job(job.id).state is JobState.RUNNING, "a planted link counted as a stop"
    engine.stop_early(job.id)
    done = await wait_for_state(engine, job.id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.summary.startswith("selftest train: stopped early at step ")
    assert victim.read_text() == "keep me\n"
    assert stop_file.is_file() and not stop_file.is_symlink()
    assert not_private(engine.settings.data_dir) == []


async def test_a_link_planted_at_the_job_log_is_not_written_through(
    loose_umask: int, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "job.log").symlink_to(victim)
    marker = tmp_path / "ran"
    argv = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close(); print('output')"]
    result = await local_run(argv, log_path=folder / "job.log").run()
    assert not result.started and result.reason is not None
    assert result.reason.startswith("cannot write the job log job.log: ")
    assert victim.read_text() == "keep me\n" and not marker.exists()

    fresh = tmp_path / "fresh" / "job.log"
    fresh.parent.mkdir()
    done = await local_run([sys.executable, "-c", "print('output')"], log_path=fresh).run()
    assert done.ok and fresh.read_text() == "output\n"
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


# ------------------------------------------------------------------------------- the chat


async def test_the_chat_keeps_everything_private(
    loose_umask: int,
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    http_server: HttpServer,
    tmp_path: Path,
) -> None:
    config = dataclasses.replace(
        chat_config, inputs=FetchPolicy(allow_private_addresses=True, timeout_seconds=5)
    )
    colabot: Colabot = await start_colabot(config)
    await person.emu.send_document(
        b"sent in the chat\n", "notes.txt", caption="/train selftest steps=1 delay=0", user_id=USER
    )
    await person.next_message("#1 selftest train finished", timeout=60)
    url = http_server.add("data.bin", b"fetched from a URL\n" * 100)
    await person.say(f"/train selftest {url} steps=1 delay=0")
    await person.next_message("#2 selftest train finished", timeout=60)
    assert colabot.engine is not None

    data = config.data_dir
    names = names_under(data)
    expected = {
        "colabot.lock",
        "colabot.sqlite3",
        "colabot.sqlite3-wal",
        "colabot.sqlite3-shm",
        "staging",
        "cache/inputs",
        "jobs/1/job.log",
        "jobs/1/work/request.json",
        "jobs/1/outputs/result.json",
        "jobs/2/job.log",
    }
    assert expected <= names, "\n".join(sorted(names))
    assert any(name.startswith("jobs/1/inputs/") for name in names), names
    assert any(name.startswith("cache/inputs/") and name != "cache/inputs" for name in names)
    assert not_private(data) == []


def test_the_offline_chat_keeps_everything_private(loose_umask: int, tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = run_cli("run", env=colabot_env(worker_data_dir=str(data)))
    assert done.returncode == 0, done.stderr
    assert {"colabot.lock", "colabot.sqlite3", "offline-chat"} <= names_under(data)
    assert not_private(data) == []


def test_an_existing_data_folder_others_can_enter_is_made_private(
    loose_umask: int, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    done = run_cli("run", "--verbose", env=colabot_env(worker_data_dir=str(data)))
    assert done.returncode == 0, done.stderr
    assert f"made the data folder {data} private: its mode was 0o755, it is now 0o700" in (
        done.stderr
    )
    assert not_private(data) == []

"""Shared pytest fixtures: the chat (the emulator, a running colabot, a person), the job
side (a store, an engine), and the outside services they stand in for (Drive, the web, W&B,
the kinds' data, the clusters). Imports stay inside the fixtures where a suite that never
uses one should not pay for its libraries. Plain helpers are in tests/helpers/."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.clusters.ray_head import RayHead
from tests.clusters.slurm_cluster import SlurmCluster, missing_requirement
from tests.helpers.chat import BOT_ID, USER, Person
from tests.helpers.engine import WaitForState
from tests.helpers.spacy_data import SpacyCorpus, train_spacy_directly, write_spacy_corpus

if TYPE_CHECKING:
    from bot.config import Config
    from bot.runtime import RuntimeClock
    from bot.service import Colabot
    from emulator import BotApiEmulator
    from emulator.mode import ServerMode
    from tests.emulator.faults import FaultyBotApi
    from tests.helpers.clusters import AnyCluster
    from tests.loopback.drive_server import DriveServer
    from tests.loopback.http_server import HttpServer
    from tests.loopback.wandb_server import WandbServer
    from workers.drive.client import DriveClient
    from workers.drive.metadata import DriveFile
    from workers.drive.settings import DriveSettings
    from workers.engine import Engine, EngineSettings
    from workers.jobs import Job, JobState
    from workers.store.database import Store


# ----------------------------------------------------------------------------- the chat
# The Bot API emulator (that can be told to fail), colabot running on it, and the allowed user.


@pytest.fixture
def emu_mode(request: pytest.FixtureRequest) -> ServerMode:
    """How the emulated server behaves: Telegram's own, unless a test asks for another with
    ``@pytest.mark.parametrize("emu_mode", [ServerMode(...)], indirect=True)``."""
    from emulator.mode import ServerMode

    mode = getattr(request, "param", ServerMode())
    assert isinstance(mode, ServerMode)
    return mode


@pytest.fixture
async def emu(tmp_path: Path, emu_mode: ServerMode) -> AsyncIterator[FaultyBotApi]:
    """A running Bot API emulator (that can be told to fail)."""
    from tests.emulator.faults import FaultyBotApi

    emulator = FaultyBotApi(tmp_path / "telegram", mode=emu_mode, bot_id=BOT_ID)
    await emulator.start()
    emulator.add_chat(USER, first_name="Ada")
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
def input_root(tmp_path: Path) -> Path:
    """The allowed input folder."""
    root = tmp_path / "inputs"
    root.mkdir()
    return root


@pytest.fixture
def chat_config(tmp_path: Path, emu: BotApiEmulator, input_root: Path) -> Config:
    """A configuration pointing colabot at the emulator, for one allowed user."""
    from bot.config import (
        Config,
        HeartbeatConfig,
        ResultsConfig,
        RuntimeConfig,
        TelegramConfig,
        WorkerConfig,
    )

    return Config(
        telegram=TelegramConfig(token=emu.token, api_url=emu.url, allowed_users=(USER,)),
        # The runtime starts now, whenever this machine booted: no limit warning or notice
        # about the machine's age comes into a test's chat unasked.
        runtime=RuntimeConfig(start=datetime.now(UTC).isoformat()),
        worker=WorkerConfig(
            data_dir=tmp_path / "data", max_parallel_jobs=2, input_roots=(input_root,)
        ),
        results=ResultsConfig(dir=tmp_path / "results"),
        heartbeat=HeartbeatConfig(interval_minutes=0),
    )


@pytest.fixture
async def start_colabot(emu: BotApiEmulator) -> AsyncIterator[Callable[..., Any]]:
    """``await start_colabot(config)`` -> a running Colabot, stopped after the test (and
    before the emulator)."""
    from bot.service import Colabot

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


@pytest.fixture
def person(emu: BotApiEmulator) -> Person:
    """The allowed user."""
    return Person(emu)


# ----------------------------------------------------------------------------- the job side
# A store and an engine running the built-in kinds on this machine, with short cancel graces.


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store in a temporary data directory."""
    from workers.store.database import Store

    st = Store(tmp_path / "data")
    yield st
    st.close()


@pytest.fixture
def engine_settings(tmp_path: Path, input_root: Path) -> EngineSettings:
    """Settings with short cancel grace periods."""
    from workers.engine import EngineSettings
    from workers.executors.base import Grace

    return EngineSettings(
        data_dir=tmp_path / "data",
        max_parallel_jobs=2,
        input_roots=(input_root,),
        grace=Grace(after_interrupt=2.0, after_terminate=2.0),
    )


@pytest.fixture
async def engine(engine_settings: EngineSettings, store: Store) -> AsyncIterator[Engine]:
    """A started engine with the built-in kinds; stopped after the test."""
    from workers.engine import Engine
    from workers.kinds.registry import default_registry

    eng = Engine(engine_settings, store, default_registry())
    await eng.start()
    yield eng
    await eng.stop()


@pytest.fixture
def wait_for_state() -> WaitForState:
    """``await wait_for_state(engine, job_id, {states}, timeout=...)`` -> the job in one of them."""
    from workers.jobs import FINISHED_STATES

    async def wait(
        engine: Engine,
        job_id: int,
        states: set[JobState] | frozenset[JobState] = FINISHED_STATES,
        timeout: float = 30.0,
    ) -> Job:
        changed = asyncio.Event()
        engine.on_state(lambda job: changed.set() if job.id == job_id else None)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            job = engine.job(job_id)
            if job.state in states:
                return job
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"job {job_id} stayed {job.state} (wanted {states})")
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), timeout=remaining)
            except TimeoutError:
                continue

    return wait


# ----------------------------------------------------------------------------- Google Drive
# A loopback Drive v2 server and a real DriveClient (PyDrive2 + googleapiclient) pointed at it.
# Imports stay inside the fixtures so suites that never touch Drive do not need its libraries.


@pytest.fixture
def drive_server(tmp_path: Path) -> Iterator[DriveServer]:
    """A running loopback Drive server, stopped after the test."""
    from tests.loopback.drive_server import DriveServer

    with DriveServer(tmp_path / "drive-server") as server:
        yield server


@pytest.fixture
def service_account_file(drive_server: DriveServer, tmp_path: Path) -> Path:
    """A throwaway service-account JSON key that the loopback server trusts."""
    return drive_server.new_service_account(tmp_path / "service-account.json")


@pytest.fixture
def drive_settings(drive_server: DriveServer, service_account_file: Path) -> DriveSettings:
    """Service-account settings aimed at the loopback server: 1 MiB chunks, quick retries."""
    from workers.drive.settings import DriveSettings

    return DriveSettings(
        auth="service_account",
        service_account_file=service_account_file,
        api_url=drive_server.url,
        chunk_mb=1,
    )


@pytest.fixture
def drive_client(drive_settings: DriveSettings) -> DriveClient:
    """A connected DriveClient."""
    from tests.workers.drive.helpers import QUICK
    from workers.drive.client import DriveClient

    client = DriveClient(drive_settings, QUICK)
    client.connect()
    return client


@pytest.fixture
def shared_drive(drive_server: DriveServer) -> str:
    """A shared drive where the test's service account is a Content manager, the set-up a
    service account needs (it has no storage of its own)."""
    from tests.loopback.drive_server import DEFAULT_ACCOUNT

    return drive_server.add_shared_drive("Lab results", {DEFAULT_ACCOUNT: "fileOrganizer"})


@pytest.fixture
def drive_root_folder(drive_client: DriveClient, shared_drive: str) -> DriveFile:
    """An empty folder in that shared drive for the test to work in."""
    return drive_client.ensure_folder("colabot-tests", shared_drive)


# ----------------------------------------------------------------------------- http(s) inputs
# A loopback web server for URL inputs: ranges, broken connections, redirects, errors.


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    """A running loopback http server."""
    from tests.loopback.http_server import HttpServer

    server = HttpServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def wandb_server() -> AsyncIterator[WandbServer]:
    """A loopback W&B sign-in check that knows no key (each one is refused, with a 401)."""
    from tests.loopback.wandb_server import WandbServer

    server = WandbServer()
    await server.start()
    yield server
    await server.stop()


# ----------------------------------------------------------------------------- job kinds' data
# Written once per session and shared by the kinds' own tests and the chat tests. The
# frameworks load only in the helpers' subprocesses (or inside spaCy's own helpers).


@pytest.fixture(scope="session")
def spacy_corpus(tmp_path_factory: pytest.TempPathFactory) -> SpacyCorpus:
    """The spaCy test corpus, written once per session."""
    return write_spacy_corpus(tmp_path_factory.mktemp("spacy-corpus"))


@pytest.fixture(scope="session")
def spacy_model(spacy_corpus: SpacyCorpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline trained once per session on the test corpus (its model-best folder)."""
    return train_spacy_directly(spacy_corpus, tmp_path_factory.mktemp("spacy-model") / "out")


@pytest.fixture(scope="session")
def sleap_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Paths of the generated SLEAP test data, by name (see ``make_test_data``)."""
    folder = tmp_path_factory.mktemp("sleap-data")
    out = subprocess.run(
        [sys.executable, "-m", "workers.kinds.sleap.tools", "make-data", str(folder)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    paths = {}
    for line in out.stdout.splitlines():
        name, _, path = line.partition(": ")
        paths[name] = Path(path)
    return paths


def _ray_or_skip() -> None:
    if importlib.util.find_spec("ray") is None:
        pytest.skip(
            "SKIPPED LOUDLY: Ray is not installed (pip install 'colabot[ray]'), so the Ray "
            "executor is not tested here"
        )


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """A real Ray head on 127.0.0.1 with token auth and one logical GPU, for the session."""
    _ray_or_skip()
    head = RayHead().start()
    try:
        yield head
    finally:
        head.stop()


@pytest.fixture
def start_ray_head() -> Iterator[Callable[..., RayHead]]:
    """``start_ray_head(**options)`` -> a head of this test's own (stopped after it)."""
    _ray_or_skip()
    heads: list[RayHead] = []

    def start(**options: Any) -> RayHead:
        head = RayHead(**options).start()
        heads.append(head)
        return head

    yield start
    for head in heads:
        head.stop()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A real one-machine Slurm cluster (munged, slurmctld, slurmd on 127.0.0.1) with one
    dummy GPU, for the session."""
    missing = missing_requirement()
    if missing is not None:
        pytest.skip(f"SKIPPED LOUDLY: {missing}, so the Slurm executor is not tested here")
    cluster = SlurmCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def on_slurm(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SlurmCluster]:
    """The session's cluster, with Slurm's commands pointed at it for this test (and its
    queue empty when the test ends)."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    yield slurm_cluster
    slurm_cluster.cancel_all()


@pytest.fixture(params=["ray", "slurm"])
def cluster(request: pytest.FixtureRequest) -> AnyCluster:
    """Each real cluster in turn, so that a test runs once on each: the session's Ray head,
    and the session's Slurm cluster with its commands pointed at it (``on_slurm``)."""
    from tests.helpers.clusters import OnRay, OnSlurm

    if request.param == "ray":
        return OnRay(request.getfixturevalue("ray_head"))
    return OnSlurm(request.getfixturevalue("on_slurm"))

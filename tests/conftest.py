"""Shared pytest fixtures, grouped by the outside service they stand in for."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.clusters.ray_head import RayHead
from tests.clusters.slurm_cluster import SlurmCluster, missing_requirement
from tests.workers.kinds.conftest import SpacyCorpus, train_spacy_directly, write_spacy_corpus

if TYPE_CHECKING:
    from tests.loopback.drive_server import DriveServer
    from tests.loopback.http_server import HttpServer
    from tests.loopback.wandb_server import WandbServer
    from workers.drive.client import DriveClient
    from workers.drive.metadata import DriveFile
    from workers.drive.settings import DriveSettings


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

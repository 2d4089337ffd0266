"""Shared pytest fixtures, grouped by the outside service they stand in for."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.loopback.drive_server import DriveServer
    from tests.loopback.http_server import HttpServer
    from workers.gdrive import DriveClient, DriveFile, DriveSettings


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
    from workers.gdrive import DriveSettings

    return DriveSettings(
        auth="service_account",
        service_account_file=service_account_file,
        api_url=drive_server.url,
        chunk_mb=1,
        retries=3,
        backoff_s=0.001,
        timeout_s=10.0,
    )


@pytest.fixture
def drive_client(drive_settings: DriveSettings) -> DriveClient:
    """A connected DriveClient."""
    from workers.gdrive import DriveClient

    client = DriveClient(drive_settings)
    client.connect()
    return client


@pytest.fixture
def drive_root_folder(drive_client: DriveClient) -> DriveFile:
    """An empty folder in My Drive for the test to work in."""
    return drive_client.ensure_folder("colabot-tests", "root")


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

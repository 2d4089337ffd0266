"""workers.drive.client as a whole, against a loopback Drive v2 server (real PyDrive2,
googleapiclient, HTTP): its settings, importing it without the drive extra, one client shared
by threads, every request seen by the server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.loopback.drive_server import (
    DriveServer,
)
from tests.workers.drive.helpers import (
    FILE_ID,
    MIB,
    random_file,
)
from workers.drive.client import DriveClient
from workers.drive.metadata import DriveFile
from workers.drive.settings import Patience


def test_patience_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="retries"):
        Patience(retries=-1)
    with pytest.raises(ValueError, match="timeout_s"):
        Patience(timeout_s=0)


def test_module_imports_without_the_drive_extra() -> None:
    script = (
        "import sys; sys.modules['pydrive2'] = None\n"
        "from workers.drive.client import DriveClient\n"
        "from workers.drive.settings import DriveSettings\n"
        "from workers.errors import DriveError\n"
        "from workers.inputs.sources import parse_drive_ref\n"
        f"assert parse_drive_ref('{FILE_ID}') == '{FILE_ID}'\n"
        "try:\n"
        "    DriveClient(DriveSettings(auth='colab')).connect()\n"
        "except DriveError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert "install colabot[drive]" in result.stdout


async def test_uploads_from_worker_threads(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    blobs = {f"part-{n}.bin": random_file(tmp_path / f"part-{n}.bin", MIB + n) for n in range(3)}
    uploaded = await asyncio.gather(
        *(
            asyncio.to_thread(drive_client.upload, tmp_path / name, drive_root_folder.id)
            for name in blobs
        )
    )
    assert {item.title: drive_server.content(item.id) for item in uploaded} == blobs


def test_server_sees_every_request_including_the_token_exchange(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    random_file(tmp_path / "a.bin", 10)
    uploaded = drive_client.upload(tmp_path / "a.bin", drive_root_folder.id)
    drive_client.download(uploaded.id, tmp_path / "copy.bin")
    record = drive_server.wait_for_request(
        lambda r: r.query.get("alt") == "media" and r.status == 206, timeout=5.0
    )
    assert record.path == f"/drive/v2/files/{uploaded.id}"
    assert {r.path.split("/")[1] for r in drive_server.requests()} == {"token", "drive", "upload"}

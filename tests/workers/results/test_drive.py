"""The Google Drive results backend: real PyDrive2 against the loopback Drive server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.loopback.drive_server import DEFAULT_ACCOUNT, DriveServer
from workers.drive.client import DriveClient
from workers.errors import DriveQuotaError
from workers.jobs import Link
from workers.results.drive import DriveResults


@pytest.fixture
def results_folder(drive_server: DriveServer, shared_drive: str) -> str:
    return drive_server.add_folder("colabot-results", shared_drive)


@pytest.fixture
def backend(drive_client: DriveClient, results_folder: str) -> DriveResults:
    results = DriveResults(drive_client, results_folder, share_anyone=True)
    results.check()
    return results


def test_publish_makes_a_folder_per_job_with_shared_links(
    backend: DriveResults, drive_server: DriveServer, results_folder: str, tmp_path: Path
) -> None:
    model = tmp_path / "model.zip"
    model.write_bytes(b"z" * 3_000_000)
    log = tmp_path / "job.log"
    log.write_text("done\n")
    seen: list[int] = []
    links = backend.publish(
        7, [(model, "model"), (log, "log")], lambda name, sent, total: seen.append(sent)
    )
    folders = [f for f in drive_server.children(results_folder) if f.title == "job-7"]
    assert len(folders) == 1
    files = {f.title: f for f in drive_server.children(folders[0].id)}
    assert drive_server.content(files["model.zip"].id) == model.read_bytes()
    assert [link.label for link in links] == ["model", "log"]
    assert links[0].url.startswith("http") and links[0].size == 3_000_000
    assert any(
        p.get("type") == "anyone"
        for p in drive_server.permissions(
            files["log"].id if "log" in files else files["job.log"].id
        )
    )
    assert seen[-1] == 3_000_000 or seen[-1] == len(b"done\n")


def test_checkpoint_sync_keeps_only_the_newest_and_restores_folders(
    backend: DriveResults, drive_server: DriveServer, tmp_path: Path
) -> None:
    old = tmp_path / "step-1.json"
    old.write_text("1")
    backend.sync_checkpoint(4, old)
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.ckpt").write_bytes(b"weights")
    location = backend.sync_checkpoint(4, run)
    job_folder = next(f for f in drive_server.files() if f.title == "job-4")
    checkpoint_folder = next(
        f for f in drive_server.children(job_folder.id) if f.title == "checkpoint"
    )
    assert [f.title for f in drive_server.children(checkpoint_folder.id)] == ["run.folder.zip"]
    restored = backend.fetch_checkpoint(4, location, tmp_path / "restored")
    assert restored == tmp_path / "restored" / "run"
    assert (restored / "last.ckpt").read_bytes() == b"weights"


def test_snapshot_round_trip_replaces_the_previous_one(
    backend: DriveResults, drive_server: DriveServer, results_folder: str
) -> None:
    assert backend.load_snapshot() is None
    backend.save_snapshot(b'{"a": 1}')
    backend.save_snapshot(b'{"a": 2}')
    assert backend.load_snapshot() == b'{"a": 2}'
    titles = [f.title for f in drive_server.children(results_folder)]
    assert titles.count("colabot-state.json") == 1


def test_a_quota_error_is_raised_as_such(
    backend: DriveResults, drive_server: DriveServer, tmp_path: Path
) -> None:
    drive_server.fail_next("POST", r"/upload/", 403, reason="storageQuotaExceeded", count=5)
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 1000)
    with pytest.raises(DriveQuotaError, match=r"storageQuotaExceeded|quota"):
        backend.publish(1, [(path, "big")], None)


def test_a_shared_drive_that_allows_no_sharing_outside_keeps_private_links(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    # A Workspace policy: files in this shared drive may not be shared with anyone who has
    # the link. The results are uploaded before sharing is asked for: they stay, with their
    # own links, and a last link to the job's folder says why.
    drive = drive_server.add_shared_drive(
        "Lab (organisation only)", {DEFAULT_ACCOUNT: "fileOrganizer"}, domain_users_only=True
    )
    folder = drive_server.add_folder("colabot-results", drive)
    backend = DriveResults(drive_client, folder, share_anyone=True)
    backend.check()
    model, log = tmp_path / "model.zip", tmp_path / "job.log"
    model.write_bytes(b"z" * 1000)
    log.write_text("done\n")
    links = backend.publish(3, [(model, "model"), (log, "log")], None)
    job_folder = next(f for f in drive_server.children(folder) if f.title == "job-3")
    files = {f.title: f for f in drive_server.children(job_folder.id)}
    assert drive_server.content(files["model.zip"].id) == model.read_bytes()
    assert all(drive_server.permissions(f.id) == [] for f in files.values())
    assert links == [
        Link(
            "model",
            f"https://drive.google.com/file/d/{files['model.zip'].id}/view?usp=drivesdk",
            1000,
        ),
        Link("log", f"https://drive.google.com/file/d/{files['job.log'].id}/view?usp=drivesdk", 5),
        Link(
            "job-3 folder: the links above open only for people who may read it, since the "
            "organisation that owns this shared drive does not allow sharing outside it "
            "(drive.share_anyone could not share them with anyone who has the link)",
            f"https://drive.google.com/drive/folders/{job_folder.id}",
        ),
    ]
    refused = [r for r in drive_server.requests() if r.path.endswith("/permissions")]
    assert [r.status for r in refused] == [400]  # asked once, not once per file

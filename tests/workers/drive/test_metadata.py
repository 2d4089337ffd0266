"""workers.drive.metadata against the loopback Drive v2 server: file resources, folders, listing
page by page, deleting and sharing by link."""

from __future__ import annotations

from pathlib import Path

from tests.loopback.drive_server import (
    FOLDER_MIME,
    DriveServer,
)
from tests.workers.drive.helpers import (
    random_file,
)
from workers.drive.client import DriveClient
from workers.drive.metadata import DriveFile
from workers.inputs.sources import parse_drive_ref


def test_drive_file_from_metadata_parses_v2_fields() -> None:
    item = DriveFile.from_metadata(
        {
            "id": "x",
            "title": "t",
            "mimeType": FOLDER_MIME,
            "fileSize": "12",
            "parents": [{"id": "p1"}, {"id": "p2"}],
            "alternateLink": "https://drive.google.com/drive/folders/x",
        }
    )
    assert (item.size, item.parent_ids, item.is_folder, item.download_link) == (
        12,
        ("p1", "p2"),
        True,
        None,
    )


# -------------------------------------------------------------------------------- folders


def test_ensure_folder_finds_before_creating(
    drive_server: DriveServer, drive_client: DriveClient
) -> None:
    first = drive_client.ensure_folder("results", "root")
    again = drive_client.ensure_folder("results", "root")
    nested = drive_client.ensure_folder("run-1", first.id)
    assert again == first
    assert first.is_folder
    assert first.parent_ids == (drive_server.root_id,)
    assert nested.parent_ids == (first.id,)
    assert [f.title for f in drive_server.children(drive_server.root_id)] == ["results"]


def test_ensure_folder_ignores_a_file_with_the_same_title(
    drive_server: DriveServer, drive_client: DriveClient
) -> None:
    drive_server.add_file("results", b"not a folder")
    folder = drive_client.ensure_folder("results", "root")
    assert folder.is_folder


def test_list_find_and_paging(
    drive_server: DriveServer, drive_client: DriveClient, drive_root_folder: DriveFile
) -> None:
    drive_server.max_page_size = 2
    titles = [f"file-{n}.txt" for n in range(5)] + ['it\'s "quoted".txt']
    for title in titles:
        drive_server.add_file(title, title.encode(), drive_root_folder.id)
    trashed = drive_server.add_file("gone.txt", b"x", drive_root_folder.id)
    drive_client.trash(trashed)
    listed = drive_client.list_folder(drive_root_folder.id)
    assert sorted(item.title for item in listed) == sorted(titles)
    list_calls = [r for r in drive_server.requests() if r.path == "/drive/v2/files"]
    assert any("pageToken" in r.query for r in list_calls)
    found = drive_client.find('it\'s "quoted".txt', drive_root_folder.id)
    assert found is not None
    assert found.size == len(titles[-1])
    assert drive_client.find("missing.txt", drive_root_folder.id) is None


def test_delete_is_idempotent_and_takes_folder_contents(
    drive_server: DriveServer, drive_client: DriveClient
) -> None:
    folder = drive_server.add_folder("to-delete")  # in the account's own My Drive
    inner = drive_server.add_file("inner.txt", b"x", folder)
    drive_client.delete(folder)
    drive_client.delete(folder)
    assert {f.id for f in drive_server.files()} == {drive_server.root_id}
    assert inner not in {f.id for f in drive_server.files()}


# -------------------------------------------------------------------------------- sharing


def test_share_anyone_with_link(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    random_file(tmp_path / "report.pdf", 300)
    uploaded = drive_client.upload(tmp_path / "report.pdf", drive_root_folder.id)
    shared = drive_client.share_anyone(uploaded.id)
    (permission,) = drive_server.permissions(uploaded.id)
    assert (permission["type"], permission["role"], permission["withLink"]) == (
        "anyone",
        "reader",
        True,
    )
    assert parse_drive_ref(shared.view_link) == uploaded.id
    assert shared.download_link is not None
    assert parse_drive_ref(shared.download_link) == uploaded.id

"""workers.drive.transfers against the loopback Drive v2 server: chunked resumable uploads, ranged
downloads that resume and are checked, folder trees, and the progress they report."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.loopback.drive_server import (
    BROWSER_EXPORT_ROOT,
    DOCUMENT_MIME,
    DriveServer,
)
from tests.workers.drive.helpers import (
    MIB,
    QUICK,
    Recorder,
    is_status_query,
    random_file,
)
from workers.drive.client import DriveClient
from workers.drive.metadata import DriveFile
from workers.errors import (
    DriveError,
    DrivePermissionError,
)

# -------------------------------------------------------------------------------- uploads


def test_upload_small_file(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    data = random_file(tmp_path / "metrics.json", 1000)
    progress = Recorder()
    uploaded = drive_client.upload(
        tmp_path / "metrics.json", drive_root_folder.id, progress=progress
    )
    assert uploaded.title == "metrics.json"
    assert uploaded.size == 1000
    assert uploaded.md5 == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert uploaded.mime_type == "application/json"
    assert uploaded.parent_ids == (drive_root_folder.id,)
    assert uploaded.download_link is not None
    assert drive_server.content(uploaded.id) == data
    progress.assert_monotonic_to(1000)
    upload_paths = [r.path for r in drive_server.requests() if r.path.startswith("/upload/")]
    assert upload_paths == ["/upload/drive/v2/files", "/upload/drive/v2/files"]


def test_upload_multi_chunk_reports_progress_per_chunk(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    size = 3 * MIB + 512 * 1024
    data = random_file(tmp_path / "model.ckpt", size)
    progress = Recorder()
    uploaded = drive_client.upload(
        tmp_path / "model.ckpt", drive_root_folder.id, title="best.ckpt", progress=progress
    )
    assert uploaded.title == "best.ckpt"
    assert drive_server.content(uploaded.id) == data
    assert [done for done, _ in progress.calls] == [0, MIB, 2 * MIB, 3 * MIB, size]
    progress.assert_monotonic_to(size)
    (session,) = drive_server.sessions()
    assert session.chunk_requests == 4
    assert drive_server.upload_bytes_received(uploaded.id) == size


def test_upload_empty_file(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    (tmp_path / "empty.log").write_bytes(b"")
    progress = Recorder()
    uploaded = drive_client.upload(tmp_path / "empty.log", drive_root_folder.id, progress=progress)
    assert uploaded.size == 0
    assert drive_server.content(uploaded.id) == b""
    assert progress.calls == [(0, 0)]


def test_upload_replaces_a_file_with_the_same_title(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    random_file(tmp_path / "a.bin", 100)
    first = drive_client.upload(tmp_path / "a.bin", drive_root_folder.id, title="latest.bin")
    newer = random_file(tmp_path / "b.bin", 1500)
    second = drive_client.upload(tmp_path / "b.bin", drive_root_folder.id, title="latest.bin")
    assert second.id == first.id
    assert second.size == 1500
    assert drive_server.content(first.id) == newer
    assert [f.title for f in drive_client.list_folder(drive_root_folder.id)] == ["latest.bin"]


def test_upload_of_missing_local_file(drive_client: DriveClient, tmp_path: Path) -> None:
    with pytest.raises(DriveError, match="cannot read"):
        drive_client.upload(tmp_path / "nothing.bin", "root")


@pytest.mark.parametrize("status", [500, 503])
def test_upload_resumes_after_server_errors(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
    status: int,
) -> None:
    size = 3 * MIB + 100
    data = random_file(tmp_path / "data.bin", size)
    drive_server.fail_next("PUT", "^/upload/drive/v2/files$", status)
    progress = Recorder()
    uploaded = drive_client.upload(tmp_path / "data.bin", drive_root_folder.id, progress=progress)
    assert drive_server.content(uploaded.id) == data
    resent = drive_server.upload_bytes_received(uploaded.id) - size
    assert 0 < resent <= drive_client.settings.chunk_bytes
    puts = [r for r in drive_server.requests() if r.method == "PUT"]
    failed = next(n for n, r in enumerate(puts) if r.fault is not None)
    # googleapiclient sends the refused chunk again, from the same offset.
    assert puts[failed + 1].content_range == puts[failed].content_range
    progress.assert_monotonic_to(size)


def test_upload_resumes_after_a_connection_broken_mid_chunk(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    size = 4 * MIB
    data = random_file(tmp_path / "video.mp4", size)
    progress = Recorder()

    def break_second_chunk(done: int, total: int) -> None:
        progress(done, total)
        if done == MIB:
            drive_server.drop_upload_after(300_000)

    uploaded = drive_client.upload(
        tmp_path / "video.mp4", drive_root_folder.id, progress=break_second_chunk
    )
    assert drive_server.content(uploaded.id) == data
    puts = [r for r in drive_server.requests() if r.method == "PUT"]
    dropped = next(n for n, r in enumerate(puts) if r.fault == "drop upload")
    assert puts[dropped].status is None
    assert puts[dropped].received_bytes == 300_000
    # The client asks where to resume and goes on from the byte the server acknowledged.
    assert is_status_query(puts[dropped + 1])
    content_range = puts[dropped + 2].content_range
    assert content_range is not None
    assert content_range.startswith(f"bytes {MIB + 300_000}-")
    resent = drive_server.upload_bytes_received(uploaded.id) - size
    assert 0 <= resent <= drive_client.settings.chunk_bytes
    progress.assert_monotonic_to(size)


def test_upload_asks_again_when_the_status_query_gets_a_503(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    # Google's guide: after an interrupted chunk or a 5xx, resume; a 5xx answered to the
    # question "how much arrived?" is no reason to give the upload up.
    size = 3 * MIB + 5
    data = random_file(tmp_path / "frames.h5", size)
    drive_server.drop_upload_after(300_000)
    drive_server.fail_status_queries(503, count=2)
    progress = Recorder()
    uploaded = drive_client.upload(tmp_path / "frames.h5", drive_root_folder.id, progress=progress)
    assert drive_server.content(uploaded.id) == data
    puts = [(r.content_range, r.status) for r in drive_server.requests() if r.method == "PUT"]
    assert puts[:5] == [
        (f"bytes 0-{MIB - 1}/{size}", None),
        (f"bytes */{size}", 503),
        (f"bytes */{size}", 503),
        (f"bytes */{size}", 308),
        (f"bytes 300000-{300_000 + MIB - 1}/{size}", 308),
    ]
    progress.assert_monotonic_to(size)


def test_upload_gives_up_when_the_status_query_keeps_failing(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    random_file(tmp_path / "doomed.bin", 2 * MIB)
    drive_server.drop_upload_after(300_000)
    drive_server.fail_status_queries(503, count=1000)
    with pytest.raises(DriveError) as caught:
        drive_client.upload(tmp_path / "doomed.bin", drive_root_folder.id)
    retries = QUICK.retries  # the drive_client's patience
    # One chunk sent (its connection broke), then one question for each retry.
    assert str(caught.value) == (
        f"Drive upload failed: Backend Error; gave up after {retries + 1} attempts"
    )
    assert type(caught.value) is DriveError and caught.value.status == 503
    puts = [r for r in drive_server.requests() if r.method == "PUT"]
    assert [r.fault for r in puts] == ["drop upload"] + ["503 status query"] * retries
    assert drive_client.list_folder(drive_root_folder.id) == []


def test_upload_survives_a_token_revoked_between_chunks(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    # oauth2client answers the 401 by refreshing and re-sending the same chunk body.
    data = random_file(tmp_path / "long.bin", 3 * MIB)

    def revoke_after_first_chunk(done: int, _total: int) -> None:
        if done == MIB:
            drive_server.revoke_tokens()

    uploaded = drive_client.upload(
        tmp_path / "long.bin", drive_root_folder.id, progress=revoke_after_first_chunk
    )
    assert drive_server.content(uploaded.id) == data
    assert any(record.status == 401 for record in drive_server.requests())


def test_upload_starts_over_when_drive_forgot_the_session(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    size = 3 * MIB
    data = random_file(tmp_path / "slow.bin", size)
    progress = Recorder()

    def expire_after_first_chunk(done: int, total: int) -> None:
        progress(done, total)
        if done == MIB:
            drive_server.expire_upload_sessions()

    uploaded = drive_client.upload(
        tmp_path / "slow.bin", drive_root_folder.id, progress=expire_after_first_chunk
    )
    assert drive_server.content(uploaded.id) == data
    assert len(drive_server.sessions()) == 2
    progress.assert_monotonic_to(size)


def test_upload_gives_up_after_retries_and_leaves_no_file(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    random_file(tmp_path / "doomed.bin", 2 * MIB + 10)
    drive_server.fail_upload_chunks(503, count=1000)
    with pytest.raises(DriveError, match="gave up after 4 attempts") as caught:
        drive_client.upload(tmp_path / "doomed.bin", drive_root_folder.id)
    assert type(caught.value) is DriveError
    assert caught.value.status == 503
    assert caught.value.operation == "upload"
    assert drive_server.children(drive_root_folder.id, include_trashed=True) == []
    assert drive_client.list_folder(drive_root_folder.id) == []
    (session,) = drive_server.sessions()
    assert session.file_id is None


def test_upload_gives_up_when_the_connection_keeps_breaking(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    random_file(tmp_path / "doomed.bin", 2 * MIB)
    drive_server.drop_upload_after(0, count=1000)
    with pytest.raises(DriveError, match="connection failed"):
        drive_client.upload(tmp_path / "doomed.bin", drive_root_folder.id)
    assert drive_client.list_folder(drive_root_folder.id) == []


# ------------------------------------------------------------------------------ downloads


def test_download_in_chunks(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    data = os.urandom(2 * MIB + 77)
    file_id = drive_server.add_file("frames.h5", data)
    progress = Recorder()
    dest = tmp_path / "in" / "frames.h5"
    assert drive_client.download(file_id, dest, progress) == dest
    assert dest.read_bytes() == data
    assert not (tmp_path / "in" / "frames.h5.part").exists()
    ranges = [r.range for r in drive_server.requests() if r.query.get("alt") == "media"]
    assert ranges == [
        f"bytes={0}-{MIB - 1}",
        f"bytes={MIB}-{2 * MIB - 1}",
        f"bytes={2 * MIB}-{3 * MIB - 1}",
    ]
    progress.assert_monotonic_to(len(data))


def test_download_empty_file(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    file_id = drive_server.add_file("empty.txt", b"")
    assert drive_client.download(file_id, tmp_path / "empty.txt").read_bytes() == b""


def test_download_resumes_after_a_dropped_connection(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    data = os.urandom(3 * MIB)
    file_id = drive_server.add_file("video.mp4", data)

    def drop_second_chunk(done: int, _total: int) -> None:
        if done == MIB:
            drive_server.drop_download_after(100_000)

    dest = drive_client.download(file_id, tmp_path / "video.mp4", drop_second_chunk)
    assert dest.read_bytes() == data
    media = [r for r in drive_server.requests() if r.query.get("alt") == "media"]
    assert [r.fault for r in media] == [None, "drop download", None, None]
    assert media[2].range == f"bytes={MIB}-{2 * MIB - 1}"


def test_download_continues_an_earlier_partial_file(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    data = os.urandom(2 * MIB + 5)
    file_id = drive_server.add_file("labels.slp", data)
    (tmp_path / "labels.slp.part").write_bytes(data[:MIB])
    progress = Recorder()
    dest = drive_client.download(file_id, tmp_path / "labels.slp", progress)
    assert dest.read_bytes() == data
    media = [r for r in drive_server.requests() if r.query.get("alt") == "media"]
    assert media[0].range == f"bytes={MIB}-{2 * MIB - 1}"
    assert progress.calls[0] == (MIB, len(data))
    progress.assert_monotonic_to(len(data))


def test_download_starts_over_when_the_partial_file_is_stale(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    data = os.urandom(2 * MIB)
    file_id = drive_server.add_file("labels.slp", data)
    (tmp_path / "labels.slp.part").write_bytes(os.urandom(MIB))
    assert drive_client.download(file_id, tmp_path / "labels.slp").read_bytes() == data


def test_download_gives_up_and_keeps_the_partial_file(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    data = os.urandom(2 * MIB)
    file_id = drive_server.add_file("big.bin", data)

    def fail_from_second_chunk(done: int, _total: int) -> None:
        if done == MIB:
            drive_server.fail_next("GET", "^/drive/v2/files/", 503, count=100)

    with pytest.raises(DriveError, match="gave up"):
        drive_client.download(file_id, tmp_path / "big.bin", fail_from_second_chunk)
    assert not (tmp_path / "big.bin").exists()
    assert (tmp_path / "big.bin.part").read_bytes() == data[:MIB]


def test_download_to_an_unwritable_place(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    file_id = drive_server.add_file("x.bin", b"abc")
    (tmp_path / "blocker").write_text("a file, not a folder")
    with pytest.raises(DriveError, match="cannot write"):
        drive_client.download(file_id, tmp_path / "blocker" / "x.bin")


def test_download_of_a_google_doc_explains_itself(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    doc = drive_server.add_file("notes", mime_type="application/vnd.google-apps.document")
    with pytest.raises(DriveError, match="Google Docs/Sheets/Slides") as caught:
        drive_client.download(doc, tmp_path / "notes")
    assert not isinstance(caught.value, DrivePermissionError)
    assert not (tmp_path / "notes").exists()


def test_download_folder_keeps_structure_and_contains_hostile_titles(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    top = drive_server.add_folder("dataset")
    videos = drive_server.add_folder("videos", top)
    empty = drive_server.add_folder("empty", top)
    sneaky = drive_server.add_folder("..", top)
    files = {
        "labels.slp": (top, os.urandom(1500)),
        "session1.mp4": (videos, os.urandom(MIB + 3)),
        "../x": (top, b"escape 1"),
        "/etc/y": (videos, b"escape 2"),
        "inner.txt": (sneaky, b"escape 3"),
    }
    for title, (parent, data) in files.items():
        drive_server.add_file(title, data, parent)
    drive_server.add_file("dup.txt", b"one", top)
    drive_server.add_file("dup.txt", b"two", top)
    drive_server.add_file("README", mime_type="application/vnd.google-apps.document", parent_id=top)
    dest = tmp_path / "inputs"
    progress = Recorder()
    paths = drive_client.download_folder(top, dest, progress)
    got = {path.relative_to(dest.resolve()).as_posix(): path.read_bytes() for path in paths}
    assert got == {
        "labels.slp": files["labels.slp"][1],
        "videos/session1.mp4": files["session1.mp4"][1],
        "x": b"escape 1",
        "videos/y": b"escape 2",
        "_/inner.txt": b"escape 3",
        "dup.txt": b"one",
        "dup-2.txt": b"two",
    }
    assert (dest / "empty").is_dir()
    assert empty
    assert not (tmp_path / "x").exists()
    assert all(path.resolve().is_relative_to(dest.resolve()) for path in paths)
    progress.assert_monotonic_to(sum(len(data) for data in got.values()))


# -------------------------------------------------------------------------------- exports


def test_export_goes_through_the_api_not_the_browser_links(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    doc = drive_server.add_file("notes", mime_type=DOCUMENT_MIME, text="One text.\n")
    item = drive_client.get(doc)
    # Real Drive's exportLinks point at docs.google.com, not at the API (here: .invalid).
    assert all(url.startswith(BROWSER_EXPORT_ROOT) for _, url in item.export_links)
    dest = drive_client.export(item, "text/plain", tmp_path / "notes.txt")
    assert dest.read_text() == "One text.\n"
    (export,) = [r for r in drive_server.requests() if r.path.endswith("/export")]
    assert (export.path, export.query["mimeType"], export.status) == (
        f"/drive/v2/files/{doc}/export",
        "text/plain",
        200,
    )


def test_export_of_a_format_drive_does_not_offer(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    doc = drive_server.add_file("notes", mime_type=DOCUMENT_MIME, text="x")
    with pytest.raises(DriveError) as caught:
        drive_client.export(drive_client.get(doc), "text/csv", tmp_path / "notes.csv")
    assert str(caught.value) == (
        "Drive export failed: notes cannot be exported as text/csv (application/pdf, text/plain)"
    )
    assert not [r for r in drive_server.requests() if r.path.endswith("/export")]

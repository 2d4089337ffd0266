"""Fetching inputs from URLs (loopback http server) and Drive links (loopback Drive server)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from tests.loopback.drive_server import DriveServer
from tests.loopback.http_server import HttpServer
from workers.drive.client import DriveClient
from workers.errors import DriveError, InputError
from workers.inputs.fetch import Fetcher, download_progress
from workers.inputs.netpolicy import FetchPolicy, check_url, filename_for, is_private_address
from workers.inputs.sources import DriveSource, UrlSource
from workers.jobs import Progress

LOOPBACK = FetchPolicy(allow_private_addresses=True, timeout_seconds=2.0)


@pytest.fixture
def seen() -> list[Progress]:
    return []


def fetcher(
    tmp_path: Path, policy: FetchPolicy = LOOPBACK, drive: DriveClient | None = None
) -> Fetcher:
    return Fetcher(
        policy, tmp_path / "cache", (lambda: drive) if drive else None, retry_delay_s=0.001
    )


async def test_a_large_file_streams_to_disk_with_progress(
    http_server: HttpServer, tmp_path: Path, seen: list[Progress]
) -> None:
    data = os.urandom(12 * 1024 * 1024)
    url = http_server.add("big.bin", data)
    path = await fetcher(tmp_path).fetch(UrlSource(url), seen.append)
    assert path.name == "big.bin" and path.read_bytes() == data
    assert seen[-1].fraction == 1.0 and "12.0 of 12.0 MB" in seen[-1].message
    assert not list(path.parent.glob("*.part"))


async def test_a_dropped_connection_resumes_with_a_range_request(
    http_server: HttpServer, tmp_path: Path, seen: list[Progress]
) -> None:
    data = os.urandom(4 * 1024 * 1024)
    url = http_server.add("video.mp4", data, drop_times=1)
    path = await fetcher(tmp_path).fetch(UrlSource(url), seen.append)
    assert path.read_bytes() == data
    ranges = http_server.ranges_seen("/files/video.mp4")
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:].rstrip("-")) > 0


async def test_a_server_that_ignores_range_is_downloaded_again_whole(
    http_server: HttpServer, tmp_path: Path
) -> None:
    data = os.urandom(1024 * 1024)
    http_server.add("x.bin", data, drop_times=1)
    path = await fetcher(tmp_path).fetch(
        UrlSource(http_server.url("/no-range/x.bin")), lambda p: None
    )
    assert path.read_bytes() == data


async def test_redirects_are_followed(http_server: HttpServer, tmp_path: Path) -> None:
    http_server.add("labels.slp", b"labels")
    path = await fetcher(tmp_path).fetch(
        UrlSource(http_server.url("/redirect/3/labels.slp")), lambda p: None
    )
    assert path.read_bytes() == b"labels" and path.name == "labels.slp"


async def test_a_redirect_to_an_internal_address_is_refused(
    http_server: HttpServer, tmp_path: Path
) -> None:
    # Loopback is allowed for the test server itself, but the redirect's target is checked too.
    with pytest.raises(InputError, match=r"it redirects to http://169\.254\.169\.254/"):
        await fetcher(
            tmp_path, FetchPolicy(allow_private_addresses=True, allowed_url_hosts=("127.0.0.1",))
        ).fetch(UrlSource(http_server.url("/internal-redirect")), lambda p: None)
    strict = Fetcher(FetchPolicy(allow_private_addresses=False), tmp_path / "c")
    with pytest.raises(InputError, match=r"127\.0\.0\.1, an address on this machine"):
        await strict.fetch(UrlSource(http_server.url("/internal-redirect")), lambda p: None)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (404, "not found (HTTP 404)"),
        (403, "access is denied (HTTP 403 Forbidden)"),
        (500, "the server answered HTTP 500"),
    ],
)
async def test_http_errors_are_clear(
    http_server: HttpServer, tmp_path: Path, code: int, message: str
) -> None:
    with pytest.raises(InputError) as caught:
        await fetcher(tmp_path).fetch(UrlSource(http_server.url(f"/status/{code}")), lambda p: None)
    assert caught.value.reason == message


async def test_a_server_lying_about_content_length_is_caught(
    http_server: HttpServer, tmp_path: Path
) -> None:
    http_server.add("short.bin", b"z" * 1000)
    with pytest.raises(InputError, match="does not match what the server promised"):
        await fetcher(tmp_path).fetch(UrlSource(http_server.url("/liar/short.bin")), lambda p: None)
    assert not list((tmp_path / "cache").rglob("*.part"))


async def test_a_stalled_server_times_out(http_server: HttpServer, tmp_path: Path) -> None:
    policy = FetchPolicy(allow_private_addresses=True, timeout_seconds=0.3)
    with pytest.raises(InputError, match=r"sent nothing for 0.3 s \(timed out\)"):
        await fetcher(tmp_path, policy).fetch(UrlSource(http_server.url("/stall")), lambda p: None)


async def test_files_over_the_limit_are_refused_before_downloading(
    http_server: HttpServer, tmp_path: Path
) -> None:
    url = http_server.add("huge.bin", b"h" * (3 * 1024 * 1024))
    policy = FetchPolicy(allow_private_addresses=True, max_download_mb=1)
    with pytest.raises(InputError, match=r"more than inputs\.max_download_mb"):
        await fetcher(tmp_path, policy).fetch(UrlSource(url), lambda p: None)
    assert not list((tmp_path / "cache").rglob("huge.bin*"))


async def test_a_second_fetch_comes_from_the_cache(http_server: HttpServer, tmp_path: Path) -> None:
    url = http_server.add("corpus.txt", b"text\n" * 1000)
    f = fetcher(tmp_path)
    first = await f.fetch(UrlSource(url), lambda p: None)
    sent = http_server.served.bytes_sent
    second = await f.fetch(UrlSource(url), lambda p: None)
    assert first == second and http_server.served.bytes_sent == sent


async def test_a_hostile_content_disposition_name_is_tamed(
    http_server: HttpServer, tmp_path: Path
) -> None:
    path = await fetcher(tmp_path).fetch(UrlSource(http_server.url("/named")), lambda p: None)
    assert path.name == "evil name.txt" and path.is_relative_to(tmp_path / "cache")
    extended = await fetcher(tmp_path).fetch(
        UrlSource(http_server.url("/named-utf8")), lambda p: None
    )
    assert extended.name == "résumé.txt" and extended.read_bytes() == b"utf-8 named"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9/x", "127.0.0.1, an address on this machine"),
        ("http://10.1.2.3/x", "10.1.2.3, an address on this machine or a private network"),
        ("http://169.254.169.254/latest", "169.254.169.254"),
        ("http://[::1]/x", "::1"),
        ("http://localhost:8080/x", "localhost is a local address"),
        ("http://metadata.google.internal/x", "is a cloud metadata service"),
        ("http://user:pw@example.org/x", "user name or password"),
    ],
)
def test_internal_addresses_are_refused_by_default(url: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_url(url, FetchPolicy())


def test_allowed_hosts_limit_urls() -> None:
    policy = FetchPolicy(allowed_url_hosts=("example.org",))
    assert check_url("https://data.example.org/a", policy) == "data.example.org"
    with pytest.raises(InputError, match=r"evil.com is not in inputs.allowed_url_hosts"):
        check_url("https://evil.com/a", policy)


def test_private_address_rules() -> None:
    assert is_private_address("192.168.1.1") and is_private_address("::ffff:127.0.0.1")
    assert not is_private_address("8.8.8.8")


def test_file_names() -> None:
    assert filename_for("https://x.org/data/v%201.mp4?x=1", None) == "v 1.mp4"
    assert filename_for("https://x.org/", None) == "download"
    assert filename_for("https://x.org/a", "../résumé.txt") == "résumé.txt"


def test_download_progress_text() -> None:
    progress = download_progress("a.bin", 5 * 1024**2, 10 * 1024**2, 0, 2.0)
    assert progress.message == "downloading a.bin: 5.0 of 10.0 MB · 2.5 MB/s"
    assert progress.fraction == 0.5 and progress.eta_s == pytest.approx(2.0)


# --------------------------------------------------------------------------------- Drive


async def test_a_drive_file_is_fetched_and_cached(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path, seen: list[Progress]
) -> None:
    folder = drive_server.add_folder("data")
    file_id = drive_server.add_file("corpus.spacy", b"d" * 50_000, parent_id=folder)
    f = fetcher(tmp_path, drive=drive_client)
    path = await f.fetch(DriveSource(file_id), seen.append)
    assert path.read_bytes() == b"d" * 50_000 and path.name == "corpus.spacy"
    before = drive_server.download_bytes_sent
    assert await f.fetch(DriveSource(file_id), seen.append) == path
    assert drive_server.download_bytes_sent == before


async def test_a_drive_folder_is_fetched_recursively(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    top = drive_server.add_folder("project")
    sub = drive_server.add_folder("assets", parent_id=top)
    drive_server.add_file("project.yml", b"title: x", parent_id=top)
    drive_server.add_file("train.jsonl", b"{}", parent_id=sub)
    path = await fetcher(tmp_path, drive=drive_client).fetch(DriveSource(top), lambda p: None)
    assert (path / "project.yml").read_bytes() == b"title: x"
    assert (path / "assets" / "train.jsonl").read_bytes() == b"{}"


async def test_videos_beside_a_drive_slp_come_with_it(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    folder = drive_server.add_folder("session")
    labels = drive_server.add_file("labels.slp", b"HDF...C:/data/fly1.mp4...", parent_id=folder)
    drive_server.add_file("fly1.mp4", b"video", parent_id=folder)
    drive_server.add_file("other.mp4", b"unrelated", parent_id=folder)
    path = await fetcher(tmp_path, drive=drive_client).fetch(DriveSource(labels), lambda p: None)
    assert (path.parent / "fly1.mp4").read_bytes() == b"video"
    assert not (path.parent / "other.mp4").exists()


async def test_a_drive_file_the_credentials_cannot_read_is_explained(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    secret = drive_server.add_file("private.bin", b"p")
    drive_server.deny(secret, 403)
    with pytest.raises(InputError, match="the Drive credentials cannot read it"):
        await fetcher(tmp_path, drive=drive_client).fetch(DriveSource(secret), lambda p: None)


def test_drive_links_without_credentials_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Drive links need Drive credentials"):
        fetcher(tmp_path).check(DriveSource("1" * 25))


# ------------------------------------------------------------- Drive: every byte counts

MB = 1024 * 1024


async def test_a_video_beside_drive_labels_counts_against_the_limit_on_its_own(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    folder = drive_server.add_folder("session")
    labels = drive_server.add_file("labels.slp", b"HDF...fly1.mp4...", parent_id=folder)
    drive_server.add_file("fly1.mp4", b"v" * (3 * MB // 2), parent_id=folder)
    policy = FetchPolicy(allow_private_addresses=True, max_download_mb=1)
    f = fetcher(tmp_path, policy, drive_client)
    with pytest.raises(InputError) as refused:
        await f.fetch(DriveSource(labels), lambda p: None)
    assert str(refused.value) == (
        "drive:fly1.mp4: it is 1.5 MB, more than inputs.max_download_mb (1 MB)"
    )
    assert drive_server.download_bytes_sent < MB
    assert not any(p.name.startswith("fly1.mp4") for p in (tmp_path / "cache").rglob("*"))


async def test_videos_beside_drive_labels_count_against_the_limit_together(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    folder = drive_server.add_folder("session")
    content = b"HDF...fly1.mp4...fly2.mp4..."
    labels = drive_server.add_file("labels.slp", content, parent_id=folder)
    drive_server.add_file("fly1.mp4", b"1" * (MB // 2), parent_id=folder)
    drive_server.add_file("fly2.mp4", b"2" * (MB // 2), parent_id=folder)
    policy = FetchPolicy(allow_private_addresses=True, max_download_mb=1)
    with pytest.raises(InputError) as refused:
        await fetcher(tmp_path, policy, drive_client).fetch(DriveSource(labels), lambda p: None)
    assert str(refused.value) == (
        "drive:fly2.mp4: with labels.slp and the videos beside it, it comes to more than "
        "inputs.max_download_mb (1 MB)"
    )
    assert drive_server.download_bytes_sent == len(content) + MB // 2
    # The labels were not kept as a whole input: with room enough, the videos come too.
    roomy = FetchPolicy(allow_private_addresses=True, max_download_mb=2)
    path = await fetcher(tmp_path, roomy, drive_client).fetch(DriveSource(labels), lambda p: None)
    assert (path.parent / "fly2.mp4").read_bytes() == b"2" * (MB // 2)


async def test_a_drive_file_without_a_size_is_cut_off_at_the_limit(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    file_id = drive_server.add_file("big.bin", b"b" * (2 * MB))
    # As Drive lists a file it reports no size for: only the bytes as they come tell.
    item = dataclasses.replace(drive_client.get(file_id), size=None, md5=None)
    dest = tmp_path / "big.bin"
    with pytest.raises(DriveError) as refused:
        drive_client.download_item(item, dest, max_bytes=MB)
    assert refused.value.reason == (
        "big.bin is over 1.0 MB, the most inputs.max_download_mb leaves for it"
    )
    assert list(tmp_path.glob("big.bin*")) == []

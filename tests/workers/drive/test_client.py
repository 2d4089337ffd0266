"""workers.drive.client against a loopback Drive v2 server: real PyDrive2, googleapiclient, HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tests.loopback.drive_server import (
    FOLDER_MIME,
    DriveServer,
    RequestRecord,
    write_service_account_key,
)
from workers.drive.client import (
    DriveClient,
    DriveFile,
    DriveSettings,
    parse_drive_ref,
)
from workers.errors import (
    DriveAuthError,
    DriveError,
    DrivePermissionError,
    DriveQuotaError,
    DriveSetupError,
)

MIB = 1024 * 1024
FILE_ID = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"


def _write(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def _client(settings: DriveSettings, **changes: object) -> DriveClient:
    values = {**settings.__dict__, **changes}
    return DriveClient(DriveSettings(**values))


class Recorder:
    """A progress callback that remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))

    def assert_monotonic_to(self, total: int) -> None:
        done = [call[0] for call in self.calls]
        assert done == sorted(done)
        assert len(set(done)) == len(done)
        assert self.calls[-1] == (total, total)
        assert all(call[1] == total for call in self.calls)


def _is_status_query(record: RequestRecord) -> bool:
    return record.method == "PUT" and (record.content_range or "").startswith("bytes */")


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"https://drive.google.com/file/d/{FILE_ID}/view?usp=sharing", FILE_ID),
        (f"https://drive.google.com/file/d/{FILE_ID}/view", FILE_ID),
        (f"https://drive.google.com/file/d/{FILE_ID}", FILE_ID),
        (f"https://drive.google.com/file/u/1/d/{FILE_ID}/view", FILE_ID),
        (f"https://drive.google.com/open?id={FILE_ID}", FILE_ID),
        (f"https://drive.google.com/uc?id={FILE_ID}&export=download", FILE_ID),
        (f"https://drive.google.com/uc?export=download&id={FILE_ID}", FILE_ID),
        (f"https://drive.usercontent.google.com/download?id={FILE_ID}&export=download", FILE_ID),
        (f"https://drive.google.com/drive/folders/{FILE_ID}?usp=sharing", FILE_ID),
        (f"https://drive.google.com/drive/u/0/folders/{FILE_ID}", FILE_ID),
        (f"https://drive.google.com/drive/mobile/folders/{FILE_ID}", FILE_ID),
        (f"https://docs.google.com/document/d/{FILE_ID}/edit?usp=sharing", FILE_ID),
        (f"https://docs.google.com/spreadsheets/d/{FILE_ID}/edit#gid=0", FILE_ID),
        (f"https://docs.google.com/presentation/d/{FILE_ID}/", FILE_ID),
        (f"drive.google.com/file/d/{FILE_ID}/view", FILE_ID),
        (f"  <https://drive.google.com/open?id={FILE_ID}>  ", FILE_ID),
        (FILE_ID, FILE_ID),
        ("0AHtsq3Bt8kHfUk9PVA", "0AHtsq3Bt8kHfUk9PVA"),
        ("", None),
        ("hello", None),
        ("data/videos/session1.mp4", None),
        ("https://example.com/file/d/" + FILE_ID + "/view", None),
        (f"https://example.com/open?id={FILE_ID}", None),
        ("https://drive.google.com/drive/my-drive", None),
        ("https://drive.google.com/open?id=short", None),
        (f"ftp://drive.google.com/file/d/{FILE_ID}", None),
        ("https://drive.google.com:99999/x", None),
    ],
)
def test_parse_drive_ref(text: str, expected: str | None) -> None:
    assert parse_drive_ref(text) == expected


def test_settings_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="chunk_mb"):
        DriveSettings(auth="colab", chunk_mb=0)
    with pytest.raises(ValueError, match="retries"):
        DriveSettings(auth="colab", retries=-1)


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


def test_module_imports_without_the_drive_extra() -> None:
    script = (
        "import sys; sys.modules['pydrive2'] = None\n"
        "import workers.drive.client as gdrive\n"
        f"assert gdrive.parse_drive_ref('{FILE_ID}') == '{FILE_ID}'\n"
        "try:\n"
        "    gdrive.DriveClient(gdrive.DriveSettings(auth='colab')).connect()\n"
        "except gdrive.DriveError as error:\n"
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


# ------------------------------------------------------------------------- authentication


def test_service_account_connects_through_the_loopback_token_endpoint(
    drive_server: DriveServer, drive_client: DriveClient
) -> None:
    assert drive_server.token_grants == 1
    assert drive_client.account == "colabot-test@colabot-tests.iam.gserviceaccount.com"
    assert drive_client.list_folder("root") == []
    paths = [record.path for record in drive_server.requests()]
    assert paths[0] == "/token"
    assert all(record.status != 401 for record in drive_server.requests())


def test_missing_key_file_names_the_setting(drive_settings: DriveSettings, tmp_path: Path) -> None:
    client = _client(drive_settings, service_account_file=tmp_path / "nope.json")
    with pytest.raises(DriveAuthError) as caught:
        client.connect()
    assert caught.value.setting == "drive.service_account_file"
    assert "nope.json" in str(caught.value)


def test_unset_key_file_names_the_setting(drive_settings: DriveSettings) -> None:
    with pytest.raises(DriveAuthError, match="is not set") as caught:
        _client(drive_settings, service_account_file=None).connect()
    assert caught.value.setting == "drive.service_account_file"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"type": "authorized_user"}), "not a service account key"),
        (json.dumps({"type": "service_account", "client_email": "a@b"}), "lacks"),
    ],
)
def test_corrupt_key_file_names_the_setting(
    drive_settings: DriveSettings, tmp_path: Path, content: str, message: str
) -> None:
    key_file = tmp_path / "corrupt.json"
    key_file.write_text(content)
    with pytest.raises(DriveAuthError, match=message) as caught:
        _client(drive_settings, service_account_file=key_file).connect()
    assert caught.value.setting == "drive.service_account_file"


def test_unloadable_private_key_is_not_echoed(
    drive_settings: DriveSettings, service_account_file: Path, tmp_path: Path
) -> None:
    data = json.loads(service_account_file.read_text())
    data["private_key"] = (
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ1dC1icm9rZW4=\n-----END PRIVATE KEY-----\n"
    )
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(DriveAuthError, match="cannot be loaded") as caught:
        _client(drive_settings, service_account_file=broken).connect()
    assert caught.value.setting == "drive.service_account_file"
    assert "c2VjcmV0" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_key_the_server_does_not_trust_is_refused(
    drive_settings: DriveSettings, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger.json"
    write_service_account_key(stranger)
    with pytest.raises(DriveAuthError, match="invalid_grant") as caught:
        _client(drive_settings, service_account_file=stranger).connect()
    assert caught.value.setting == "drive.service_account_file"
    assert "PRIVATE KEY" not in str(caught.value)


def test_unknown_auth_method(drive_settings: DriveSettings) -> None:
    with pytest.raises(DriveAuthError, match="unknown method") as caught:
        _client(drive_settings, auth="password").connect()
    assert caught.value.setting == "drive.auth"


def test_colab_auth_outside_colab_says_so(drive_settings: DriveSettings) -> None:
    with pytest.raises(DriveAuthError, match="only inside a Google Colab notebook") as caught:
        _client(drive_settings, auth="colab").connect()
    assert caught.value.setting == "drive.auth"


def test_colab_sign_in_uses_application_default_credentials(
    drive_server: DriveServer,
    drive_settings: DriveSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stands in for the Colab runtime only: its sign-in leaves an authorized-user file behind
    # for application-default credentials; everything after that is the real libraries.
    adc_file = drive_server.new_authorized_user(tmp_path / "adc.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc_file))
    sign_ins: list[str] = []
    colab_auth = types.ModuleType("google.colab.auth")
    colab_auth.authenticate_user = lambda: sign_ins.append("signed in")  # type: ignore[attr-defined]
    colab = types.ModuleType("google.colab")
    colab.auth = colab_auth  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.auth", colab_auth)
    drive_server.token_lifetime_s = 60
    client = _client(drive_settings, auth="colab")
    folder = client.ensure_folder("from-colab", "root")
    grants = drive_server.token_grants
    client.get(folder.id)
    client.list_folder(folder.id)
    assert sign_ins == ["signed in"]
    assert drive_server.file(folder.id).owner == "person@example.com"
    assert drive_server.token_grants >= grants + 2
    assert all(record.status != 401 for record in drive_server.requests())


def test_authorized_user_token_file(
    drive_server: DriveServer, drive_settings: DriveSettings, tmp_path: Path
) -> None:
    token_file = drive_server.new_authorized_user(tmp_path / "token.json")
    client = _client(drive_settings, auth="oauth_token_file", token_file=token_file)
    folder = client.ensure_folder("people", "root")
    assert client.account is None
    assert drive_server.file(folder.id).owner == "person@example.com"


def test_oauth2client_saved_credentials_file(
    drive_server: DriveServer, drive_settings: DriveSettings, tmp_path: Path
) -> None:
    saved = {
        "_module": "oauth2client.client",
        "_class": "OAuth2Credentials",
        "access_token": None,
        "client_id": "colabot-client",
        "client_secret": "pydrive-secret",
        "refresh_token": drive_server.issue_refresh_token("colabot-client", "pydrive-secret"),
        "token_expiry": None,
        "token_uri": "https://oauth2.googleapis.com/token",
        "user_agent": None,
        "invalid": False,
    }
    token_file = tmp_path / "credentials.json"
    token_file.write_text(json.dumps(saved))
    client = _client(drive_settings, auth="oauth_token_file", token_file=token_file)
    assert client.list_folder("root") == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("nonsense", "not valid JSON"),
        (json.dumps({"type": "service_account"}), "not an authorized-user"),
        (json.dumps({"type": "authorized_user", "client_id": "x"}), "lacks client_secret"),
        (
            json.dumps(
                {
                    "type": "authorized_user",
                    "client_id": "x",
                    "client_secret": "y",
                    "refresh_token": "",
                }
            ),
            "no refresh token",
        ),
    ],
)
def test_bad_token_file_names_the_setting(
    drive_settings: DriveSettings, tmp_path: Path, content: str, message: str
) -> None:
    token_file = tmp_path / "token.json"
    token_file.write_text(content)
    client = _client(drive_settings, auth="oauth_token_file", token_file=token_file)
    with pytest.raises(DriveAuthError, match=message) as caught:
        client.connect()
    assert caught.value.setting == "drive.token_file"


def test_refresh_token_refused_names_the_setting(
    drive_settings: DriveSettings, tmp_path: Path
) -> None:
    token_file = tmp_path / "token.json"
    token_file.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "colabot-client",
                "client_secret": "guess",
                "refresh_token": "1//revoked",
            }
        )
    )
    client = _client(drive_settings, auth="oauth_token_file", token_file=token_file)
    with pytest.raises(DriveAuthError, match="refused") as caught:
        client.connect()
    assert caught.value.setting == "drive.token_file"


def test_tokens_close_to_expiry_are_refreshed_before_each_operation(
    drive_server: DriveServer, drive_settings: DriveSettings, tmp_path: Path
) -> None:
    # An access token living one minute is inside the refresh margin from the start, the way
    # a Colab sign-in looks an hour in; a user login's expiry must not hand PyDrive2 an
    # expired token (it would fall back to an interactive browser sign-in).
    drive_server.token_lifetime_s = 60
    token_file = drive_server.new_authorized_user(tmp_path / "token.json")
    client = _client(drive_settings, auth="oauth_token_file", token_file=token_file)
    client.connect()
    grants = drive_server.token_grants
    folder = client.ensure_folder("f", "root")
    client.get(folder.id)
    client.list_folder(folder.id)
    assert drive_server.token_grants >= grants + 3
    assert all(record.status != 401 for record in drive_server.requests())


def test_revoked_access_token_is_replaced_transparently(
    drive_server: DriveServer, drive_client: DriveClient, drive_root_folder: DriveFile
) -> None:
    drive_server.revoke_tokens()
    assert drive_client.get(drive_root_folder.id) == drive_root_folder
    assert drive_server.token_grants == 2


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


# -------------------------------------------------------------------------------- uploads


def test_upload_small_file(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    data = _write(tmp_path / "metrics.json", 1000)
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
    data = _write(tmp_path / "model.ckpt", size)
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
    _write(tmp_path / "a.bin", 100)
    first = drive_client.upload(tmp_path / "a.bin", drive_root_folder.id, title="latest.bin")
    newer = _write(tmp_path / "b.bin", 1500)
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
    data = _write(tmp_path / "data.bin", size)
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
    data = _write(tmp_path / "video.mp4", size)
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
    assert _is_status_query(puts[dropped + 1])
    content_range = puts[dropped + 2].content_range
    assert content_range is not None
    assert content_range.startswith(f"bytes {MIB + 300_000}-")
    resent = drive_server.upload_bytes_received(uploaded.id) - size
    assert 0 <= resent <= drive_client.settings.chunk_bytes
    progress.assert_monotonic_to(size)


def test_upload_survives_a_token_revoked_between_chunks(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    # oauth2client answers the 401 by refreshing and re-sending the same chunk body.
    data = _write(tmp_path / "long.bin", 3 * MIB)

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
    data = _write(tmp_path / "slow.bin", size)
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
    _write(tmp_path / "doomed.bin", 2 * MIB + 10)
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
    _write(tmp_path / "doomed.bin", 2 * MIB)
    drive_server.drop_upload_after(0, count=1000)
    with pytest.raises(DriveError, match="connection failed"):
        drive_client.upload(tmp_path / "doomed.bin", drive_root_folder.id)
    assert drive_client.list_folder(drive_root_folder.id) == []


def test_upload_over_quota(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    drive_server.quota_bytes = 1000
    _write(tmp_path / "big.bin", 5000)
    with pytest.raises(DriveQuotaError, match="storageQuotaExceeded") as caught:
        drive_client.upload(tmp_path / "big.bin", drive_root_folder.id)
    assert caught.value.status == 403
    assert "The user's Drive storage quota has been exceeded." in str(caught.value)
    assert drive_client.list_folder(drive_root_folder.id) == []


def test_a_service_account_cannot_store_files_outside_a_shared_drive(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    folder = drive_server.add_folder("shared with the service account")  # a My Drive folder
    _write(tmp_path / "model.zip", 1000)
    with pytest.raises(DriveSetupError) as caught:
        drive_client.upload(tmp_path / "model.zip", folder)
    text = str(caught.value)
    assert "a service account has no storage of its own" in text and "shared drive" in text
    assert "Service Accounts do not have storage quota" in text  # Google's own words too
    assert drive_server.children(folder) == []


def test_rate_limit_is_retried(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    data = _write(tmp_path / "x.bin", 10)
    drive_server.fail_next("POST", "^/upload/", 403, reason="userRateLimitExceeded")
    drive_server.fail_next("GET", "^/drive/v2/files$", 429, reason="rateLimitExceeded")
    uploaded = drive_client.upload(tmp_path / "x.bin", drive_root_folder.id)
    assert drive_server.content(uploaded.id) == data


def test_rate_limit_that_persists_is_a_quota_error(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    _write(tmp_path / "x.bin", 10)
    drive_server.fail_next("POST", "^/upload/", 403, reason="userRateLimitExceeded", count=100)
    with pytest.raises(DriveQuotaError, match="userRateLimitExceeded"):
        drive_client.upload(tmp_path / "x.bin", drive_root_folder.id)


def test_upload_into_a_folder_without_access(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    folder = drive_server.add_folder("someone else's")
    drive_server.deny(folder)
    _write(tmp_path / "x.bin", 10)
    with pytest.raises(DrivePermissionError, match="cannot read folder"):
        drive_client.upload(tmp_path / "x.bin", folder)


async def test_uploads_from_worker_threads(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    blobs = {f"part-{n}.bin": _write(tmp_path / f"part-{n}.bin", MIB + n) for n in range(3)}
    uploaded = await asyncio.gather(
        *(
            asyncio.to_thread(drive_client.upload, tmp_path / name, drive_root_folder.id)
            for name in blobs
        )
    )
    assert {item.title: drive_server.content(item.id) for item in uploaded} == blobs


# -------------------------------------------------------------------------------- sharing


def test_share_anyone_with_link(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    _write(tmp_path / "report.pdf", 300)
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


def test_share_missing_file(drive_client: DriveClient) -> None:
    with pytest.raises(DrivePermissionError, match="cannot share"):
        drive_client.share_anyone(FILE_ID)


# ------------------------------------------------------------------------ reading, errors


@pytest.mark.parametrize("status", [403, 404])
def test_get_without_access(
    drive_server: DriveServer, drive_client: DriveClient, status: int
) -> None:
    file_id = drive_server.add_file("private.bin", b"x")
    drive_server.deny(file_id, status)
    with pytest.raises(DrivePermissionError) as caught:
        drive_client.get(file_id)
    assert caught.value.status == status
    assert f"cannot read {file_id}" in str(caught.value)
    assert "share it with colabot-test@" in str(caught.value)


def test_get_unknown_id(drive_client: DriveClient) -> None:
    with pytest.raises(DrivePermissionError, match="notFound"):
        drive_client.get(FILE_ID)


def test_error_page_from_a_proxy_is_retried(
    drive_server: DriveServer, drive_client: DriveClient, drive_root_folder: DriveFile
) -> None:
    drive_server.fail_next("GET", "^/drive/v2/files$", 502, raw_body="<html>Bad Gateway</html>")
    assert drive_client.list_folder(drive_root_folder.id) == []


def test_bad_request_is_not_retried(drive_server: DriveServer, drive_client: DriveClient) -> None:
    drive_server.fail_next("GET", "^/drive/v2/files/", 400, reason="invalid", count=5)
    with pytest.raises(DriveError, match="invalid") as caught:
        drive_client.get(FILE_ID)
    assert caught.value.status == 400
    assert sum(r.fault is not None for r in drive_server.requests()) == 1


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


def test_download_without_access(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    file_id = drive_server.add_file("x.bin", b"abc")
    drive_server.deny(file_id)
    with pytest.raises(DrivePermissionError, match=f"cannot read {file_id}"):
        drive_client.download(file_id, tmp_path / "x.bin")


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


def test_download_folder_of_an_unreadable_folder(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    folder = drive_server.add_folder("locked")
    drive_server.deny(folder, 404)
    with pytest.raises(DrivePermissionError, match="cannot read folder"):
        drive_client.download_folder(folder, tmp_path / "out")


def test_server_sees_every_request_including_the_token_exchange(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    _write(tmp_path / "a.bin", 10)
    uploaded = drive_client.upload(tmp_path / "a.bin", drive_root_folder.id)
    drive_client.download(uploaded.id, tmp_path / "copy.bin")
    record = drive_server.wait_for_request(
        lambda r: r.query.get("alt") == "media" and r.status == 206, timeout=5.0
    )
    assert record.path == f"/drive/v2/files/{uploaded.id}"
    assert {r.path.split("/")[1] for r in drive_server.requests()} == {"token", "drive", "upload"}

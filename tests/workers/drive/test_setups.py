"""What real Google Drive does that a friendly server would not: service accounts own no
storage, errors carry a reason and Google's own message, token files come in Google's own
format, shortcuts and resource keys guard links, Docs have no bytes, shared drives restrict
deleting, upload sessions can be refused. The loopback server behaves as Drive is documented
to; each test failed against the client before it learnt the behaviour."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest

from tests.loopback.drive_server import (
    DEFAULT_ACCOUNT,
    DOCUMENT_MIME,
    SPREADSHEET_MIME,
    DriveServer,
)
from tests.workers.drive.helpers import QUICK
from workers.drive.client import DriveClient
from workers.drive.metadata import DriveFile
from workers.drive.settings import DriveSettings
from workers.errors import (
    DriveAuthError,
    DrivePermissionError,
    DriveQuotaError,
    DriveSetupError,
    InputError,
)
from workers.inputs.fetch import Fetcher
from workers.inputs.netpolicy import FetchPolicy
from workers.inputs.sources import classify
from workers.results.drive import DriveResults

POLICY = FetchPolicy(allow_private_addresses=True, timeout_seconds=5.0)


def client_for(settings: DriveSettings, **changes: object) -> DriveClient:
    client = DriveClient(DriveSettings(**{**settings.__dict__, **changes}), QUICK)
    client.connect()
    return client


# -------------------------------------------------------------------------- set-ups


def test_a_service_account_is_refused_a_my_drive_folder_at_the_start(
    drive_server: DriveServer, drive_client: DriveClient
) -> None:
    folder = drive_server.add_folder("results shared with the service account")
    with pytest.raises(DriveSetupError) as refused:
        DriveResults(drive_client, folder).check()
    text = str(refused.value)
    assert f"drive.folder_id {folder} is in a person's My Drive" in text
    assert "shared drive where the service account is a Content manager" in text
    assert 'drive.auth = "oauth_token_file"' in text


def test_the_start_up_check_writes_a_probe_and_names_who_writes_where(
    drive_server: DriveServer, drive_client: DriveClient, drive_root_folder: DriveFile
) -> None:
    setup = DriveResults(drive_client, drive_root_folder.id).check()
    assert setup.describe() == (
        f"service account {DEFAULT_ACCOUNT}, writing into 'colabot-tests' (a shared drive)"
    )
    probes = [f for f in drive_server.children(drive_root_folder.id, include_trashed=True)]
    assert [(f.title, f.trashed) for f in probes] == [(".colabot-write-check", True)]


def test_a_person_can_write_into_their_own_my_drive(
    drive_server: DriveServer, drive_settings: DriveSettings, tmp_path: Path
) -> None:
    token = drive_server.new_authorized_user(tmp_path / "authorized_user.json")
    client = client_for(drive_settings, auth="oauth_token_file", token_file=token)
    folder = client.ensure_folder("colabot", "root")
    setup = DriveResults(client, folder.id).check()
    assert setup.describe() == "user person@example.com, writing into 'colabot' (My Drive)"
    assert client.account is None  # nothing to share with: it is the person's own Drive


def test_googles_own_token_json_is_accepted(
    drive_server: DriveServer,
    drive_settings: DriveSettings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    refresh = drive_server.issue_refresh_token("quickstart-client", "quickstart-secret")
    # What google-auth's Credentials.to_json() writes: no "type", no token_uri needed.
    token_json = {
        "token": "ya29.expired",
        "refresh_token": refresh,
        "client_id": "quickstart-client",
        "client_secret": "quickstart-secret",
        "scopes": ["https://www.googleapis.com/auth/drive.metadata.readonly"],
        "universe_domain": "googleapis.com",
        "account": "",
        "expiry": "2026-11-30T10:00:00Z",
    }
    path = tmp_path / "token.json"
    path.write_text(json.dumps(token_json))
    caplog.set_level(logging.WARNING)
    client = client_for(drive_settings, auth="oauth_token_file", token_file=path)
    assert client.identity().email == "person@example.com"
    assert "none of them a Drive scope" in caplog.text
    assert "quickstart-secret" not in caplog.text


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("reason", "error", "words"),
    [
        ("accessNotConfigured", DriveSetupError, "the Drive API is not enabled"),
        ("insufficientPermissions", DriveAuthError, "not granted access to Drive"),
        ("downloadQuotaExceeded", DriveQuotaError, "try again in 24 hours, or make a copy"),
        ("notFound", DrivePermissionError, f"share it with {DEFAULT_ACCOUNT}"),
    ],
)
def test_each_reason_has_its_own_error_with_googles_message(
    drive_server: DriveServer,
    drive_client: DriveClient,
    reason: str,
    error: type[Exception],
    words: str,
) -> None:
    file_id = drive_server.add_file("data.bin", b"x")
    drive_server.fail_next("GET", f"/drive/v2/files/{file_id}$", 403, reason=reason, count=10)
    before = len(drive_server.requests())
    with pytest.raises(error) as caught:
        drive_client.get(file_id)
    assert words in str(caught.value)
    if reason == "accessNotConfigured":
        assert "https://console.developers.google.com/apis/api/drive.googleapis.com" in str(
            caught.value
        )
    assert len(drive_server.requests()) - before == 1, "a 403 that is not a rate limit is final"


def test_an_upload_session_refused_with_a_4xx_starts_again(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    (tmp_path / "run.zip").write_bytes(data)
    drive_server.fail_upload_chunks(400, count=1, reason="badRequest")
    uploaded = drive_client.upload(tmp_path / "run.zip", drive_root_folder.id)
    assert drive_server.content(uploaded.id) == data
    assert len(drive_server.sessions()) == 2


# --------------------------------------------------------------- links and Docs


async def test_a_shortcut_is_followed_and_a_resource_key_is_sent(
    drive_server: DriveServer,
    drive_settings: DriveSettings,
    tmp_path: Path,
) -> None:
    token = drive_server.new_authorized_user(tmp_path / "user.json")
    client = client_for(drive_settings, auth="oauth_token_file", token_file=token)
    owner_file = drive_server.add_file("labels.slp", b"SLP" * 100, resource_key=True)
    key = drive_server.resource_key(owner_file)
    shortcut = drive_server.add_shortcut("labels (shortcut)", owner_file)
    fetcher = Fetcher(POLICY, tmp_path / "cache", lambda: client)
    without_key = classify(f"https://drive.google.com/file/d/{owner_file}/view")
    with pytest.raises(InputError, match="notFound"):
        await fetcher.fetch(without_key, lambda p: None)  # type: ignore[arg-type]
    link = classify(f"https://drive.google.com/file/d/{owner_file}/view?resourcekey={key}")
    path = await fetcher.fetch(link, lambda p: None)  # type: ignore[arg-type]
    assert path.read_bytes() == b"SLP" * 100
    through = await fetcher.fetch(classify(f"drive:{shortcut}"), lambda p: None)  # type: ignore[arg-type]
    assert through.read_bytes() == b"SLP" * 100 and through.name == "labels.slp"
    keyed = [r for r in drive_server.requests() if r.path.endswith(owner_file)]
    assert keyed


async def test_google_docs_are_exported_where_a_kind_can_use_them(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    doc = drive_server.add_file("notes", mime_type=DOCUMENT_MIME, text="One text.\nAnother.\n")
    sheet = drive_server.add_file(
        "texts", mime_type=SPREADSHEET_MIME, text="id,text\na,Grace Lee went to Oslo.\n"
    )
    slides = drive_server.add_file("talk", mime_type="application/vnd.google-apps.presentation")
    fetcher = Fetcher(POLICY, tmp_path / "cache", lambda: drive_client)
    as_text = await fetcher.fetch(classify(f"drive:{doc}"), lambda p: None)  # type: ignore[arg-type]
    assert as_text.name == "notes.txt" and as_text.read_text() == "One text.\nAnother.\n"
    as_rows = await fetcher.fetch(classify(f"drive:{sheet}"), lambda p: None)  # type: ignore[arg-type]
    assert as_rows.name == "texts.jsonl"
    assert json.loads(as_rows.read_text()) == {"id": "a", "text": "Grace Lee went to Oslo."}
    with pytest.raises(InputError) as refused:
        await fetcher.fetch(classify(f"drive:{slides}"), lambda p: None)  # type: ignore[arg-type]
    assert re.search(
        r"talk is a Google Presentation file, which has no file content", str(refused.value)
    )
    assert "Google Docs (as .txt) and Google Sheets (as .csv" in str(refused.value)


# ------------------------------------------------------------------ shared drives


def test_a_content_manager_moves_old_checkpoints_to_the_trash(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    backend = DriveResults(drive_client, drive_root_folder.id)
    for step in (1, 2, 3):
        checkpoint = tmp_path / f"step-{step}.json"
        checkpoint.write_text(str(step))
        location = backend.sync_checkpoint(5, checkpoint)
    job = next(f for f in drive_server.children(drive_root_folder.id) if f.title == "job-5")
    folder = next(f for f in drive_server.children(job.id) if f.title == "checkpoint")
    kept = drive_server.children(folder.id)
    assert [f.title for f in kept] == ["step-3.json"] and kept[0].id == location
    trashed = [f for f in drive_server.children(folder.id, include_trashed=True) if f.trashed]
    assert sorted(f.title for f in trashed) == ["step-1.json", "step-2.json"]


def test_a_member_who_may_not_even_trash_keeps_the_old_checkpoint_with_a_warning(
    drive_server: DriveServer,
    drive_client: DriveClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    drive = drive_server.add_shared_drive("Contributors", {DEFAULT_ACCOUNT: "writer"})
    backend = DriveResults(drive_client, drive)
    caplog.set_level(logging.WARNING)
    for step in (1, 2):
        checkpoint = tmp_path / f"step-{step}.json"
        checkpoint.write_text(str(step))
        backend.sync_checkpoint(6, checkpoint)
    assert "an older checkpoint of job 6 stays in Drive" in caplog.text

"""The loopback Drive server on its own: PyDrive2's own API and the raw protocol against it."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import httplib2
import pytest
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload
from oauth2client.client import HttpAccessTokenRefreshError
from oauth2client.service_account import ServiceAccountCredentials
from pydrive2.auth import GoogleAuth
from pydrive2.drive import GoogleDrive

from tests.loopback.drive_server import (
    BROWSER_EXPORT_ROOT,
    DEFAULT_ACCOUNT,
    DOCUMENT_MIME,
    DriveServer,
)

SCOPE = "https://www.googleapis.com/auth/drive"


def _authorized_http(server: DriveServer, key_file: Path) -> Any:
    credentials = ServiceAccountCredentials.from_json_keyfile_name(
        str(key_file), scopes=[SCOPE], token_uri=server.token_url
    )
    http = httplib2.Http(timeout=10)
    # Resumable uploads answer 308 without a Location; it is not a redirect.
    http.redirect_codes = http.redirect_codes - {308}
    return credentials.authorize(http)


def _service(server: DriveServer, http: Any) -> Any:
    document = json.loads(get_static_doc("drive", "v2"))
    document["rootUrl"] = server.url
    return build_from_document(document, http=http)


def _pydrive(server: DriveServer, key_file: Path) -> GoogleDrive:
    key = {**json.loads(key_file.read_text()), "token_uri": server.token_url}
    gauth = GoogleAuth(
        settings={"client_config_backend": "service", "service_config": {"client_json_dict": key}}
    )
    gauth.ServiceAuth()
    gauth.service = _service(server, gauth.http)
    return GoogleDrive(gauth)


@pytest.fixture
def managed_drive(drive_server: DriveServer) -> str:
    """A shared drive where the test's service account is a Manager."""
    return drive_server.add_shared_drive("Managed", {DEFAULT_ACCOUNT: "organizer"})


def test_pydrive2_file_round_trip(
    drive_server: DriveServer, service_account_file: Path, tmp_path: Path, managed_drive: str
) -> None:
    drive = _pydrive(drive_server, service_account_file)
    assert drive.GetAbout()["rootFolderId"] == drive_server.root_id
    created = drive.CreateFile({"title": "hello.txt", "parents": [{"id": managed_drive}]})
    created.SetContentString("hello, drive")
    created.Upload()
    again = drive.CreateFile({"id": created["id"]})
    assert again.GetContentString() == "hello, drive"
    again.GetContentFile(str(tmp_path / "hello.txt"))
    assert (tmp_path / "hello.txt").read_text() == "hello, drive"
    listed = drive.ListFile({"q": "title = 'hello.txt' and trashed = false"}).GetList()
    assert [item["id"] for item in listed] == [created["id"]]
    again.InsertPermission({"type": "anyone", "value": "anyone", "role": "reader"})
    assert drive_server.file(created["id"]).shared
    again.Trash()
    assert drive.ListFile({"q": "title = 'hello.txt' and trashed = false"}).GetList() == []
    again.Delete()
    assert created["id"] not in {record.id for record in drive_server.files()}


def test_multipart_upload(
    drive_server: DriveServer, service_account_file: Path, managed_drive: str
) -> None:
    data = b"line\r\n\r\nbreaks\n\n--" + os.urandom(5000) + b"\r\n"
    service = _service(drive_server, _authorized_http(drive_server, service_account_file))
    media = MediaIoBaseUpload(io.BytesIO(data), mimetype="application/octet-stream")
    body = {"title": "m.bin", "parents": [{"id": managed_drive}]}
    created = service.files().insert(body=body, media_body=media, supportsAllDrives=True).execute()
    assert created["title"] == "m.bin"
    assert drive_server.content(created["id"]) == data
    uploads = [r for r in drive_server.requests() if r.path.startswith("/upload/")]
    assert uploads[0].query["uploadType"] == "multipart"


def test_resumable_protocol_by_hand(
    drive_server: DriveServer, service_account_file: Path, managed_drive: str
) -> None:
    http = _authorized_http(drive_server, service_account_file)
    data = os.urandom(1000)
    response, _ = http.request(
        drive_server.url + "upload/drive/v2/files?uploadType=resumable&supportsAllDrives=true",
        "POST",
        body=json.dumps({"title": "r.bin", "parents": [{"id": managed_drive}]}),
        headers={"Content-Type": "application/json", "X-Upload-Content-Length": "1000"},
    )
    session = response["location"]
    response, _ = http.request(
        session, "PUT", body=data[:600], headers={"Content-Range": "bytes 0-599/1000"}
    )
    assert (response.status, response["range"]) == (308, "bytes=0-599")
    assert drive_server.children(managed_drive) == []
    response, _ = http.request(session, "PUT", body=b"", headers={"Content-Range": "bytes */1000"})
    assert (response.status, response["range"]) == (308, "bytes=0-599")
    response, content = http.request(
        session, "PUT", body=data[600:], headers={"Content-Range": "bytes 600-999/1000"}
    )
    assert response.status == 200
    file_id = json.loads(content)["id"]
    assert drive_server.content(file_id) == data
    response, content = http.request(session, "PUT", headers={"Content-Range": "bytes */1000"})
    assert (response.status, json.loads(content)["id"]) == (200, file_id)


def test_errors_are_shaped_like_googles(
    drive_server: DriveServer, service_account_file: Path
) -> None:
    http = _authorized_http(drive_server, service_account_file)
    response, content = http.request(drive_server.url + "drive/v2/files/nope")
    error = json.loads(content)["error"]
    assert (response.status, error["code"], error["errors"][0]["reason"]) == (404, 404, "notFound")
    response, content = httplib2.Http().request(drive_server.url + "drive/v2/files")
    assert response.status == 401
    assert json.loads(content)["error"]["errors"][0]["reason"] == "authError"


def test_unsupported_query_and_range_past_end(
    drive_server: DriveServer, service_account_file: Path
) -> None:
    http = _authorized_http(drive_server, service_account_file)
    response, _ = http.request(drive_server.url + "drive/v2/files?q=title+contains+%27x%27")
    assert response.status == 400
    file_id = drive_server.add_file("small.bin", b"12345")
    response, _ = http.request(
        f"{drive_server.url}drive/v2/files/{file_id}?alt=media", headers={"Range": "bytes=5-9"}
    )
    assert (response.status, response["content-range"]) == (416, "bytes */5")


def test_assertion_for_another_audience_is_refused(
    drive_server: DriveServer, service_account_file: Path
) -> None:
    credentials = ServiceAccountCredentials.from_json_keyfile_name(
        str(service_account_file), scopes=[SCOPE], token_uri=drive_server.token_url + "?other"
    )
    with pytest.raises(HttpAccessTokenRefreshError, match="invalid_grant"):
        credentials.refresh(httplib2.Http())
    assert drive_server.token_grants == 0


def test_wait_for_request(drive_server: DriveServer, service_account_file: Path) -> None:
    http = _authorized_http(drive_server, service_account_file)
    http.request(drive_server.url + "drive/v2/about")
    found = drive_server.wait_for_request(lambda r: r.path == "/drive/v2/about", timeout=5.0)
    assert found.status == 200
    with pytest.raises(TimeoutError):
        drive_server.wait_for_request(lambda r: r.path == "/never", timeout=0.05)


def test_the_metadata_server_answers_as_oauth2client_asks(drive_server: DriveServer) -> None:
    http = httplib2.Http(timeout=10)
    root = f"http://{drive_server.metadata_host}"
    flavor = {"Metadata-Flavor": "Google"}
    accounts = f"{root}/computeMetadata/v1/instance/service-accounts"
    response, _ = http.request(f"{accounts}/default/?recursive=True", headers=flavor)
    assert response.status == 404  # nobody signed in to Colab yet
    email = drive_server.new_colab_user()
    response, _ = http.request(root + "/")
    assert response.status == 403  # the header is required
    response, _ = http.request(root + "/", headers=flavor)
    assert (response.status, response["metadata-flavor"]) == (200, "Google")
    response, content = http.request(f"{accounts}/default/?recursive=True", headers=flavor)
    # Exactly this content type: oauth2client parses the body as JSON only then.
    assert (response.status, response["content-type"]) == (200, "application/json")
    assert json.loads(content) == {"aliases": ["default"], "email": email, "scopes": [SCOPE]}
    response, content = http.request(f"{accounts}/{email}/token", headers=flavor)
    token = json.loads(content)
    assert token["expires_in"] == drive_server.token_lifetime_s
    response, _ = http.request(f"{accounts}/other@example.com/token", headers=flavor)
    assert response.status == 404
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    response, content = http.request(drive_server.url + "drive/v2/about", headers=auth)
    assert json.loads(content)["user"]["emailAddress"] == email


def test_status_query_faults_leave_chunks_alone(
    drive_server: DriveServer, service_account_file: Path, managed_drive: str
) -> None:
    http = _authorized_http(drive_server, service_account_file)
    response, _ = http.request(
        drive_server.url + "upload/drive/v2/files?uploadType=resumable&supportsAllDrives=true",
        "POST",
        body=json.dumps({"title": "q.bin", "parents": [{"id": managed_drive}]}),
        headers={"Content-Type": "application/json", "X-Upload-Content-Length": "10"},
    )
    session = response["location"]
    drive_server.fail_status_queries(503, count=1)
    response, _ = http.request(
        session, "PUT", body=b"01234", headers={"Content-Range": "bytes 0-4/10"}
    )
    assert (response.status, response["range"]) == (308, "bytes=0-4")
    response, content = http.request(session, "PUT", headers={"Content-Range": "bytes */10"})
    assert response.status == 503
    assert json.loads(content)["error"]["errors"][0]["reason"] == "backendError"
    response, _ = http.request(session, "PUT", headers={"Content-Range": "bytes */10"})
    assert (response.status, response["range"]) == (308, "bytes=0-4")


def test_a_shared_drive_for_the_organisation_only_refuses_link_sharing(
    drive_server: DriveServer, service_account_file: Path
) -> None:
    drive = drive_server.add_shared_drive(
        "Inside", {DEFAULT_ACCOUNT: "organizer"}, domain_users_only=True
    )
    file_id = drive_server.add_file("r.bin", b"r", drive)
    service = _service(drive_server, _authorized_http(drive_server, service_account_file))
    anyone = {"type": "anyone", "value": "anyone", "role": "reader", "withLink": True}
    with pytest.raises(HttpError) as caught:
        service.permissions().insert(fileId=file_id, body=anyone, supportsAllDrives=True).execute()
    assert caught.value.resp.status == 400
    assert json.loads(caught.value.content) == {
        "error": {
            "code": 400,
            "message": 'Bad Request. User message: ""',
            "errors": [
                {
                    "domain": "global",
                    "reason": "publishOutNotPermitted",
                    "message": 'Bad Request. User message: ""',
                }
            ],
        }
    }
    inside = {"type": "domain", "value": "example.com", "role": "reader"}
    service.permissions().insert(fileId=file_id, body=inside, supportsAllDrives=True).execute()
    assert [p["type"] for p in drive_server.permissions(file_id)] == ["domain"]


def test_expired_refresh_tokens_get_googles_invalid_grant(drive_server: DriveServer) -> None:
    refresh = drive_server.issue_refresh_token("app", "app-secret")
    drive_server.expire_refresh_tokens()
    form = (
        f"grant_type=refresh_token&refresh_token={refresh}&client_id=app&client_secret=app-secret"
    )
    response, content = httplib2.Http().request(
        drive_server.token_url,
        "POST",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 400
    assert json.loads(content) == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }


def test_export_links_point_away_from_the_api(
    drive_server: DriveServer, service_account_file: Path
) -> None:
    doc = drive_server.add_file("notes", mime_type=DOCUMENT_MIME, text="hi")
    service = _service(drive_server, _authorized_http(drive_server, service_account_file))
    links = service.files().get(fileId=doc).execute()["exportLinks"]
    assert links["text/plain"] == (
        f"{BROWSER_EXPORT_ROOT}feeds/download/documents/export/Export?id={doc}&exportFormat=txt"
    )
    assert service.files().export_media(fileId=doc, mimeType="text/plain").execute() == b"hi"

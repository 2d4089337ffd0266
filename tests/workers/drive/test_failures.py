"""workers.drive.failures: what a failed request becomes (permission, quota, set-up, retried or
not), through a real client over the loopback Drive server, and the sorting itself as a pure
function."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.loopback.drive_server import (
    DriveServer,
)
from tests.workers.drive.helpers import (
    FILE_ID,
    random_file,
)
from workers.drive.client import DriveClient
from workers.drive.failures import DriveSharingRefusedError, Failure, drive_error
from workers.drive.metadata import DriveFile
from workers.errors import (
    DriveAuthError,
    DriveError,
    DrivePermissionError,
    DriveQuotaError,
    DriveSetupError,
)

# -------------------------------------------------------------------------------- reading


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


def test_share_missing_file(drive_client: DriveClient) -> None:
    with pytest.raises(DrivePermissionError, match="cannot share"):
        drive_client.share_anyone(FILE_ID)


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


# -------------------------------------------------------------------------------- writing


def test_upload_over_quota(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    drive_server.quota_bytes = 1000
    random_file(tmp_path / "big.bin", 5000)
    with pytest.raises(DriveQuotaError, match="storageQuotaExceeded") as caught:
        drive_client.upload(tmp_path / "big.bin", drive_root_folder.id)
    assert caught.value.status == 403
    assert "The user's Drive storage quota has been exceeded." in str(caught.value)
    assert drive_client.list_folder(drive_root_folder.id) == []


def test_a_service_account_cannot_store_files_outside_a_shared_drive(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    folder = drive_server.add_folder("shared with the service account")  # a My Drive folder
    random_file(tmp_path / "model.zip", 1000)
    with pytest.raises(DriveSetupError) as caught:
        drive_client.upload(tmp_path / "model.zip", folder)
    text = str(caught.value)
    assert "a service account has no storage of its own" in text and "shared drive" in text
    assert "Service Accounts do not have storage quota" in text  # Google's own words too
    # The page Google's own error links to (plural), as in docs/real-services.md.
    shared_drives = "https://developers.google.com/workspace/drive/api/guides/about-shareddrives"
    assert f"Leverage shared drives ({shared_drives}), or use OAuth delegation" in text
    docs = (Path(__file__).parents[3] / "docs" / "real-services.md").read_text()
    assert f"]({shared_drives})" in docs
    assert drive_server.children(folder) == []


def test_rate_limit_is_retried(
    drive_server: DriveServer,
    drive_client: DriveClient,
    drive_root_folder: DriveFile,
    tmp_path: Path,
) -> None:
    data = random_file(tmp_path / "x.bin", 10)
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
    random_file(tmp_path / "x.bin", 10)
    drive_server.fail_next("POST", "^/upload/", 403, reason="userRateLimitExceeded", count=100)
    with pytest.raises(DriveQuotaError) as caught:
        drive_client.upload(tmp_path / "x.bin", drive_root_folder.id)
    # Too fast, or the 750 GB a day: Drive answers both alike, so both are named.
    assert str(caught.value) == (
        "Drive upload failed: userRateLimitExceeded: User Rate Limit Exceeded; Drive also "
        "limits each person to 750 GB of uploads a day (My Drive and shared drives together): "
        "if that was reached, uploads work again the next day"
    )


def test_a_rate_limit_that_persists_outside_uploads_names_no_daily_limit(
    drive_server: DriveServer, drive_client: DriveClient, drive_root_folder: DriveFile
) -> None:
    drive_server.fail_next(
        "GET", "^/drive/v2/files$", 403, reason="userRateLimitExceeded", count=100
    )
    with pytest.raises(DriveQuotaError) as caught:
        drive_client.list_folder(drive_root_folder.id)
    assert str(caught.value) == "Drive list failed: userRateLimitExceeded: User Rate Limit Exceeded"


def test_upload_into_a_folder_without_access(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    folder = drive_server.add_folder("someone else's")
    drive_server.deny(folder)
    random_file(tmp_path / "x.bin", 10)
    with pytest.raises(DrivePermissionError, match="cannot read folder"):
        drive_client.upload(tmp_path / "x.bin", folder)


# ---------------------------------------------------------------------------- downloading


def test_download_without_access(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    file_id = drive_server.add_file("x.bin", b"abc")
    drive_server.deny(file_id)
    with pytest.raises(DrivePermissionError, match=f"cannot read {file_id}"):
        drive_client.download(file_id, tmp_path / "x.bin")


def test_download_folder_of_an_unreadable_folder(
    drive_server: DriveServer, drive_client: DriveClient, tmp_path: Path
) -> None:
    folder = drive_server.add_folder("locked")
    drive_server.deny(folder, 404)
    with pytest.raises(DrivePermissionError, match="cannot read folder"):
        drive_client.download_folder(folder, tmp_path / "out")


# ------------------------------------------------------------------------- the sorting


@pytest.mark.parametrize(
    ("failure", "kind", "message"),
    [
        (
            Failure(401, "authError", "Invalid Credentials", False),
            DriveAuthError,
            "drive.token_file: Google refused the credentials (Invalid Credentials)",
        ),
        (
            Failure(403, "accessNotConfigured", "Drive API has not been used", False),
            DriveSetupError,
            "the Drive API is not enabled for this Google Cloud project: Drive API has not",
        ),
        (
            Failure(403, "insufficientPermissions", "Insufficient Permission", False),
            DriveAuthError,
            "drive.token_file: the credentials were not granted access to Drive (its scope)",
        ),
        (
            Failure(403, "downloadQuotaExceeded", "The download quota was exceeded", False),
            DriveQuotaError,
            "the file was downloaded too often recently: try again in 24 hours",
        ),
        (
            Failure(429, "", "Too Many Requests", True),
            DriveQuotaError,
            "rateLimitExceeded: Too Many Requests",
        ),
        (
            Failure(403, "fileNotDownloadable", "Use Export", False),
            DriveError,
            "Drive get failed: this is a Google Docs/Sheets/Slides file",
        ),
        (
            Failure(404, "", "File not found", False),
            DrivePermissionError,
            "the configured credentials cannot read x (notFound: File not found); "
            "share it with bot@example.iam.gserviceaccount.com",
        ),
        (
            Failure(503, "backendError", "Backend Error", True),
            DriveError,
            "Drive get failed: Backend Error; gave up after 6 attempts",
        ),
        (Failure(400, "", "Bad Request", False), DriveError, "Bad Request (HTTP 400)"),
        (
            Failure(400, "publishOutNotPermitted", 'Bad Request. User message: ""', False),
            DriveSharingRefusedError,
            "Drive get failed: the organisation that owns this shared drive does not allow "
            "sharing outside it, so the file cannot be shared with anyone who has the link "
            '(publishOutNotPermitted: Bad Request. User message: "")',
        ),
        (
            Failure(None, "tokenRefresh", "invalid_grant: Bad Request", False, auth=True),
            DriveAuthError,
            "drive.token_file: Google refused the credentials (invalid_grant: Bad Request); "
            'an OAuth app whose publishing status is "Testing" gets refresh tokens that expire '
            "after 7 days",
        ),
        (
            Failure(403, "userRateLimitExceeded", "User Rate Limit Exceeded", True),
            DriveQuotaError,
            "Drive get failed: userRateLimitExceeded: User Rate Limit Exceeded",
        ),
    ],
)
def test_each_failure_becomes_the_error_that_names_its_cause(
    failure: Failure, kind: type[DriveError], message: str
) -> None:
    error = drive_error(
        "get",
        failure,
        "cannot read x",
        6,
        auth_setting="drive.token_file",
        account="bot@example.iam.gserviceaccount.com",
    )
    assert type(error) is kind
    assert message in str(error)
    if failure.reason == "userRateLimitExceeded":
        assert "750 GB" not in str(error)  # named only when an upload is refused


def test_invalid_grant_for_other_sign_ins_says_nothing_of_testing_apps() -> None:
    failure = Failure(None, "tokenRefresh", "invalid_grant: Bad Request", False, auth=True)
    error = drive_error(
        "authentication",
        failure,
        "",
        1,
        auth_setting="drive.service_account_file",
        account=None,
    )
    assert str(error) == (
        "Drive authentication failed: drive.service_account_file: Google refused the "
        "credentials (invalid_grant: Bad Request)"
    )

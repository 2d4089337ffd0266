"""workers.drive.credentials through a real client and the loopback token endpoint: service
account keys, OAuth token files and Colab's sign-in; every bad file names the setting to fix and
no secret reaches an error message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.loopback.drive_server import (
    DEFAULT_PERSON,
    DriveServer,
    write_service_account_key,
)
from tests.workers.drive.helpers import (
    client_with,
)
from workers.drive.client import DriveClient
from workers.drive.metadata import DriveFile
from workers.drive.settings import DriveSettings
from workers.errors import (
    DriveAuthError,
)


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
    client = client_with(drive_settings, service_account_file=tmp_path / "nope.json")
    with pytest.raises(DriveAuthError) as caught:
        client.connect()
    assert caught.value.setting == "drive.service_account_file"
    assert "nope.json" in str(caught.value)


def test_unset_key_file_names_the_setting(drive_settings: DriveSettings) -> None:
    with pytest.raises(DriveAuthError, match="is not set") as caught:
        client_with(drive_settings, service_account_file=None).connect()
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
        client_with(drive_settings, service_account_file=key_file).connect()
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
        client_with(drive_settings, service_account_file=broken).connect()
    assert caught.value.setting == "drive.service_account_file"
    assert "c2VjcmV0" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_key_the_server_does_not_trust_is_refused(
    drive_settings: DriveSettings, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger.json"
    write_service_account_key(stranger)
    with pytest.raises(DriveAuthError, match="invalid_grant") as caught:
        client_with(drive_settings, service_account_file=stranger).connect()
    assert caught.value.setting == "drive.service_account_file"
    assert "PRIVATE KEY" not in str(caught.value)


def test_unknown_auth_method(drive_settings: DriveSettings) -> None:
    with pytest.raises(DriveAuthError, match="unknown method") as caught:
        client_with(drive_settings, auth="password").connect()
    assert caught.value.setting == "drive.auth"


def test_colab_auth_outside_colab_says_so(drive_settings: DriveSettings) -> None:
    with pytest.raises(DriveAuthError, match="only inside a Google Colab notebook") as caught:
        client_with(drive_settings, auth="colab").connect()
    assert caught.value.setting == "drive.auth"


def test_colab_sign_in_uses_application_default_credentials(
    drive_server: DriveServer,
    drive_settings: DriveSettings,
    colab_sign_in: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Colab's older sign-in: it leaves an authorized-user file behind for application-default
    # credentials; everything after that is the real libraries.
    adc_file = drive_server.new_authorized_user(tmp_path / "adc.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc_file))
    sign_ins = colab_sign_in
    drive_server.token_lifetime_s = 60
    client = client_with(drive_settings, auth="colab")
    folder = client.ensure_folder("from-colab", "root")
    grants = drive_server.token_grants
    client.get(folder.id)
    client.list_folder(folder.id)
    assert sign_ins == ["signed in"]
    assert drive_server.file(folder.id).owner == "person@example.com"
    assert drive_server.token_grants >= grants + 2
    assert all(record.status != 401 for record in drive_server.requests())


def test_colab_sign_in_through_the_metadata_server(
    drive_server: DriveServer,
    drive_settings: DriveSettings,
    colab_metadata: str,
    colab_sign_in: list[str],
) -> None:
    # Colab's sign-in today: tokens come from a metadata server, which oauth2client sees as a
    # Compute Engine machine's (AppAssertionCredentials) and asks for the person's token.
    drive_server.token_lifetime_s = 60  # inside the refresh margin: every call asks again
    client = client_with(drive_settings, auth="colab")
    folder = client.ensure_folder("from-colab", "root")
    grants = drive_server.token_grants
    client.list_folder(folder.id)
    assert colab_sign_in == ["signed in"]
    assert client.identity().email == colab_metadata == DEFAULT_PERSON
    assert client.identity().kind == "user"
    assert client.account is None  # the person's own Drive: nothing to share with
    assert drive_server.file(folder.id).owner == DEFAULT_PERSON
    assert drive_server.token_grants > grants
    asked = [(r.path, r.query, r.status) for r in drive_server.requests()]
    assert asked[:3] == [
        ("/", {}, 200),
        ("/computeMetadata/v1/instance/service-accounts/default/", {"recursive": "True"}, 200),
        (f"/computeMetadata/v1/instance/service-accounts/{DEFAULT_PERSON}/token", {}, 200),
    ]
    assert all(r.status != 401 for r in drive_server.requests())


def test_authorized_user_token_file(
    drive_server: DriveServer, drive_settings: DriveSettings, tmp_path: Path
) -> None:
    token_file = drive_server.new_authorized_user(tmp_path / "token.json")
    client = client_with(drive_settings, auth="oauth_token_file", token_file=token_file)
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
    client = client_with(drive_settings, auth="oauth_token_file", token_file=token_file)
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
    client = client_with(drive_settings, auth="oauth_token_file", token_file=token_file)
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
    client = client_with(drive_settings, auth="oauth_token_file", token_file=token_file)
    with pytest.raises(DriveAuthError, match="refused") as caught:
        client.connect()
    assert caught.value.setting == "drive.token_file"


def test_an_expired_refresh_token_says_testing_apps_get_seven_days(
    drive_server: DriveServer, drive_settings: DriveSettings, tmp_path: Path
) -> None:
    token_file = drive_server.new_authorized_user(tmp_path / "token.json")
    client_with(drive_settings, auth="oauth_token_file", token_file=token_file).connect()
    drive_server.expire_refresh_tokens()  # a week later, for an OAuth app in "Testing"
    client = client_with(drive_settings, auth="oauth_token_file", token_file=token_file)
    with pytest.raises(DriveAuthError) as caught:
        client.connect()
    assert caught.value.setting == "drive.token_file"
    assert str(caught.value) == (
        "Drive authentication failed: drive.token_file: Google refused the credentials "
        "(invalid_grant: Token has been expired or revoked.); an OAuth app whose publishing "
        'status is "Testing" gets refresh tokens that expire after 7 days: make a new token '
        "file, or publish the app (In production, on the Google Cloud console's OAuth consent "
        "screen) for tokens that last"
    )


def test_tokens_close_to_expiry_are_refreshed_before_each_operation(
    drive_server: DriveServer, drive_settings: DriveSettings, tmp_path: Path
) -> None:
    # An access token living one minute is inside the refresh margin from the start, the way
    # a Colab sign-in looks an hour in; a user login's expiry must not hand PyDrive2 an
    # expired token (it would fall back to an interactive browser sign-in).
    drive_server.token_lifetime_s = 60
    token_file = drive_server.new_authorized_user(tmp_path / "token.json")
    client = client_with(drive_settings, auth="oauth_token_file", token_file=token_file)
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

"""Google Drive credentials: a service account's JSON key, an OAuth token file, or Colab's sign-in.

Loads what ``drive.auth`` names into oauth2client credentials, with one clear DriveAuthError
(naming the setting to fix) for a file that is missing, unreadable, malformed or of the wrong
kind. The secrets in it are registered for redaction as they are read, and never appear in an
error message or a log record.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from workers.drive.settings import DriveSettings
from workers.errors import DriveAuthError
from workers.safety.redaction import register_secret

try:
    import oauth2client
    from oauth2client.client import GoogleCredentials, OAuth2Credentials
    from oauth2client.service_account import ServiceAccountCredentials
except ImportError:  # the optional "drive" extra is not installed: connecting says so
    pass

DRIVE_SCOPES = (
    "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/drive.file",
)
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
AUTH_KINDS = ("service_account", "colab", "oauth_token_file")

_logger = logging.getLogger(__name__)

_REFRESH_MARGIN = timedelta(minutes=5)
_SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key", "private_key_id", "client_id")


def load_credentials(settings: DriveSettings) -> Any:
    """The oauth2client credentials ``settings.auth`` names, not yet exchanged for a token."""
    kind = settings.auth
    if kind == "service_account":
        return _service_account_credentials(settings.service_account_file)
    if kind == "oauth_token_file":
        return _token_file_credentials(settings.token_file)
    if kind == "colab":
        return _colab_credentials()
    raise DriveAuthError(
        "drive.auth", f"unknown method {kind!r}; use one of {', '.join(AUTH_KINDS)}"
    )


def auth_setting(auth: str) -> str:
    """The config key to fix when Google refuses the credentials of this ``drive.auth``."""
    return {
        "service_account": "drive.service_account_file",
        "oauth_token_file": "drive.token_file",
    }.get(auth, "drive.auth")


def expires_soon(credentials: Any) -> bool:
    """Whether the access token is missing, invalid or within five minutes of expiring."""
    if credentials.access_token is None or credentials.invalid:
        return True
    expiry = credentials.token_expiry
    if expiry is None:
        return False
    now = datetime.now(UTC).replace(tzinfo=None)
    return bool(expiry - _REFRESH_MARGIN <= now)


def pydrive_settings() -> dict[str, Any]:
    """PyDrive2's GoogleAuth settings: the credentials come from here, never from a sign-in."""
    # No client config on purpose: if PyDrive2 ever found the token expired on its own, it
    # would start its interactive browser sign-in; without a client config it fails instead.
    return {
        "client_config_backend": "service",
        "service_config": {},
        "save_credentials": False,
        "oauth_scope": [DRIVE_SCOPE],
    }


def _service_account_credentials(path: Path | None) -> Any:
    setting = "drive.service_account_file"
    data = _read_json_file(path, setting)
    if data.get("type") != "service_account":
        raise DriveAuthError(setting, f"{path} is not a service account key (download a JSON key)")
    missing = [name for name in _SERVICE_ACCOUNT_FIELDS if not data.get(name)]
    if missing:
        raise DriveAuthError(setting, f"{path} lacks {', '.join(missing)}")
    # The key itself is masked wherever it appears by its -----BEGIN shape.
    register_secret(str(data.get("private_key_id", "")))
    # oauth2client logs each signed JWT assertion, a credential, at DEBUG level.
    logging.getLogger("oauth2client.crypt").setLevel(logging.INFO)
    try:
        return ServiceAccountCredentials.from_json_keyfile_dict(data, scopes=[DRIVE_SCOPE])
    except Exception:
        # Signer backends raise their own types; the key material must not reach a log.
        raise DriveAuthError(setting, f"the private key in {path} cannot be loaded") from None


def _token_file_credentials(path: Path | None) -> Any:
    """An authorized-user login: gcloud's or Colab's file (``"type": "authorized_user"``),
    google-auth's ``token.json`` (what Google's quickstart writes: no ``type``), or
    oauth2client's own format."""
    setting = "drive.token_file"
    data = _read_json_file(path, setting)
    register_secret(str(data.get("client_secret", "")), str(data.get("refresh_token", "")))
    if data.get("_class") in ("OAuth2Credentials", "GoogleCredentials"):
        credentials = OAuth2Credentials.from_json(json.dumps(data))
    else:
        needed = ("client_id", "client_secret", "refresh_token")
        missing = [key for key in needed if key not in data or data[key] is None]
        if missing and data.get("type") not in (None, "authorized_user"):
            raise DriveAuthError(
                setting, f"{path} is not an authorized-user or oauth2client credentials file"
            )
        if missing:
            raise DriveAuthError(setting, f"{path} lacks {', '.join(missing)}")
        if not data["refresh_token"]:
            raise DriveAuthError(setting, f"{path} has no refresh token; sign in again")
        _warn_about_scopes(data.get("scopes"), path)
        credentials = GoogleCredentials(
            access_token=None,
            client_id=data["client_id"],
            client_secret=data["client_secret"],
            refresh_token=data["refresh_token"],
            token_expiry=None,
            token_uri=data.get("token_uri") or oauth2client.GOOGLE_TOKEN_URI,
            user_agent="colabot",
        )
    if not credentials.refresh_token:
        raise DriveAuthError(setting, f"{path} has no refresh token; sign in again")
    return credentials


def _colab_credentials() -> Any:
    try:
        from google.colab import auth as colab_auth
    except ImportError:
        raise DriveAuthError(
            "drive.auth",
            "'colab' works only inside a Google Colab notebook; "
            "elsewhere use 'service_account' or 'oauth_token_file'",
        ) from None
    try:
        colab_auth.authenticate_user()
        credentials = GoogleCredentials.get_application_default()
    except Exception as error:
        raise DriveAuthError(
            "drive.auth", f"Colab sign-in did not complete ({type(error).__name__})"
        ) from None
    if credentials.create_scoped_required():
        credentials = credentials.create_scoped([DRIVE_SCOPE])
    return credentials


def _read_json_file(path: Path | None, setting: str) -> dict[str, Any]:
    if path is None:
        raise DriveAuthError(setting, "is not set")
    path = path.expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DriveAuthError(setting, f"cannot read {path}: {error.strerror}") from None
    except ValueError:
        raise DriveAuthError(setting, f"{path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise DriveAuthError(setting, f"{path} is not a JSON object")
    return data


def _warn_about_scopes(scopes: Any, path: Path | None) -> None:
    """A token whose scopes name no Drive scope will be refused by Drive: say so now."""
    if scopes is None:
        return
    granted = scopes.split() if isinstance(scopes, str) else [str(s) for s in scopes]
    if not any(scope in DRIVE_SCOPES for scope in granted):
        _logger.warning(
            "drive.token_file %s grants %s, none of them a Drive scope (%s): Drive will refuse "
            "it; sign in again asking for the Drive scope",
            path,
            ", ".join(granted) or "no scopes",
            DRIVE_SCOPES[0],
        )

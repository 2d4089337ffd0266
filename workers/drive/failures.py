"""What a failed Drive request means: sorting library and transport errors into retryable or
not, and into the DriveError subclass that names the cause (credentials, set-up, quota,
permission or not found), with Google's own message along. Decisions only: no I/O here."""

from __future__ import annotations

import errno
import http.client
import json
import ssl
from dataclasses import dataclass
from typing import Any

from workers.errors import (
    DriveAuthError,
    DriveError,
    DrivePermissionError,
    DriveQuotaError,
    DriveSetupError,
)

try:
    import httplib2
    from googleapiclient.errors import HttpError
    from oauth2client.client import AccessTokenRefreshError
    from pydrive2.auth import AuthError
    from pydrive2.files import ApiRequestError
    from pydrive2.settings import InvalidConfigError
except ImportError:  # the optional "drive" extra is not installed: connecting says so
    pass

SERVICE_ACCOUNT_STORAGE = (
    "a service account has no storage of its own, so it can only write into a shared drive: "
    "put drive.folder_id in a shared drive where the service account is a Content manager "
    '(or Manager), or sign in as a person instead (drive.auth = "oauth_token_file" with a '
    'token file, or "colab" in a Colab notebook)'
)
NATIVE_DOC_MESSAGE = (
    "this is a Google Docs/Sheets/Slides file, which has no file content to download; "
    "export it (File > Download) and share the exported file instead"
)
SHARING_REFUSED = (
    "the organisation that owns this shared drive does not allow sharing outside it, so the "
    "file cannot be shared with anyone who has the link"
)
DAILY_UPLOAD_LIMIT = (
    "Drive also limits each person to 750 GB of uploads a day (My Drive and shared drives "
    "together): if that was reached, uploads work again the next day"
)
TESTING_APP_TOKENS = (
    'an OAuth app whose publishing status is "Testing" gets refresh tokens that expire after '
    "7 days: make a new token file, or publish the app (In production, on the Google Cloud "
    "console's OAuth consent screen) for tokens that last"
)

_RATE_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})
_QUOTA_REASONS = _RATE_REASONS | {
    "storageQuotaExceeded",
    "quotaExceeded",
    "dailyLimitExceeded",
    "sharingRateLimitExceeded",
}
_NETWORK_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH, errno.ECONNABORTED, errno.ETIMEDOUT}
)


class DriveSharingRefusedError(DriveError):
    """Drive refused to share a file with anyone who has the link: the organisation that owns
    the shared drive allows no sharing outside it (``publishOutNotPermitted``). The file
    itself is there, readable by whoever may read its folder."""


@dataclass(frozen=True)
class Failure:
    """One failed attempt, reduced to what decides retrying and the error raised."""

    status: int | None
    reason: str
    message: str
    retryable: bool
    auth: bool = False


def classify(exc: BaseException) -> Failure | None:
    """Reduce a library or transport exception to a Failure; None for anything else."""
    if isinstance(exc, ApiRequestError) and isinstance(exc.args[0], HttpError):
        return classify(exc.args[0])
    if isinstance(exc, HttpError):
        return _http_failure(int(exc.resp.status), exc.content)
    if isinstance(exc, ValueError):
        # PyDrive2's ApiRequestError parses every error body as JSON, so a proxy's HTML page
        # surfaces as a JSON decoding error raised while handling the real HttpError.
        handled = _handled_http_error(exc)
        return classify(handled) if handled is not None else None
    if isinstance(exc, AccessTokenRefreshError):
        status = getattr(exc, "status", None)
        retryable = isinstance(status, int) and status >= 500
        return Failure(status, "tokenRefresh", str(exc), retryable, auth=not retryable)
    if isinstance(exc, AuthError | InvalidConfigError):
        return Failure(
            None, "authError", "the access token expired and cannot be renewed", False, True
        )
    if _is_network_error(exc):
        return Failure(None, "", f"connection failed ({type(exc).__name__})", True)
    return None


def drive_error(
    operation: str,
    failure: Failure,
    denied: str,
    attempts: int,
    *,
    auth_setting: str,
    account: str | None,
) -> DriveError:
    """A failure as the error that names its cause; Google's own message always comes
    along, since it often says exactly what to do (and where).

    ``denied`` completes "the configured credentials ..." when Drive answers 403 or 404;
    ``auth_setting`` is the config key a refused sign-in names; ``account`` is the service
    account to share a file with, if one is signed in.
    """
    status, reason, said = failure.status, failure.reason, failure.message
    if failure.auth or status == 401:
        text = f"Google refused the credentials ({said})"
        if auth_setting == "drive.token_file" and said.startswith("invalid_grant"):
            # Google's answer to an expired refresh token as well as a revoked one.
            text += f"; {TESTING_APP_TOKENS}"
        return DriveAuthError(auth_setting, text)
    if reason == "accessNotConfigured":
        return DriveSetupError(
            operation, f"the Drive API is not enabled for this Google Cloud project: {said}"
        )
    if reason == "insufficientPermissions":
        return DriveAuthError(
            auth_setting, f"the credentials were not granted access to Drive (its scope): {said}"
        )
    if reason == "storageQuotaExceeded" and "service accounts" in said.lower():
        return DriveSetupError(
            operation, f"{SERVICE_ACCOUNT_STORAGE} (Google said: {said})", status
        )
    if reason == "downloadQuotaExceeded":
        return DriveQuotaError(
            operation,
            "the file was downloaded too often recently: try again in 24 hours, or make a "
            f"copy of it in your own Drive and share the copy (Google said: {said})",
            status,
        )
    if reason in _QUOTA_REASONS or status == 429:
        text = f"{reason or 'rateLimitExceeded'}: {said}"
        if operation == "upload" and reason == "userRateLimitExceeded":
            # Reaching the daily upload limit answers the same as going too fast, and the
            # two cannot be told apart: name the limit without claiming it was reached.
            text += f"; {DAILY_UPLOAD_LIMIT}"
        return DriveQuotaError(operation, text, status)
    if reason == "publishOutNotPermitted":
        return DriveSharingRefusedError(operation, f"{SHARING_REFUSED} ({reason}: {said})", status)
    if reason == "fileNotDownloadable":
        return DriveError(operation, NATIVE_DOC_MESSAGE, status)
    if reason in ("notFound", "insufficientFilePermissions") or (status == 404 and not reason):
        detail = f"{reason or 'notFound'}: {said}"
        hint = f"; share it with {account}" if account else ""
        text = f"the configured credentials {denied} ({detail}){hint}"
        return DrivePermissionError(operation, text, status, detail=detail, share_with=account)
    if failure.retryable:
        return DriveError(operation, f"{said}; gave up after {attempts} attempts", status)
    return DriveError(operation, f"{said} ({reason or f'HTTP {status}'})", status)


def session_expired(exc: BaseException, request: Any) -> bool:
    """Whether the resumable session must be started again: Google's guide says so for any
    4xx from the session URL (it expired, or was refused), except a timeout or a slow-down."""
    if request.resumable_uri is None or not isinstance(exc, HttpError):
        return False
    status = int(exc.resp.status)
    reason, _ = _error_details(exc.content)
    return 400 <= status < 500 and status not in (401, 408, 429) and reason not in _RATE_REASONS


def _handled_http_error(exc: BaseException) -> HttpError | None:
    """The HttpError being handled when ``exc`` was raised, if any."""
    context = exc.__context__
    for _ in range(5):
        if context is None or isinstance(context, HttpError):
            return context
        context = context.__context__
    return None


def _is_network_error(exc: BaseException) -> bool:
    transport = (
        ConnectionError,
        TimeoutError,
        ssl.SSLError,
        http.client.HTTPException,
        httplib2.HttpLib2Error,
    )
    if isinstance(exc, transport):
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


def _http_failure(status: int, content: bytes | str | None) -> Failure:
    reason, message = _error_details(content)
    message = message or f"HTTP {status}"
    retryable = status >= 500 or status in (408, 429) or (status == 403 and reason in _RATE_REASONS)
    return Failure(status, reason, message, retryable)


def _error_details(content: bytes | str | None) -> tuple[str, str]:
    """(reason, message) from a Google error body; empty strings when it is not one."""
    try:
        error = json.loads(content or b"")["error"]
        details = error.get("errors") or [{}]
        return str(details[0].get("reason", "")), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return "", ""

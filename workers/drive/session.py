"""A signed-in Drive session: the credentials exchanged for an access token kept fresh, the
discovery-built Drive v2 service (over PyDrive2's GoogleAuth), and the retry policy every
request runs under. The metadata and transfer layers send their requests through it."""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from workers.drive.credentials import (
    auth_setting,
    expires_soon,
    load_credentials,
    pydrive_settings,
)
from workers.drive.failures import Failure, classify, drive_error
from workers.drive.settings import DriveSettings, Patience
from workers.errors import DriveError

try:
    import httplib2
    from googleapiclient.discovery import build_from_document
    from googleapiclient.discovery_cache import get_static_doc
    from googleapiclient.http import HttpRequest
    from pydrive2.auth import GoogleAuth
    from pydrive2.drive import GoogleDrive
except ImportError as missing:  # the optional "drive" extra is not installed
    _MISSING_LIBRARY: str | None = missing.name or "PyDrive2"
else:
    _MISSING_LIBRARY = None

    class _PacedRequest(HttpRequest):  # type: ignore[misc]  # googleapiclient is untyped
        """googleapiclient's request; its retries wait ``backoff_s`` times the randomized
        ``2**n`` seconds googleapiclient waits (``drive.backoff_s = 1``: its own pacing)."""

        def __init__(self, *args: Any, backoff_s: float, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._rand = lambda: random.random() * backoff_s


_T = TypeVar("_T")
_logger = logging.getLogger(__name__)

_MAX_BACKOFF_S = 64.0


@dataclass(frozen=True)
class Identity:
    """Who the Drive credentials act as: a ``service account`` or a person (``user``)."""

    kind: Literal["service account", "user"]
    email: str

    @property
    def is_service_account(self) -> bool:
        """Whether a service account (no storage of its own) is signed in."""
        return self.kind == "service account"


class DriveSession:
    """The connection every Drive request goes through; raises DriveError subclasses only.

    It connects on first use and refreshes the access token before each request when it is
    within five minutes of expiring. Instances may be shared between threads.
    """

    def __init__(self, settings: DriveSettings, patience: Patience | None = None) -> None:
        self._settings = settings
        self.patience = patience or Patience()
        self._lock = threading.RLock()
        self._credentials: Any = None
        self._gauth: Any = None
        self._drive: Any = None

    @property
    def settings(self) -> DriveSettings:
        """The settings this session was built with."""
        return self._settings

    @property
    def account(self) -> str | None:
        """The service account's e-mail address, the one to share folders with; else None.

        Colab's sign-in gets its tokens from a metadata server, so its credentials look like
        a machine's service account ("default"); it is the person signed in to Colab.
        """
        if self._settings.auth != "service_account":
            return None
        email = getattr(self._credentials, "service_account_email", None)
        return email if isinstance(email, str) else None

    @property
    def service(self) -> Any:
        """The discovery-built Drive v2 service (call :meth:`ready` first)."""
        return self._gauth.service

    def identity(self) -> Identity:
        """Who the credentials act as, by Drive's own account (``about``)."""

        def fetch() -> Identity:
            about = self.execute(self.service.about().get())
            email = str((about.get("user") or {}).get("emailAddress") or about.get("name", ""))
            kind: Literal["service account", "user"] = (
                "service account" if self._settings.auth == "service_account" else "user"
            )
            return Identity(kind, email or (self.account or "unknown"))

        return self.call("about", fetch, "cannot read the account")

    # ------------------------------------------------------------- connection

    def connect(self) -> None:
        """Load the configured credentials, exchange them for an access token, build the service.

        Raises DriveAuthError (``setting`` names the config key to fix) when the credentials
        are missing, unreadable, malformed or refused.
        """
        if _MISSING_LIBRARY is not None:
            raise DriveError(
                "connect",
                f"the Google Drive libraries are not installed ({_MISSING_LIBRARY} is missing); "
                "install colabot[drive]",
            )
        with self._lock:
            credentials = load_credentials(self._settings)
            if self._settings.api_url:
                credentials.token_uri = self._endpoint("token")
            self._credentials = credentials
            self._refresh_credentials()
            gauth = GoogleAuth(settings=pydrive_settings(), http_timeout=self.patience.timeout_s)
            gauth.credentials = credentials
            if self._settings.auth == "service_account":
                gauth.auth_method = "service"
            gauth.http = gauth.Get_Http_Object()
            gauth.service = self._build_service(gauth.http)
            self._gauth = gauth
            self._drive = GoogleDrive(gauth)

    def _endpoint(self, path: str) -> str:
        return self._settings.api_url.rstrip("/") + "/" + path

    def _build_service(self, http: Any) -> Any:
        # Setting the discovery document's rootUrl moves every endpoint the document derives
        # from it (API calls, media uploads, batch) to api_url with its own scheme; the
        # client_options api_endpoint override only swaps the host of upload URLs.
        document = json.loads(get_static_doc("drive", "v2"))
        if self._settings.api_url:
            document["rootUrl"] = self._endpoint("")
        builder = functools.partial(_PacedRequest, backoff_s=self.patience.backoff_s)
        return build_from_document(document, http=http, requestBuilder=builder)

    def _refresh_credentials(self) -> None:
        """Exchange the credentials for a fresh access token, retrying network failures."""
        http = httplib2.Http(timeout=self.patience.timeout_s)
        attempt = 0
        while True:
            attempt += 1
            try:
                self._credentials.refresh(http)
                return
            except Exception as exc:
                self.after_failure("authentication", exc, attempt, "")

    def ready(self) -> Any:
        """The connected PyDrive2 GoogleDrive, with an access token good for a while."""
        with self._lock:
            if self._drive is None:
                self.connect()
            elif expires_soon(self._credentials):
                self._refresh_credentials()
            return self._drive

    def http(self) -> Any:
        """This thread's authorized httplib2 object, the one PyDrive2 itself uses here."""
        local = self._gauth.thread_local
        if getattr(local, "http", None) is None:
            local.http = self._gauth.Get_Http_Object()
        return local.http

    # ---------------------------------------------------------- retry policy

    def execute(self, request: Any) -> Any:
        """Send one API request; googleapiclient itself retries what is transient (5xx, 429,
        rate-limit 403s, dropped connections) with its randomized exponential backoff."""
        return request.execute(http=self.http(), num_retries=self.patience.retries)

    def call(self, operation: str, action: Callable[[], _T], denied: str) -> _T:
        """Run ``action`` with fresh credentials; a failure becomes the DriveError that
        names its cause (the retries happen inside googleapiclient).

        ``denied`` completes "the configured credentials ..." when Drive answers 403 or 404.
        """
        self.ready()
        try:
            return action()
        except Exception as exc:
            error = self.classified(operation, exc, denied)
            if error is None:
                raise
            raise error from exc

    def classified(self, operation: str, exc: Exception, denied: str) -> DriveError | None:
        """The DriveError for a failure googleapiclient gave up on; None when ``exc`` is not
        a Drive failure at all."""
        failure = classify(exc)
        if failure is None:
            return None
        attempts = self.patience.retries + 1 if failure.retryable else 1
        return self._as_drive_error(operation, failure, denied, attempts)

    def after_failure(self, operation: str, exc: Exception, attempt: int, denied: str) -> None:
        """Re-raise unknown errors, raise a DriveError when giving up, else wait to retry."""
        failure = classify(exc)
        if failure is None:
            raise exc
        if not failure.retryable or attempt > self.patience.retries:
            raise self._as_drive_error(operation, failure, denied, attempt) from exc
        delay = min(self.patience.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)
        delay *= random.uniform(0.5, 1.5)
        _logger.warning(
            "Drive %s: %s; retry %d of %d in %.1f s",
            operation,
            failure.reason or failure.message,
            attempt,
            self.patience.retries,
            delay,
        )
        time.sleep(delay)

    def _as_drive_error(
        self, operation: str, failure: Failure, denied: str, attempts: int
    ) -> DriveError:
        return drive_error(
            operation,
            failure,
            denied,
            attempts,
            auth_setting=auth_setting(self._settings.auth),
            account=self.account,
        )

"""How to reach Google Drive: the settings every layer of the Drive client reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DriveAuth = Literal["service_account", "colab", "oauth_token_file"]


@dataclass(frozen=True)
class DriveSettings:
    """``[drive]``: Google Drive access, shared by the results backend and input downloads.

    ``auth`` is ``service_account`` (``service_account_file`` is a JSON key), ``colab``
    (the notebook user's Google sign-in) or ``oauth_token_file`` (``token_file`` holds an
    authorized-user login with a refresh token). Results go to ``folder_id`` (shared with
    anyone who has the link when ``share_anyone``). ``api_url`` replaces Google's endpoints,
    the OAuth2 token endpoint included (``{api_url}token``), for proxies, emulators and
    tests. Uploads and downloads move ``chunk_mb`` MiB per request.
    """

    auth: DriveAuth = "service_account"
    service_account_file: Path | None = None
    token_file: Path | None = None
    folder_id: str = ""
    share_anyone: bool = False
    api_url: str = ""
    chunk_mb: int = 8

    @property
    def chunk_bytes(self) -> int:
        """Bytes per upload or download request (a multiple of 256 KiB, as Drive requires)."""
        return self.chunk_mb * 1024 * 1024


@dataclass(frozen=True)
class Patience:
    """How patiently the client sends requests (the client's own, not settings): transient
    failures (5xx, 429, rate-limit 403s, broken connections) are retried ``retries`` times
    by googleapiclient (``num_retries``), waiting a random ``0..2**n`` seconds times
    ``backoff_s``; each request may take ``timeout_s``. A download or an upload whose
    connection broke resumes from the bytes already across."""

    retries: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("drive retries cannot be negative")
        if self.backoff_s < 0 or self.timeout_s <= 0:
            raise ValueError("drive backoff_s and timeout_s must be positive")

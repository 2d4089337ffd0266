"""How to reach Google Drive: the settings every layer of the Drive client reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DriveSettings:
    """How to reach Google Drive.

    ``auth`` is ``service_account`` (``service_account_file`` is a JSON key), ``colab``
    (the notebook user's Google sign-in) or ``oauth_token_file`` (``token_file`` holds an
    authorized-user login with a refresh token). ``api_url`` replaces Google's endpoints, the
    OAuth2 token endpoint included (``{api_url}token``), for proxies, emulators and tests.
    Uploads and downloads move ``chunk_mb`` MiB per request. Transient failures (5xx, 429,
    rate-limit 403s, broken connections) are retried ``retries`` times by googleapiclient
    (``num_retries``), waiting a random ``0..2**n`` seconds times ``backoff_s``; a download
    or an upload whose connection broke resumes from the bytes already across.
    """

    auth: str
    service_account_file: Path | None = None
    token_file: Path | None = None
    api_url: str = ""
    chunk_mb: int = 8
    retries: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.chunk_mb < 1:
            raise ValueError("drive.chunk_mb must be at least 1")
        if self.retries < 0:
            raise ValueError("drive.retries cannot be negative")
        if self.backoff_s < 0 or self.timeout_s <= 0:
            raise ValueError("drive.backoff_s and drive.timeout_s must be positive")

    @property
    def chunk_bytes(self) -> int:
        """Bytes per upload or download request (a multiple of 256 KiB, as Drive requires)."""
        return self.chunk_mb * 1024 * 1024

"""How the emulated Bot API server behaves: Telegram's own, or a self-hosted telegram-bot-api.

Telegram's public server (``api.telegram.org``) serves file downloads under
``/file/bot<token>/``, up to 20 MB, and takes uploads up to 50 MB. A self-hosted
``telegram-bot-api`` serves only ``/bot<token>/...``: never ``/file/``. Started with
``--local``, it answers ``getFile`` with the file's absolute path on its own disk, lifts the
20 MB download limit and takes uploads up to 2000 MB.
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024
PUBLIC_UPLOAD_LIMIT = 50 * MB
LOCAL_UPLOAD_LIMIT = 2000 * MB
PUBLIC_DOWNLOAD_LIMIT = 20 * MB
PHOTO_UPLOAD_LIMIT = 10 * MB


@dataclass(frozen=True)
class ServerMode:
    """The server's kind and its limits.

    ``callback_answer_window_s``: how long after a press a callback query can be answered
    (Telegram's is about ten seconds; later answers get "query is too old").
    """

    self_hosted: bool = False
    local: bool = False
    server_dir: str = "/var/lib/telegram-bot-api"
    """A ``--local`` server's working folder (``--dir``), as paths on its own machine."""
    callback_answer_window_s: float = 10.0
    upload_limit: int | None = None

    @property
    def serves_files(self) -> bool:
        """Whether ``/file/bot<token>/<path>`` downloads exist (Telegram's own server only)."""
        return not self.self_hosted

    @property
    def document_upload_limit(self) -> int:
        """The largest document a bot may upload, in bytes."""
        if self.upload_limit is not None:
            return self.upload_limit
        return LOCAL_UPLOAD_LIMIT if self.local else PUBLIC_UPLOAD_LIMIT

    @property
    def download_limit(self) -> int | None:
        """The largest file ``getFile`` hands out (None: no limit, a ``--local`` server)."""
        return None if self.local else PUBLIC_DOWNLOAD_LIMIT

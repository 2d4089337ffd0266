"""Choosing and opening the results backend configured for this colabot."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.config import Config
from bot.errors import ConfigError
from workers.errors import ColabotError, DriveAuthError
from workers.results.base import ResultsBackend
from workers.results.local import LocalResults

if TYPE_CHECKING:
    from workers.drive.client import DriveClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenedResults:
    """The backend in use, what it is (who writes where), and a note for the chat when it is
    not the configured one."""

    backend: ResultsBackend
    note: str = ""
    description: str = ""


def open_results(config: Config) -> OpenedResults:
    """Open and check the results backend (blocking: run it in a thread).

    Raise ConfigError naming the setting when it cannot be used and no fallback is set.
    """
    if config.results.backend == "local":
        local = LocalResults(config.results.dir)
        _check_local(local)
        return OpenedResults(local, description=f"the folder {local.root}")
    from workers.drive.client import DriveClient
    from workers.results.drive import DriveResults

    drive = DriveResults(
        DriveClient(config.drive),
        config.drive.folder_id,
        share_anyone=config.drive.share_anyone,
    )
    try:
        setup = drive.check()
        return OpenedResults(drive, description=f"Google Drive, as {setup.describe()}")
    except ColabotError as exc:
        setting = exc.setting if isinstance(exc, DriveAuthError) else "drive.folder_id"
        if config.results.fallback != "local":
            raise ConfigError(setting, f"Google Drive cannot be used for results: {exc}") from None
        local = LocalResults(config.results.dir)
        _check_local(local)
        note = (
            f"Google Drive could not be used for results ({exc}); saving to {local.root} "
            'instead, as results.fallback = "local" says.'
        )
        log.warning("%s", note)
        return OpenedResults(local, note, f"the folder {local.root} (Drive could not be used)")


def _check_local(local: LocalResults) -> None:
    try:
        local.check()
    except ColabotError as exc:
        raise ConfigError("results.dir", str(exc)) from None


def drive_client_factory(
    config: Config, backend: ResultsBackend
) -> Callable[[], DriveClient] | None:
    """How input downloads get a Drive client: the results backend's own when it is Drive,
    a new one when Drive credentials are configured, else None (Drive links are refused)."""
    from workers.results.drive import DriveResults

    if isinstance(backend, DriveResults):
        client = backend.client
        return lambda: client
    drive = config.drive
    configured = (
        (drive.auth == "service_account" and drive.service_account_file is not None)
        or (drive.auth == "oauth_token_file" and drive.token_file is not None)
        or drive.auth == "colab"
    )
    if not configured:
        return None

    def make() -> DriveClient:
        from workers.drive.client import DriveClient

        return DriveClient(config.drive)

    return make

"""The one connection to colabot's SQLite database, shared by the jobs' tables
(:mod:`workers.store.database`) and the outbox's (:mod:`workers.store.outbox`).

One file, one connection, one transaction helper; the schema and its upgrades live in
:mod:`workers.store.schema` only.

Text enters the database through :func:`scrubbed` only: every text a job, an exception or a
service produced (an error, a notice, a failure's tail, a progress message, a summary) is
redacted on its way in, like the log and the chat. What colabot must use again as it was
stays as it was: a job's spec (what the user typed), and locations (paths and links).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from workers.errors import StoreBusyError, StoreError, StoreFullError
from workers.safety.files import FILE_MODE
from workers.safety.redaction import SECRETS
from workers.store.datadir import make_private
from workers.store.schema import prepare

DB_NAME = "colabot.sqlite3"
# SQLite's companions of the database file, in WAL mode.
DB_SUFFIXES = ("", "-wal", "-shm")
# Keys whose values are locations colabot made and must use again: kept as they are.
LOCATION_KEYS = frozenset({"path", "url", "link"})

_P = ParamSpec("_P")
_R = TypeVar("_R")


def store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """A database failure in words: busy, full, read-only, corrupt, or unreadable."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StoreBusyError(
            str(path), "colabot is busy (its database is locked); try again in a moment"
        )
    if "full" in text:
        return StoreFullError(str(path), "the disk is full; free some space")
    if "readonly" in text or "read-only" in text:
        return StoreError(
            str(path), "the database is read-only; check the data folder's permissions"
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(
            str(path), "the database is damaged; move it away to start with an empty one"
        )
    if "unable to open" in text:
        return StoreError(str(path), "the database cannot be opened; check the data folder")
    return StoreError(str(path), f"database error: {exc}")


def scrubbed(value: Any) -> Any:
    """A value on its way into the database with every text in it redacted
    (:data:`workers.safety.redaction.SECRETS`), in lists and dicts too; the values of
    :data:`LOCATION_KEYS` are kept as they are."""
    if isinstance(value, str):
        return SECRETS.redact(value)
    if isinstance(value, list | tuple):
        return [scrubbed(item) for item in value]
    if isinstance(value, dict):
        return {
            key: item if key in LOCATION_KEYS and isinstance(item, str) else scrubbed(item)
            for key, item in value.items()
        }
    return value


def _private_database(path: Path) -> None:
    """Make the database and its WAL files 0600 where an older colabot left them readable by
    others (new ones are private already: the data folder's umask)."""
    for suffix in DB_SUFFIXES:
        file = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            mode = file.lstat().st_mode
            if stat.S_ISREG(mode) and stat.S_IMODE(mode) != FILE_MODE:
                file.chmod(FILE_MODE)


def translated(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn sqlite3 errors raised by a method of the store into StoreError subclasses."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            store = args[0]
            assert isinstance(store, Connection)
            raise store_error(store.path, exc) from None

    return wrapper


class Connection:
    """The database file under the data directory, opened in WAL mode with its schema
    prepared (created, or upgraded from an older colabot's).

    One connection, used from one thread (the event loop's); each method of the store built
    on it is one transaction.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DB_NAME
        try:
            make_private(data_dir)
            _private_database(self.path)
        except OSError as exc:
            raise StoreError(
                str(data_dir), f"cannot create the data folder: {exc.strerror}"
            ) from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self.upgraded_from = prepare(self._db, str(self.path))
            self._db.execute("SELECT count(*) FROM jobs").fetchone()
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            # A COMMIT that failed (a full disk) leaves the transaction open: close it too.
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

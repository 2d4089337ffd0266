"""Logging set-up that never lets a secret, or anything a stranger sent, reach a log line."""

from __future__ import annotations

import logging
from pathlib import Path

from workers.safety.redaction import redact

# Their DEBUG records carry whole updates and request bodies: message texts and file names,
# strangers' included. They stay at INFO even with --verbose.
CHATTY_LOGGERS = ("telegram", "httpx", "httpcore")
QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "googleapiclient", "oauth2client")


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and traceback) with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keep the record, but redacted."""
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


LOG_FILE = "colabot.log"
"""The log in the data folder when colabot runs in a notebook."""


def setup_logging(
    *, verbose: bool = False, quiet_console: bool = False, file: Path | None = None
) -> None:
    """Log to stderr with secrets redacted; HTTP client chatter stays at WARNING.

    ``quiet_console`` (the offline terminal chat) shows only warnings and errors, so the
    chat is not drowned in log lines. With ``file`` (a notebook), every line goes there
    instead (a private file), so colabot's log does not spill under whichever cell ran last.
    """
    handler: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file, encoding="utf-8")
        file.chmod(0o600)
    else:
        handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = logging.DEBUG if verbose else logging.INFO
    root.setLevel(logging.WARNING if quiet_console and not verbose else level)
    for chatty in CHATTY_LOGGERS:
        logging.getLogger(chatty).setLevel(logging.INFO)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)

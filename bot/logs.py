"""Logging set-up that never lets a bot token or credential reach a log line."""

from __future__ import annotations

import logging
import re

# A bot token anywhere in a message, including inside Bot API URLs (".../bot123:ABC/...").
TOKEN_PATTERN = re.compile(r"\d{3,}:[A-Za-z0-9_-]{20,}")
SECRET_PATTERN = re.compile(
    r"(?i)(access_token|refresh_token|client_secret|private_key|assertion)([\"'=: ]+)[^\s\"'&,]+"
)


def redact(text: str) -> str:
    """Replace bot tokens and credential values in ``text``."""
    text = TOKEN_PATTERN.sub(lambda m: m.group(0).split(":", 1)[0] + ":****", text)
    return SECRET_PATTERN.sub(lambda m: f"{m.group(1)}{m.group(2)}****", text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with secrets replaced."""

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


def setup_logging(*, verbose: bool = False, quiet_console: bool = False) -> None:
    """Log to stderr with secrets redacted; HTTP client chatter stays at WARNING.

    ``quiet_console`` (the offline terminal chat) shows only warnings and errors, so the
    chat is not drowned in log lines.
    """
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = logging.DEBUG if verbose else logging.INFO
    root.setLevel(logging.WARNING if quiet_console and not verbose else level)
    for noisy in ("httpx", "httpcore", "apscheduler", "googleapiclient", "oauth2client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""The one place that removes secrets from text before it is logged, stored or sent.

Two kinds of secret are removed:

- secrets colabot knows by value: the bot token, Drive credentials, and any key it passes to
  jobs. They are registered once, where they are read (:func:`register_secret`);
- text shaped like a secret, known or not: bot tokens (with a bot id of any length, also
  URL-encoded), ``Authorization: Bearer`` values, private-key bodies, Google access tokens and
  ``key=value`` credentials.

Job output is redacted as it is written to ``job.log`` (:class:`StreamRedactor`), so the
stored log, every tail shown in the chat and the published results are clean. Log records
and every outgoing chat text go through :func:`redact`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

MASK = "****"
MIN_SECRET_LENGTH = 8
# A line longer than this without an end is redacted and written in pieces, cut where no
# secret-shaped text spans the cut.
MAX_PENDING_BYTES = 64 * 1024
_KEEP_FOR_CUT = 4096

_KEY_NAMES = (
    "access_token",
    "refresh_token",
    "client_secret",
    "private_key_id",
    "private_key",
    "assertion",
    "api_key",
    "apikey",
    "auth_token",
    "password",
)


@dataclass(frozen=True)
class _Shape:
    """Secret-shaped text: a pattern, its replacement, and the lowercase words one of which
    any match holds (text holding none of them is not searched: each search costs a pass)."""

    pattern: str
    replacement: str
    hints: tuple[str, ...]


# Applied in this order. Each keeps what names the secret (the bot id, the key name) and
# masks the value; none swallows a "<", so chat HTML stays well-formed.
_SHAPES = (
    _Shape(
        r"(-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----)[^<]*?"
        r"(-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
        r"\1" + MASK + r"\2",
        ("-----begin",),
    ),
    # A bot token's secret is random base64: it holds a capital, "_" or "-", which keeps
    # lowercase hex digests ("sha256:ab12...") readable. The pattern starts at the ":" so
    # that the search skips ahead to each colon; the bot id before it stays.
    _Shape(
        r":(?<=[0-9]:)(?=[A-Za-z0-9_-]*[A-Z_-])[A-Za-z0-9_-]{20,}",
        ":" + MASK,
        (":",),
    ),
    _Shape(
        r"%3[Aa](?<=[0-9]%3[Aa])(?=[A-Za-z0-9_-]*[A-Z_-])[A-Za-z0-9_-]{20,}",
        "%3A" + MASK,
        ("%3a",),
    ),
    _Shape(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}", r"\1" + MASK, ("bearer",)),
    _Shape(r"ya29\.[0-9A-Za-z_.-]+", "ya29." + MASK, ("ya29.",)),
    _Shape(
        r"(?i)(" + "|".join(_KEY_NAMES) + r")(\\?[\"']?\s*[=:]\s*\\?[\"']?)"
        r"(?!-----)([^\s\"'\\&,;<>]+)",
        r"\1\2" + MASK,
        ("token", "secret", "key", "assertion", "password"),
    ),
)
_BEGIN_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_END_KEY = re.compile(rb"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----")
# Text (job output) holding none of these and no known secret needs no further look:
# single-byte tests are nearly free, and every shape needs one of these.
_SINGLE_BYTE_MARKS = (b":", b"%", b"=")
_MARKS = (b"-----", b"earer", b"EARER", b"ya29.")


_TEXT_SHAPES = [
    (re.compile(shape.pattern, re.DOTALL), shape.replacement, shape.hints) for shape in _SHAPES
]
_BYTE_SHAPES = [
    (
        re.compile(shape.pattern.encode(), re.DOTALL),
        shape.replacement.encode(),
        tuple(hint.encode() for hint in shape.hints),
    )
    for shape in _SHAPES
]


def _masked_text(text: str) -> str:
    lowered = text.lower()
    for pattern, replacement, hints in _TEXT_SHAPES:
        if any(hint in lowered for hint in hints):
            text = pattern.sub(replacement, text)
    return text


def _masked_bytes(data: bytes) -> bytes:
    lowered = data.lower()
    for pattern, replacement, hints in _BYTE_SHAPES:
        if any(hint in lowered for hint in hints):
            data = pattern.sub(replacement, data)
    return data


class Redactor:
    """Known secrets plus secret-shaped text, removed from strings and bytes.

    Thread-safe: secrets may be registered from any thread (Drive sign-in runs in one).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._known: re.Pattern[str] | None = None
        self._known_bytes: re.Pattern[bytes] | None = None
        self._known_marks: tuple[bytes, ...] = ()

    def add(self, *secrets: str | None) -> None:
        """Remember secret values; short or empty ones are ignored (they would mask words)."""
        fresh = {s.strip() for s in secrets if s and len(s.strip()) >= MIN_SECRET_LENGTH}
        with self._lock:
            if fresh <= self._secrets:
                return
            self._secrets = self._secrets | fresh
            ordered = sorted(self._secrets, key=len, reverse=True)
            alternation = "|".join(re.escape(s) for s in ordered)
            self._known = re.compile(alternation)
            self._known_bytes = re.compile(alternation.encode())
            self._known_marks = tuple(s.encode() for s in ordered)

    @property
    def secrets(self) -> frozenset[str]:
        """The registered secret values."""
        return self._secrets

    def redact(self, text: str) -> str:
        """``text`` with every known secret and secret-shaped value masked."""
        text = _masked_text(text)
        known = self._known
        return known.sub(MASK, text) if known is not None else text

    def redact_bytes(self, data: bytes) -> bytes:
        """:meth:`redact` for bytes (job output), with a fast path for harmless text."""
        if not self._might_hold_secret(data):
            return data
        data = _masked_bytes(data)
        known = self._known_bytes
        return known.sub(MASK.encode(), data) if known is not None else data

    def _might_hold_secret(self, data: bytes) -> bool:
        return (
            any(mark in data for mark in _SINGLE_BYTE_MARKS)
            or any(mark in data for mark in _MARKS)
            or any(secret in data for secret in self._known_marks)
        )

    def stream(self) -> StreamRedactor:
        """A redactor for one output stream, cut at line ends."""
        return StreamRedactor(self)


class StreamRedactor:
    """Redacts a byte stream that arrives in arbitrary chunks (a job's output).

    Only whole lines are redacted and handed back, so a secret split across two chunks is
    still found; a private key printed over many lines is masked from its ``BEGIN`` line to
    its ``END`` line.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._pending = b""
        self._in_key = False

    def feed(self, chunk: bytes) -> bytes:
        """Add output; return the redacted bytes that are ready to be written."""
        data = self._pending + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        if cut == 0:
            if len(data) <= MAX_PENDING_BYTES:
                self._pending = data
                return b""
            cut = self._safe_cut(data)
        self._pending = data[cut:]
        return self._redact(data[:cut])

    @property
    def held(self) -> int:
        """Bytes fed but not handed back yet (the start of an unfinished line)."""
        return len(self._pending)

    @property
    def settled(self) -> bool:
        """Whether the stream could start afresh here (it is not inside a private key, whose
        next lines must be masked too)."""
        return not self._in_key

    def flush(self) -> bytes:
        """The redacted rest, at the end of the stream."""
        data, self._pending = self._pending, b""
        return self._redact(data) if data else b""

    def _safe_cut(self, data: bytes) -> int:
        """Where to cut an endless line: near its end, but never inside secret-shaped text."""
        cut = len(data) - _KEEP_FOR_CUT
        for pattern, _, _ in _BYTE_SHAPES[1:]:
            for match in pattern.finditer(data, max(0, cut - _KEEP_FOR_CUT)):
                if match.start() < cut < match.end():
                    cut = match.start()
        return max(cut, 1)

    def _redact(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            if self._in_key:
                end = _END_KEY.search(data)
                if end is None:
                    out.append(MASK.encode() + b"\n")
                    break
                out.append(MASK.encode() + end.group())
                data = data[end.end() :]
                self._in_key = False
                continue
            begin = _BEGIN_KEY.search(data) if b"-----BEGIN" in data else None
            if begin is None or _END_KEY.search(data, begin.end()) is not None:
                out.append(self._redactor.redact_bytes(data))
                break
            out.append(self._redactor.redact_bytes(data[: begin.start()]) + begin.group())
            data = data[begin.end() :]
            self._in_key = True
        return b"".join(out)


SECRETS = Redactor()
"""The process's secrets: the log filter, the chat and the job log writer all use these."""


def register_secret(*values: str | None) -> None:
    """Add secret values to the process's redactor."""
    SECRETS.add(*values)


def redact(text: str) -> str:
    """``text`` with the process's secrets and secret-shaped values masked."""
    return SECRETS.redact(text)

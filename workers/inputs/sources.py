"""Pure classification of input sources. (Confinement of paths lives in
:mod:`workers.safety.paths`, file-name rules in :mod:`workers.safety.names`.)"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from workers.errors import InputError


@dataclass(frozen=True)
class LocalSource:
    """A path on this machine, as typed."""

    text: str


@dataclass(frozen=True)
class UploadSource:
    """A file delivered with the request and stored in the job's folder (a spec's
    ``uploads``; never typed)."""

    name: str


@dataclass(frozen=True)
class JobSource:
    """The outputs of an earlier job."""

    job_id: int


@dataclass(frozen=True)
class UrlSource:
    """An http(s) URL."""

    url: str


@dataclass(frozen=True)
class DriveSource:
    """A Google Drive file or folder id, with the resource key of a link that carries one."""

    file_id: str
    resource_key: str | None = None


Source = LocalSource | UploadSource | JobSource | UrlSource | DriveSource

_JOB_REF = re.compile(r"^(?:job:|#)(\d+)$")
_BARE_ID = re.compile(r"[A-Za-z0-9_-]{19,}")
_URL_ID = re.compile(r"[A-Za-z0-9_-]{10,}")
_PATH_ID = re.compile(r"/(?:d|folders)/([A-Za-z0-9_-]{10,})(?:[/?#]|$)")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
DRIVE_HOSTS = {"drive.google.com", "docs.google.com", "drive.usercontent.google.com"}


def parse_drive_ref(text: str) -> str | None:
    """The file or folder id in a Drive/Docs share link, or a bare id; None for anything else.

    A bare id is 19 or more of ``A-Z a-z 0-9 _ -``, so callers that also accept local paths
    should look for the path first.
    """
    text = text.strip().strip("<>")
    if _BARE_ID.fullmatch(text):
        return text
    url = text if "://" in text else "https://" + text
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.hostname not in DRIVE_HOSTS:
        return None
    in_path = _PATH_ID.search(parts.path)
    if in_path is not None:
        return in_path.group(1)
    ids = parse_qs(parts.query).get("id", [])
    if ids and _URL_ID.fullmatch(ids[0]):
        return ids[0]
    return None


def drive_resource_key(text: str) -> str | None:
    """The ``resourcekey=`` of a Drive link (files shared by link may need it), or None."""
    url = text.strip().strip("<>")
    if "://" not in url:
        url = "https://" + url
    try:
        keys = parse_qs(urlsplit(url).query).get("resourcekey", [])
    except ValueError:
        return None
    return keys[0] if keys and re.fullmatch(r"[A-Za-z0-9_-]{1,100}", keys[0]) else None


def classify(text: str, *, model_slot: bool = False) -> Source:
    """Which kind of source ``text`` is; raise InputError for unusable forms.

    In a model slot a bare number means a job id.
    """
    text = text.strip()
    if not text:
        raise InputError(text, "empty input")
    job = _JOB_REF.match(text)
    if job:
        return JobSource(int(job.group(1)))
    if model_slot and text.isdigit():
        return JobSource(int(text))
    if text.startswith("drive:"):
        drive_id = parse_drive_ref(text[len("drive:") :])
        if drive_id is None:
            raise InputError(text, "not a Google Drive file or folder id")
        return DriveSource(drive_id, drive_resource_key(text[len("drive:") :]))
    if text.startswith(("http://", "https://")) and urlsplit(text).hostname in DRIVE_HOSTS:
        drive_id = parse_drive_ref(text)
        if drive_id is None:
            raise InputError(text, "this Google Drive link names no file or folder")
        return DriveSource(drive_id, drive_resource_key(text))
    scheme = _SCHEME.match(text)
    if scheme and len(scheme.group(1)) > 1:
        name = scheme.group(1).lower()
        if name in ("http", "https"):
            if not urlsplit(text).hostname:
                raise InputError(text, "the URL has no host")
            return UrlSource(text)
        if name == "file":
            raise InputError(text, "file:// URLs are not accepted; give the path itself")
        raise InputError(
            text,
            f"unknown link format ({name}:); use a path, an http(s) URL or a Google Drive link",
        )
    return LocalSource(text)


def local_file_name(text: str) -> str | None:
    """The file name of a path (or of an upload, named by its file name); None for links,
    job ids and bad forms."""
    try:
        source = classify(text)
    except InputError:
        return None
    if isinstance(source, LocalSource) and not text.strip().isdigit():
        return Path(source.text.rstrip("/")).name or None
    return None

"""Request parameters of a Bot API call, from any body encoding Telegram accepts.

Form and multipart values arrive as strings with nested objects JSON-encoded; JSON bodies carry
native values. Uploaded files are streamed to a staging folder, never held in memory, and a
part larger than the method allows is refused as soon as it is seen to be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from emulator.errors import ApiError, bad_request

if TYPE_CHECKING:
    from pathlib import Path

_CHUNK = 1 << 20
_MAX_FIELD_BYTES = 1 << 20


def too_large() -> ApiError:
    """Return the error Telegram's front end gives for an oversized request."""
    return ApiError(413, "Request Entity Too Large")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request, saved in the staging folder."""

    field: str
    filename: str | None
    content_type: str | None
    path: Path
    size: int


class Params:
    """The parameters of one call, with Telegram's coercions and error texts."""

    def __init__(self, values: dict[str, Any], files: dict[str, UploadedFile]) -> None:
        self.values = values
        self.files = files

    def has(self, name: str) -> bool:
        """Whether the parameter was sent at all."""
        return name in self.values or name in self.files

    def text(self, name: str) -> str | None:
        """The parameter as a string, or ``None`` when absent."""
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return json.dumps(value)

    def integer(self, name: str) -> int | None:
        """The parameter as an integer, or ``None`` when absent or empty."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise bad_request(f"invalid {name} specified") from None

    def require_int(self, name: str) -> int:
        """The parameter as an integer; a missing one is ``Bad Request: <name> is empty``."""
        value = self.integer(name)
        if value is None:
            raise bad_request(f"{name} is empty")
        return value

    def number(self, name: str) -> float | None:
        """The parameter as a float, or ``None`` when absent or empty."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def flag(self, name: str) -> bool:
        """The parameter as a boolean (``true``/``1``); absent means ``False``."""
        value = self.values.get(name)
        if isinstance(value, bool):
            return value
        if value is None:
            return False
        return str(value).strip().lower() in {"true", "1", "yes"}

    def json(self, name: str, what: str) -> Any:
        """The parameter decoded from JSON; ``what`` names it in the error Telegram gives."""
        value = self.values.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            return value
        if value == "":
            return None
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {what} JSON object") from None

    def input_file(self, name: str) -> UploadedFile | str | None:
        """An uploaded file (direct part or ``attach://``) or a file_id/URL string."""
        if name in self.files:
            return self.files[name]
        value = self.text(name)
        if value is None:
            return None
        if value.startswith("attach://"):
            attached = self.files.get(value.removeprefix("attach://"))
            if attached is None:
                raise bad_request(f"can't find {name} attachment in the request")
            return attached
        return value

    def summary(self) -> dict[str, Any]:
        """The parameters for a call log, files described rather than included."""
        described: dict[str, Any] = dict(self.values)
        for name, upload in self.files.items():
            described[name] = f"<file {upload.filename or name}, {upload.size} bytes>"
        return described

    async def discard(self, keep: set[Path] | None = None) -> None:
        """Delete staged uploads not in ``keep``."""
        leftovers = [f.path for f in self.files.values() if not keep or f.path not in keep]
        if leftovers:
            await asyncio.to_thread(_unlink_all, leftovers)


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


async def read_params(request: web.Request, staging: Path, max_file_size: int) -> Params:
    """Read the query string and body of ``request`` into :class:`Params`."""
    values: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    if not request.body_exists:
        return Params(values, files)
    content_type = request.content_type
    try:
        if content_type == "multipart/form-data":
            await _read_multipart(request, staging, max_file_size, values, files)
        elif content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise bad_request("parameters must be a JSON object")
            values.update(body)
        elif content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            values.update({key: str(value) for key, value in form.items()})
    except web.HTTPRequestEntityTooLarge:
        await Params(values, files).discard()
        raise too_large() from None
    except ValueError:
        await Params(values, files).discard()
        raise bad_request("can't parse request body") from None
    except BaseException:
        await Params(values, files).discard()
        raise
    return Params(values, files)


async def _read_multipart(
    request: web.Request,
    staging: Path,
    max_file_size: int,
    values: dict[str, Any],
    files: dict[str, UploadedFile],
) -> None:
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            return
        if not isinstance(part, BodyPartReader) or part.name is None:
            await part.release()
            continue
        if part.filename is None:
            values[part.name] = await _read_field(part)
            continue
        files[part.name] = await _save_part(part, part.name, staging, max_file_size)


async def _read_field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        data.extend(chunk)
        if len(data) > _MAX_FIELD_BYTES:
            raise too_large()
    charset = part.get_charset(default="utf-8")
    return data.decode(charset, errors="replace")


async def _save_part(
    part: BodyPartReader, name: str, staging: Path, max_file_size: int
) -> UploadedFile:
    path = staging / uuid.uuid4().hex
    size = 0
    handle = await asyncio.to_thread(path.open, "wb")
    try:
        while chunk := await part.read_chunk(_CHUNK):
            size += len(chunk)
            if size > max_file_size:
                raise too_large()
            await asyncio.to_thread(handle.write, chunk)
    except BaseException:
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(_unlink_all, [path])
        raise
    await asyncio.to_thread(handle.close)
    return UploadedFile(
        field=name,
        filename=part.filename,
        content_type=part.headers.get("Content-Type"),
        path=path,
        size=size,
    )

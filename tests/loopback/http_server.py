"""A loopback http server for input downloads: Range requests, broken connections, redirects,
errors, a server that lies about Content-Length and one that stalls."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from aiohttp import web


async def serve_on_loopback(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on 127.0.0.1 on a free port: its runner (to clean up) and base URL."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@dataclass
class Served:
    """What the server holds and what it has seen."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    drops_left: dict[str, int] = field(default_factory=dict)
    bytes_sent: int = 0


class HttpServer:
    """``await server.start()``; ``server.url(path)``; ``await server.stop()``."""

    def __init__(self) -> None:
        self.served = Served()
        self._runner: web.AppRunner | None = None
        self.base = ""

    def add(self, name: str, data: bytes, *, drop_times: int = 0) -> str:
        """Serve ``data`` at /files/<name>; break the first ``drop_times`` responses halfway."""
        self.served.files[name] = data
        self.served.drops_left[name] = drop_times
        return self.url(f"/files/{name}")

    def url(self, path: str) -> str:
        """The absolute URL of a path on this server."""
        return self.base + path

    def ranges_seen(self, path: str) -> list[str | None]:
        """The Range headers of every request for ``path``."""
        return [r for p, r in self.served.requests if p == path]

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_get("/files/{name}", self._file)
        app.router.add_get("/redirect/{hops}/{name}", self._redirect)
        app.router.add_get("/internal-redirect", self._internal_redirect)
        app.router.add_get("/status/{code}", self._status)
        app.router.add_get("/liar/{name}", self._liar)
        app.router.add_get("/no-range/{name}", self._no_range)
        app.router.add_get("/stall", self._stall)
        app.router.add_get("/named", self._named)
        app.router.add_get("/named-utf8", self._named_utf8)
        self._runner, self.base = await serve_on_loopback(app)

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def _note(self, request: web.Request) -> None:
        self.served.requests.append((request.path, request.headers.get("Range")))

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        name = request.match_info["name"]
        data = self.served.files.get(name)
        if data is None:
            raise web.HTTPNotFound()
        etag = '"' + hashlib.md5(data).hexdigest() + '"'  # noqa: S324 - an ETag, not security
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        start = 0
        status = 200
        headers = {"ETag": etag, "Accept-Ranges": "bytes"}
        wanted = request.headers.get("Range", "")
        if wanted.startswith("bytes="):
            start = int(wanted[6:].split("-")[0])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        headers["Content-Length"] = str(len(body))
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        if self.served.drops_left.get(name, 0) > 0:
            self.served.drops_left[name] -= 1
            await response.write(body[: len(body) // 2])
            self.served.bytes_sent += len(body) // 2
            assert request.transport is not None
            request.transport.close()
            return response
        view = memoryview(body)
        for offset in range(0, len(body), 256 * 1024):
            await response.write(view[offset : offset + 256 * 1024])
        self.served.bytes_sent += len(body)
        await response.write_eof()
        return response

    async def _redirect(self, request: web.Request) -> web.Response:
        self._note(request)
        hops = int(request.match_info["hops"])
        name = request.match_info["name"]
        target = f"/redirect/{hops - 1}/{name}" if hops > 1 else f"/files/{name}"
        raise web.HTTPFound(target)

    async def _internal_redirect(self, request: web.Request) -> web.Response:
        self._note(request)
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def _status(self, request: web.Request) -> web.Response:
        self._note(request)
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def _liar(self, request: web.Request) -> web.StreamResponse:
        """Promises twice the bytes it sends, then closes."""
        self._note(request)
        data = self.served.files[request.match_info["name"]]
        response = web.StreamResponse(headers={"Content-Length": str(2 * len(data))})
        await response.prepare(request)
        await response.write(data)
        assert request.transport is not None
        request.transport.close()
        return response

    async def _no_range(self, request: web.Request) -> web.StreamResponse:
        """Ignores Range and breaks the first response halfway."""
        self._note(request)
        name = request.match_info["name"]
        data = self.served.files[name]
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        if self.served.drops_left.get(name, 0) > 0:
            self.served.drops_left[name] -= 1
            await response.write(data[: len(data) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(data)
        await response.write_eof()
        return response

    async def _stall(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await asyncio.sleep(3600)
        return response

    async def _named(self, request: web.Request) -> web.Response:
        self._note(request)
        return web.Response(
            body=b"named content",
            headers={"Content-Disposition": 'attachment; filename="../../evil name.txt"'},
        )

    async def _named_utf8(self, request: web.Request) -> web.Response:
        """A name in RFC 6266's extended form beside a plain fallback, as browsers get it."""
        self._note(request)
        header = "attachment; filename=\"resume.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
        return web.Response(body=b"utf-8 named", headers={"Content-Disposition": header})

"""A loopback stand-in for the W&B API's sign-in check, as W&B documents it: the client asks
``POST /graphql`` for the ``viewer`` with HTTP basic auth (user ``api``, password the key);
a key W&B does not know gets ``401`` with a GraphQL ``errors`` list. Telemetry posts are
taken and dropped. Only the sign-in is served: a run that is let in would need W&B's whole
upload protocol, which colabot never speaks itself."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from aiohttp import web

from tests.loopback.http_server import serve_on_loopback


@dataclass
class WandbServer:
    """``await server.start()``; ``server.base``; ``await server.stop()``."""

    keys: set[str] = field(default_factory=set)
    seen_keys: list[str] = field(default_factory=list)
    base: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_post("/graphql", self._graphql)
        app.router.add_post("/sdk/otel/v1/{signal}", self._telemetry)
        self._runner, self.base = await serve_on_loopback(app)

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def _key(self, request: web.Request) -> str:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return ""
        user, _, key = base64.b64decode(encoded).decode(errors="replace").partition(":")
        return key if user == "api" else ""

    async def _graphql(self, request: web.Request) -> web.Response:
        await request.read()
        key = self._key(request)
        self.seen_keys.append(key)
        if key not in self.keys:
            return web.json_response({"errors": [{"message": "user is not logged in"}]}, status=401)
        viewer = {"id": "VXNlcjox", "entity": "colabot-tests", "username": "tester"}
        return web.json_response(
            {"data": {"viewer": {**viewer, "email": "", "teams": {"edges": []}}}}
        )

    async def _telemetry(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

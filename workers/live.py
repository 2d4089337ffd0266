"""Live sockets for a step on this machine: messages in from the job, commands out to it.

colabot binds both ends on 127.0.0.1, on free ports, and the job connects to them (that is
how sleap-nn's ZMQ progress publisher and training controller work). Messages are size-capped
and handed over as text; what they mean is the step's parser's business. Only used where
the step runs on this machine: a cluster node cannot reach colabot's loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

LOOPBACK = "tcp://127.0.0.1"
MAX_MESSAGE_BYTES = 64 * 1024
# Progress that cannot be read at once is dropped (the next message supersedes it), so a
# job that publishes faster than colabot reads never makes it hoard memory.
RECEIVE_QUEUE = 1000
# At the end, what arrives within this long of the last message still counts.
DRAIN_QUIET_MS = 100


class LiveChannel:
    """A SUB socket the job publishes progress to and a PUB socket it takes commands from."""

    def __init__(self, on_message: Callable[[str], None]) -> None:
        import zmq
        import zmq.asyncio

        self._on_message = on_message
        self._context = zmq.asyncio.Context.instance()
        self._incoming = self._context.socket(zmq.SUB)
        self._outgoing = self._context.socket(zmq.PUB)
        for socket in (self._incoming, self._outgoing):
            socket.setsockopt(zmq.LINGER, 0)
        self._incoming.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self._incoming.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
        self._incoming.subscribe(b"")
        try:
            self.progress_port = self._incoming.bind_to_random_port(LOOPBACK)
            self.control_port = self._outgoing.bind_to_random_port(LOOPBACK)
        except zmq.ZMQError:
            self.close()
            raise
        self._task: asyncio.Task[None] | None = None
        self.received = 0

    def start(self) -> None:
        """Start handing incoming messages to ``on_message``."""
        if self._task is None:
            self._task = asyncio.create_task(self._receive())

    async def _receive(self) -> None:
        while True:
            try:
                data = await self._incoming.recv()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a closed socket or a broken message: stop listening
                log.debug("live channel stopped: %s", exc)
                return
            self._handle(bytes(data))

    def _handle(self, data: bytes) -> None:
        self.received += 1
        try:
            self._on_message(data.decode("utf-8", errors="replace"))
        except Exception:  # a progress parser must never stop the channel
            log.debug("a live message could not be handled", exc_info=True)

    def send(self, text: str) -> None:
        """Publish one command to the job (it hears it at its next check)."""
        import zmq

        self._outgoing.send_string(text, flags=zmq.NOBLOCK)

    async def close_async(self) -> None:
        """Hand over what the job sent before it ended (its last messages can trail its
        exit), then close both sockets."""
        import zmq

        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _ in range(RECEIVE_QUEUE):
            try:
                if not await self._incoming.poll(DRAIN_QUIET_MS):
                    break
                data = await self._incoming.recv(flags=zmq.NOBLOCK)
            except Exception:  # closed, or nothing left after all
                break
            self._handle(bytes(data))
        self.close()

    def close(self) -> None:
        """Close both sockets at once (nothing queued is kept)."""
        for socket in (self._incoming, self._outgoing):
            with contextlib.suppress(Exception):
                socket.close(linger=0)

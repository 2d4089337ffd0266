"""Live sockets for a step on this machine: messages in from the job, commands out to it.

colabot binds both ends as ZMQ ``ipc://`` sockets (Unix sockets) in a folder made for the
step (0700, with a random name) and removed when the step ends, and the job connects to them
(a SUB that the job's progress publisher reaches, a PUB its training controller listens to).
Only colabot's own user can reach them. A port on 127.0.0.1 was no such boundary: every
local user reaches loopback, and a port colabot no longer holds can be bound by anyone.

What comes in is untrusted all the same: ZMQ drops a message over 64 KiB, and a reader
thread takes every message off the socket as it comes into one buffer of at most
:data:`BUFFER` messages (the oldest go when it is full), so what colabot holds stays bounded
however many peers connect and however busy its event loop is. Messages are handed over as
text; what they mean is the step's parser's business. Only used where the step runs on this
machine: a cluster node cannot reach colabot's sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
BUFFER = 256
"""The most messages colabot holds for a step at once, from all its peers together."""
PEER_QUEUE = 16
# ZMQ's own queue per connected peer (RCVHWM); the reader thread empties it as it fills.
DRAIN_QUIET_MS = 100
# At the end, what arrives within this long of the last message still counts.
POLL_MS = 50
# How often the reader thread looks whether the step has ended.
MAX_SOCKET_PATH = 100
"""A Unix socket's path must fit in about 100 bytes (108 on Linux, 104 on macOS)."""
SOCKET_NAMES = ("progress", "control")
FOLDER_PREFIX = ".live-"
_RANDOM_CHARS = 8  # what tempfile.mkdtemp adds to the prefix


def fits(parent: Path) -> bool:
    """Whether the sockets' paths fit when their folder is made in ``parent``."""
    longest = max(len(name) for name in SOCKET_NAMES)
    folder = len(os.fsencode(str(parent))) + 1 + len(FOLDER_PREFIX) + _RANDOM_CHARS
    return folder + 1 + longest <= MAX_SOCKET_PATH


def private_parent(parent: Path) -> bool:
    """Whether ``parent`` is a folder of colabot's user that nobody else may write to (so
    nobody else can move a folder in it aside and put their own in its place)."""
    try:
        info = parent.stat()
    except OSError:
        return False
    mode = info.st_mode
    return stat.S_ISDIR(mode) and info.st_uid == os.getuid() and not mode & 0o022


def socket_folder(near: Path | None) -> Path:
    """A new private folder (0700, random name) for a step's sockets: in ``near`` (the job's
    folder) when it is private and the paths fit, else in the system's temporary folder
    (sticky: nobody else can move it). OSError when no place fits."""
    candidates = [near] if near is not None and private_parent(near) else []
    candidates.append(Path(tempfile.gettempdir()))
    for parent in candidates:
        if fits(parent):
            return Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=parent))
    raise OSError(f"no folder short enough for the live sockets (at most {MAX_SOCKET_PATH} bytes)")


class LiveChannel:
    """A SUB socket the job publishes progress to and a PUB socket it takes commands from,
    both in a private folder of their own (``folder``)."""

    def __init__(self, on_message: Callable[[str], None], near: Path | None = None) -> None:
        import zmq

        self._on_message = on_message
        self.folder = socket_folder(near)
        self.progress_address = f"ipc://{self.folder / SOCKET_NAMES[0]}"
        self.control_address = f"ipc://{self.folder / SOCKET_NAMES[1]}"
        self._lock = threading.Lock()
        self._buffer: deque[bytes] = deque(maxlen=BUFFER)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._closed = False
        self.received = 0
        """Messages taken off the socket."""
        self.dropped = 0
        """Messages dropped because :data:`BUFFER` were waiting already."""
        self.peak = 0
        """The most messages that were waiting at once."""
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._incoming = context.socket(zmq.SUB)
        self._outgoing = context.socket(zmq.PUB)
        try:
            for socket in (self._incoming, self._outgoing):
                socket.setsockopt(zmq.LINGER, 0)
            self._incoming.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            self._incoming.setsockopt(zmq.RCVHWM, PEER_QUEUE)
            self._incoming.subscribe(b"")
            self._incoming.bind(self.progress_address)
            self._outgoing.bind(self.control_address)
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        """Start reading, and handing messages to ``on_message`` in this event loop."""
        if self._thread is None and not self._closed:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._read, name="colabot-live", daemon=True)
            self._thread.start()

    def _read(self) -> None:
        """Take messages off the socket as they come (the reader thread): a flood cannot
        pile up in ZMQ's queues, only in the bounded buffer. Once the step has ended, read
        on until it has been quiet for a moment (at most one buffer more)."""
        import zmq

        left = BUFFER
        while left > 0:
            stopping = self._stopping.is_set()
            try:
                ready = self._incoming.poll(DRAIN_QUIET_MS if stopping else POLL_MS)
            except zmq.ZMQError:
                return
            if not ready:
                if stopping:
                    return
                continue
            for _ in range(BUFFER):
                try:
                    data = self._incoming.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                except zmq.ZMQError:
                    return
                self._keep(data)
                if stopping:
                    left -= 1
            self._wake()

    def _keep(self, data: bytes) -> None:
        with self._lock:
            self.received += 1
            if len(self._buffer) == BUFFER:
                self.dropped += 1  # the deque lets the oldest go
            self._buffer.append(data)
            self.peak = max(self.peak, len(self._buffer))

    def _wake(self) -> None:
        """Have the event loop take what is waiting (once, however many came)."""
        with self._lock:
            if self._scheduled or not self._buffer or self._loop is None:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop has closed
            self._loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        with self._lock:
            batch = list(self._buffer)
            self._buffer.clear()
            self._scheduled = False
        for data in batch:
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
        exit), then close both sockets and remove their folder."""
        if self._closed:
            return
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        else:
            await asyncio.to_thread(self._read)
        self._hand_over()
        self.close()

    def close(self) -> None:
        """Close both sockets at once (nothing waiting is handed over) and remove their
        folder."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            self._buffer.clear()
        for socket in (self._incoming, self._outgoing):
            with contextlib.suppress(Exception):
                socket.close(linger=0)
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.dropped:
            log.warning(
                "live channel: %d of %d messages dropped (more than %d were waiting)",
                self.dropped,
                self.received,
                BUFFER,
            )

"""The live channel: private ipc sockets a job connects to, driven by real ZMQ peers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from workers.live import (
    BUFFER,
    FOLDER_PREFIX,
    MAX_MESSAGE_BYTES,
    MAX_SOCKET_PATH,
    SOCKET_NAMES,
    LiveChannel,
    fits,
)


async def keep_sending(send: Callable[[], Awaitable[object]], heard: asyncio.Event) -> None:
    """Send until ``heard`` is set: a publisher's first messages are lost until the
    subscriber has joined, as with a trainer's steady stream of batches."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not heard.is_set():
        assert loop.time() < deadline, "nothing was heard in 10 s"
        await send()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(heard.wait(), timeout=0.05)


class Inbox:
    """What the channel handed over, and an event per new message."""

    def __init__(self) -> None:
        self.got: list[str] = []
        self.new = asyncio.Event()

    def __call__(self, text: str) -> None:
        self.got.append(text)
        self.new.set()


def hold_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for ``predicate`` WITHOUT letting the event loop run (as a busy colabot would)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def socket_path(address: str) -> Path:
    assert address.startswith("ipc://"), address
    return Path(address.removeprefix("ipc://"))


@pytest.fixture
def peers() -> Iterator[list[zmq.Socket[bytes]]]:
    """Plain ZMQ sockets a test opens as the job (or a stranger); closed after it."""
    opened: list[zmq.Socket[bytes]] = []
    yield opened
    for socket in opened:
        socket.close(linger=0)


def peer(peers: list[zmq.Socket[bytes]], kind: int, address: str) -> zmq.Socket[bytes]:
    socket: zmq.Socket[bytes] = zmq.Context.instance().socket(kind)
    peers.append(socket)
    if kind == zmq.SUB:
        socket.subscribe(b"")
    socket.connect(address)
    return socket


async def test_messages_come_in_and_commands_go_out(peers: list[zmq.Socket[bytes]]) -> None:
    inbox = Inbox()
    channel = LiveChannel(inbox)
    channel.start()
    try:
        job_out = peer(peers, zmq.PUB, channel.progress_address)
        job_in = peer(peers, zmq.SUB, channel.control_address)

        async def send_progress() -> None:
            job_out.send_string('{"event": "batch_end"}')

        await keep_sending(send_progress, inbox.new)
        assert inbox.got[0] == '{"event": "batch_end"}'

        stop_heard = asyncio.Event()

        async def send_stop() -> None:
            channel.send('{"command": "stop"}')
            if job_in.poll(0):
                stop_heard.set()

        await keep_sending(send_stop, stop_heard)
        assert job_in.recv_string() == '{"command": "stop"}'

        # An oversized message is never handed over (ZMQ drops that peer); the channel
        # goes on listening to the next one.
        job_out.send(b"x" * (MAX_MESSAGE_BYTES + 1))
        job_out = peer(peers, zmq.PUB, channel.progress_address)
        inbox.new.clear()

        async def send_after() -> None:
            job_out.send_string("after")

        await keep_sending(send_after, inbox.new)
        assert inbox.got[-1] == "after"
        assert all(len(text) <= MAX_MESSAGE_BYTES for text in inbox.got)
    finally:
        await channel.close_async()


async def test_messages_still_queued_when_the_step_ends_are_handed_over() -> None:
    inbox = Inbox()
    channel = LiveChannel(inbox)
    job_out = zmq.asyncio.Context.instance().socket(zmq.PUB)
    try:
        job_out.connect(channel.progress_address)
        channel.start()
        await keep_sending(lambda: job_out.send_string("hello"), inbox.new)
        await job_out.send_string("train_end")
        job_out.close(linger=1000)  # as sleap-nn's reporter closes, just before the job exits
        await channel.close_async()
        assert inbox.got[-1] == "train_end"
    finally:
        job_out.close(linger=0)


def test_each_channel_has_a_private_folder_of_its_own_removed_at_the_end(tmp_path: Path) -> None:
    job = tmp_path / "j"
    job.mkdir(mode=0o700)
    os.chmod(job, 0o700)
    first, second = LiveChannel(lambda _text: None, job), LiveChannel(lambda _text: None, job)
    folders = [first.folder, second.folder]
    try:
        assert first.folder != second.folder
        for channel in (first, second):
            assert channel.folder.parent == job and channel.folder.name.startswith(FOLDER_PREFIX)
            assert stat.S_IMODE(channel.folder.stat().st_mode) == 0o700
            assert channel.folder.stat().st_uid == os.getuid()
            paths = [socket_path(channel.progress_address), socket_path(channel.control_address)]
            assert [p.name for p in paths] == list(SOCKET_NAMES)
            for path in paths:
                assert path.parent == channel.folder and stat.S_ISSOCK(path.stat().st_mode)
                assert len(os.fsencode(str(path))) <= MAX_SOCKET_PATH
    finally:
        first.close()
        second.close()
    assert not any(folder.exists() for folder in folders)
    assert list(job.iterdir()) == []


def test_a_job_folder_too_long_or_open_to_others_gets_a_folder_in_the_temp_folder(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True, mode=0o700)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o770)  # noqa: S103 - others in its group may write to it
    assert not fits(deep) and fits(shared)
    for near in (deep, shared):
        channel = LiveChannel(lambda _text: None, near)
        try:
            assert channel.folder.parent != near and channel.folder.name.startswith(FOLDER_PREFIX)
            assert stat.S_IMODE(channel.folder.stat().st_mode) == 0o700
            assert stat.S_ISSOCK(socket_path(channel.progress_address).stat().st_mode)
        finally:
            channel.close()
        assert not channel.folder.exists()
        assert list(near.iterdir()) == []


async def test_many_peers_cannot_grow_the_buffer_past_its_cap(
    peers: list[zmq.Socket[bytes]],
) -> None:
    inbox = Inbox()
    channel = LiveChannel(inbox)
    channel.start()
    count, each = 6, 200
    try:
        publishers = [peer(peers, zmq.PUB, channel.progress_address) for _ in range(count)]
        for index, publisher in enumerate(publishers):
            inbox.new.clear()

            async def hello(publisher: zmq.Socket[bytes] = publisher, index: int = index) -> None:
                publisher.send_string(f"hello {index}")

            await keep_sending(hello, inbox.new)
        # colabot is busy (this coroutine holds the loop) while every peer floods it.
        start = channel.received
        for publisher in publishers:
            for n in range(each):
                publisher.send(b"%d " % n + b"x" * 1000, flags=zmq.NOBLOCK)
        total = count * each
        hold_until(lambda: channel.received >= start + total, 30, "the flood to be read")
        assert channel.received == start + total  # nothing lost by ZMQ on the way
        assert channel.peak == BUFFER
        assert channel.dropped >= total - BUFFER
        before = len(inbox.got)
        inbox.new.clear()
        await asyncio.wait_for(inbox.new.wait(), timeout=10)
        flood = [text for text in inbox.got[before:] if not text.startswith("hello")]
        assert len(flood) <= BUFFER  # the newest ones: the oldest went first
        assert any(text.startswith(f"{each - 1} ") for text in flood)
    finally:
        await channel.close_async()

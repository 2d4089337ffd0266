"""The live channel: loopback ZMQ sockets a job connects to, driven by a real ZMQ peer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import zmq
import zmq.asyncio

from workers.live import MAX_MESSAGE_BYTES, LiveChannel


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


async def test_messages_come_in_and_commands_go_out() -> None:
    inbox = Inbox()
    channel = LiveChannel(inbox)
    channel.start()
    context = zmq.asyncio.Context.instance()
    job_out, job_in = context.socket(zmq.PUB), context.socket(zmq.SUB)
    job_in.subscribe(b"")
    try:
        job_out.connect(f"tcp://127.0.0.1:{channel.progress_port}")
        job_in.connect(f"tcp://127.0.0.1:{channel.control_port}")
        await keep_sending(lambda: job_out.send_string('{"event": "batch_end"}'), inbox.new)
        assert inbox.got[0] == '{"event": "batch_end"}'

        stop_heard = asyncio.Event()
        heard = asyncio.ensure_future(job_in.recv_string())
        heard.add_done_callback(lambda _f: stop_heard.set())

        async def send_stop() -> None:
            channel.send('{"command": "stop"}')

        await keep_sending(send_stop, stop_heard)
        assert heard.result() == '{"command": "stop"}'

        # An oversized message is never handed over (ZMQ drops that peer); the channel
        # goes on listening to the next one.
        await job_out.send(b"x" * (MAX_MESSAGE_BYTES + 1))
        job_out.close(linger=0)
        job_out = context.socket(zmq.PUB)
        job_out.connect(f"tcp://127.0.0.1:{channel.progress_port}")
        inbox.new.clear()
        await keep_sending(lambda: job_out.send_string("after"), inbox.new)
        assert inbox.got[-1] == "after"
        assert all(len(text) <= MAX_MESSAGE_BYTES for text in inbox.got)
    finally:
        job_out.close(linger=0)
        job_in.close(linger=0)
        await channel.close_async()


async def test_messages_still_queued_when_the_step_ends_are_handed_over() -> None:
    inbox = Inbox()
    channel = LiveChannel(inbox)
    job_out = zmq.asyncio.Context.instance().socket(zmq.PUB)
    try:
        job_out.connect(f"tcp://127.0.0.1:{channel.progress_port}")
        channel.start()
        await keep_sending(lambda: job_out.send_string("hello"), inbox.new)
        await job_out.send_string("train_end")
        job_out.close(linger=1000)  # as sleap-nn's reporter closes, just before the job exits
        await channel.close_async()
        assert inbox.got[-1] == "train_end"
    finally:
        job_out.close(linger=0)


def test_each_channel_binds_its_own_free_loopback_ports() -> None:
    first, second = LiveChannel(lambda _text: None), LiveChannel(lambda _text: None)
    try:
        ports = {first.progress_port, first.control_port, second.progress_port, second.control_port}
        assert len(ports) == 4
    finally:
        first.close()
        second.close()

"""wait_at_most: a bounded wait for an event that never loses a cancel, even one that comes
just as the event is set (``asyncio.wait_for`` on Python 3.11 loses that one, and a loop
stopped by cancelling it never stops)."""

from __future__ import annotations

import asyncio

from workers.waits import wait_at_most


async def test_it_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_at_most(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_at_most(event, 5) is True
    assert await wait_at_most(event, 0) is True


async def test_a_cancel_that_comes_as_the_event_is_set_stops_the_loop() -> None:
    event = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            event.clear()
            rounds += 1
            await wait_at_most(event, 10)

    task = asyncio.create_task(loop())
    while rounds == 0:
        await asyncio.sleep(0)
    event.set()
    await asyncio.sleep(0)  # the wait is over and the loop is due to wake
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done == {task} and task.cancelled(), "the cancel was lost; the loop goes on"

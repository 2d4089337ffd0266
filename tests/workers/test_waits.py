"""wait_at_most: a bounded wait for an event that never loses a cancel, even one that comes
just as the event is set (``asyncio.wait_for`` on Python 3.11 loses that one, and a loop
stopped by cancelling it never stops); Foreground: background work steps aside while an
answer is in hand, a bounded while at a time."""

from __future__ import annotations

import asyncio

from workers.waits import Foreground, wait_at_most


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


async def test_background_work_steps_aside_while_the_foreground_is_held() -> None:
    foreground = Foreground(max_pause_s=60, max_hold_s=600)
    await asyncio.wait_for(foreground.step_aside(), 5)  # nothing held: one turn of the loop
    busy: list[bool] = []
    with foreground.held():
        with foreground.held():
            busy.append(foreground.busy)
        busy.append(foreground.busy)
        waiting = asyncio.create_task(foreground.step_aside())
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done(), "it went on while the answer was in hand"
    busy.append(foreground.busy)
    assert busy == [True, True, False]
    await asyncio.wait_for(waiting, 5)


async def test_a_long_foreground_pauses_background_work_only_a_while() -> None:
    foreground = Foreground(max_pause_s=0.01)
    with foreground.held():
        await asyncio.wait_for(foreground.step_aside(), 5)
        assert foreground.busy


async def test_an_answer_that_takes_long_no_longer_holds_background_work_up() -> None:
    now = [100.0]
    foreground = Foreground(max_pause_s=60, max_hold_s=2, clock=lambda: now[0])
    with foreground.held():
        waiting = asyncio.create_task(foreground.step_aside())
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done()
        now[0] += 3  # a download, say: long work from now on
        with foreground.held():
            pass  # a quick answer ends, and the one waiting looks again
        await asyncio.wait_for(waiting, 5)
        assert not foreground.busy
        await asyncio.wait_for(foreground.step_aside(), 5)

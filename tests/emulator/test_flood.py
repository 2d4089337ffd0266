"""Telegram's flood limits in the emulator, met by the real python-telegram-bot and aiohttp.

Most tests run the emulator on a hand-moved clock, so that a minute of Telegram's time takes
none of the test's; the two on the real clock wait only what the limit itself asks.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto
from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter, ExtBot

from emulator import BotApiEmulator, FloodLimits, SentMessage, rate_report
from emulator.flood import (
    COUNTED_METHODS,
    DEFAULT_FLOOD_LIMITS,
    FloodGate,
    FloodRefusal,
    max_in_window,
)
from tests.emulator.faults import FaultyBotApi, ShareFailure
from tests.emulator.helpers import BOT_ID, USER_ID, png_bytes

GROUP = -4001
SUPERGROUP = -1_000_000_004_002
START = 1_700_000_000.0


class ManualClock:
    """A clock that moves only when told."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Starter = Callable[..., Awaitable[tuple[FaultyBotApi, Bot]]]


@pytest.fixture
def clock() -> ManualClock:
    """The emulator's clock, moved by hand."""
    return ManualClock()


@pytest.fixture
async def start(
    files_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Starter]:
    """Start an emulator with the given flood ``limits`` (the defaults unless given) on
    ``clock`` (the hand-moved one unless given), the user's chat open, and a Bot on it."""
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # retry_after as a timedelta, as colabot has it
    async with AsyncExitStack() as stack:

        async def starter(
            limits: FloodLimits | None = DEFAULT_FLOOD_LIMITS,
            *,
            clock_: Callable[[], float] | None = None,
        ) -> tuple[FaultyBotApi, Bot]:
            emu = FaultyBotApi(files_dir, bot_id=BOT_ID, limits=limits, clock=clock_ or clock)
            await emu.start()
            stack.push_async_callback(emu.stop)
            emu.add_chat(USER_ID, first_name="Ada")
            telegram_bot = Bot(emu.token, base_url=emu.base_url, base_file_url=emu.base_file_url)
            await stack.enter_async_context(telegram_bot)
            return emu, telegram_bot

        yield starter


async def refused(call: Awaitable[Any]) -> int:
    """Await ``call``, which must fail with RetryAfter; return its retry_after in seconds."""
    with pytest.raises(RetryAfter) as caught:
        await call
    retry = caught.value.retry_after
    assert isinstance(retry, dtm.timedelta)
    return int(retry.total_seconds())


# ------------------------------------------------------------------ the limits, over HTTP


async def test_a_group_takes_twenty_messages_a_minute_and_says_when_to_retry(
    start: Starter, clock: ManualClock
) -> None:
    emu, bot = await start()
    emu.add_chat(GROUP, title="Lab")
    for number in range(20):
        await bot.send_message(GROUP, f"message {number}")
        clock.advance(1.0)  # 1 a second: the private-chat pace is no help in a group

    assert await refused(bot.send_message(GROUP, "one too many")) == 40
    clock.advance(39.5)
    assert await refused(bot.send_message(GROUP, "still too soon")) == 1
    clock.advance(0.5)
    await bot.send_message(GROUP, "the first has left the minute")

    assert [r.limit for r in emu.flood_refusals] == ["group", "group"]
    assert [r.retry_after for r in emu.flood_refusals] == [40, 1]
    assert {r.chat_id for r in emu.flood_refusals} == {GROUP}
    assert len(emu.messages(GROUP)) == 21  # refused calls send nothing


async def test_the_429_body_is_telegrams(start: Starter) -> None:
    emu, bot = await start()
    emu.add_chat(SUPERGROUP, title="Forum")
    for number in range(20):
        await bot.send_message(SUPERGROUP, f"message {number}")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{emu.base_url}{emu.token}/sendMessage",
            data={"chat_id": str(SUPERGROUP), "text": "over"},
        ) as response,
    ):
        assert response.status == 429
        assert await response.json() == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 60",
            "parameters": {"retry_after": 60},
        }
    assert emu.calls[-1].status == 429


async def test_edits_count_like_messages(start: Starter, clock: ManualClock) -> None:
    emu, bot = await start()
    emu.add_chat(GROUP, title="Lab")
    status = await bot.send_message(GROUP, "step 0")
    for step in range(1, 20):
        await bot.edit_message_text(f"step {step}", GROUP, status.message_id)
    assert await refused(bot.edit_message_text("step 20", GROUP, status.message_id)) == 60
    edited = emu.message(GROUP, status.message_id)
    assert edited is not None
    assert edited["text"] == "step 19"

    # In a private chat too: the edits use up the burst.
    limits = FloodLimits(private_burst=3)
    emu, bot = await start(limits)
    status = await bot.send_message(USER_ID, "step 0")
    await bot.edit_message_text("step 1", USER_ID, status.message_id)
    await bot.edit_message_text("step 2", USER_ID, status.message_id)
    assert await refused(bot.edit_message_text("step 3", USER_ID, status.message_id)) == 1
    assert [(m.method, m.chat_id) for m in emu.sent_messages] == [
        ("sendMessage", USER_ID),
        ("editMessageText", USER_ID),
        ("editMessageText", USER_ID),
    ]


async def test_a_private_chat_takes_a_burst_then_one_a_second(
    start: Starter, clock: ManualClock
) -> None:
    emu, bot = await start(FloodLimits(private_burst=3))
    emu.add_chat(2001, first_name="Grace")
    for number in range(3):
        await bot.send_message(USER_ID, f"burst {number}")
    assert await refused(bot.send_message(USER_ID, "over the burst")) == 1
    await bot.send_message(2001, "another chat has its own budget")

    clock.advance(1.0)
    await bot.send_message(USER_ID, "a second later: one more")
    assert await refused(bot.send_message(USER_ID, "but not two")) == 1

    # Staying at one a second goes on for ever.
    for number in range(40):
        clock.advance(1.0)
        await bot.send_message(USER_ID, f"steady {number}")
    assert [r.limit for r in emu.flood_refusals] == ["private", "private"]


async def test_thirty_messages_a_second_in_all(start: Starter, clock: ManualClock) -> None:
    emu, bot = await start()
    chats = range(2001, 2032)
    for chat_id in chats:
        emu.add_chat(chat_id)
    for chat_id in chats[:30]:
        await bot.send_message(chat_id, "news")
    assert await refused(bot.send_message(chats[30], "the thirty-first")) == 1
    assert emu.flood_refusals[-1].limit == "total"

    clock.advance(1.0)
    await bot.send_message(chats[30], "the next second")
    report = emu.rate_report()
    assert report.max_total_per_second == 30
    assert report.messages == 31
    assert report.refused == 1
    assert report.chats[chats[30]].refused == 1


async def test_an_album_counts_each_item_and_goes_whole_or_not_at_all(start: Starter) -> None:
    emu, bot = await start()
    emu.add_chat(GROUP, title="Lab")

    def album(size: int) -> list[InputMediaPhoto]:
        return [InputMediaPhoto(png_bytes(8, 8), caption=f"{n}") for n in range(size)]

    await bot.send_media_group(GROUP, album(10))
    for number in range(5):
        await bot.send_message(GROUP, f"message {number}")
    assert await refused(bot.send_media_group(GROUP, album(6))) == 60  # 15 + 6 > 20
    assert len(emu.messages(GROUP)) == 15  # nothing of the refused album was sent
    await bot.send_media_group(GROUP, album(5))
    assert await refused(bot.send_message(GROUP, "over")) == 60

    assert emu.flood_refusals[0].messages == 6
    assert emu.flood_refusals[0].method == "sendMediaGroup"
    assert emu.rate_report().chats[GROUP].max_per_minute == 20


async def test_reading_and_answering_do_not_count(start: Starter) -> None:
    emu, bot = await start(FloodLimits(total_per_second=1, private_burst=1))
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go")]])
    sent = await bot.send_message(USER_ID, "the limit is used up now", reply_markup=keyboard)
    assert await refused(bot.send_message(USER_ID, "over")) == 1

    query_id = await emu.press_button(USER_ID, sent.message_id, "go")
    upload = await emu.send_document(b"data", "data.txt")
    for _ in range(5):
        await bot.get_me()
        await bot.get_updates(timeout=0)
    assert await bot.answer_callback_query(query_id, text="ok")
    file = await bot.get_file(upload["document"]["file_id"])
    assert file.file_size == 4
    assert len(emu.sent_messages) == 1
    assert len(emu.flood_refusals) == 1
    assert {"getupdates", "answercallbackquery", "getme", "getfile"}.isdisjoint(COUNTED_METHODS)


async def test_no_limits_refuse_nothing_but_the_messages_are_still_counted(
    start: Starter,
) -> None:
    emu, bot = await start(None)
    emu.add_chat(GROUP, title="Lab")
    for number in range(45):
        await bot.send_message(GROUP if number % 2 else USER_ID, f"message {number}")
    assert emu.limits is None
    assert emu.flood_refusals == []
    report = emu.rate_report()
    assert (report.messages, report.max_total_per_second) == (45, 45)
    assert (report.chats[GROUP].max_per_minute, report.chats[USER_ID].max_per_second) == (22, 23)


# ------------------------------------------------------------------ on the real clock


async def test_staying_under_a_fast_private_limit_is_never_refused(
    start: Starter,
) -> None:
    # A fast refill keeps the test short; a slow machine only sends slower, never faster.
    limits = FloodLimits(private_per_second=50.0, private_burst=5)
    emu, bot = await start(limits, clock_=time.time)
    await asyncio.gather(*(bot.send_message(USER_ID, f"burst {n}") for n in range(5)))
    for number in range(20):
        await asyncio.sleep(0.03)  # a little under the limit's 50 a second
        await bot.send_message(USER_ID, f"paced {number}")
    assert emu.flood_refusals == []
    assert emu.rate_report().chats[USER_ID].messages == 25


async def test_the_rate_limiter_of_python_telegram_bot_waits_and_retries(
    start: Starter,
) -> None:
    emu, _ = await start(FloodLimits(private_burst=1), clock_=time.time)
    bot = ExtBot(
        emu.token,
        base_url=emu.base_url,
        base_file_url=emu.base_file_url,
        rate_limiter=AIORateLimiter(max_retries=1),
    )
    async with bot:
        await bot.send_message(USER_ID, "first")
        await bot.send_message(USER_ID, "second: refused once, sent after retry_after")
    statuses = [c.status for c in emu.calls if c.method == "sendMessage"]
    assert statuses == [200, 429, 200]
    assert [m["text"] for m in emu.messages(USER_ID)][-1].startswith("second")
    assert [r.retry_after for r in emu.flood_refusals] == [1]


# ------------------------------------------------------------------ the pure parts


def test_the_gate_refuses_atomically_and_names_the_tightest_limit() -> None:
    gate = FloodGate(FloodLimits(total_per_second=5, group_per_minute=4, private_burst=2))
    gate.admit(GROUP, private=False, method="sendMessage", now=0.0, count=3)
    with pytest.raises(Exception, match="retry after 60") as caught:
        gate.admit(GROUP, private=False, method="sendMediaGroup", now=0.0, count=2)
    assert getattr(caught.value, "retry_after", None) == 60
    assert gate.refusals == [FloodRefusal(GROUP, 0.0, "sendMediaGroup", "group", 60, 2)]
    gate.admit(USER_ID, private=True, method="sendMessage", now=0.0, count=2)
    with pytest.raises(Exception, match="retry after 1"):
        gate.admit(USER_ID + 1, private=True, method="sendMessage", now=0.5, count=1)
    assert gate.refusals[-1].limit == "total"
    assert gate.refusals_by_chat() == {GROUP: 1, USER_ID + 1: 1}
    assert len(gate.sent) == 5


def test_an_album_larger_than_the_limit_goes_alone() -> None:
    gate = FloodGate(FloodLimits(group_per_minute=3))
    gate.admit(GROUP, private=False, method="sendMediaGroup", now=0.0, count=5)
    with pytest.raises(Exception, match="retry after 59"):
        gate.admit(GROUP, private=False, method="sendMessage", now=1.0)
    gate.admit(GROUP, private=False, method="sendMessage", now=60.0)


def test_the_limits_must_allow_something() -> None:
    with pytest.raises(ValueError, match="at least one"):
        FloodLimits(group_per_minute=0)
    with pytest.raises(ValueError, match="positive"):
        FloodLimits(private_per_second=0)


def test_max_in_window_counts_half_open_windows() -> None:
    assert max_in_window([], 1.0) == 0
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.5], 1.0) == 3
    assert max_in_window([3.0, 0.0, 1.0, 2.0], 1.0) == 1
    assert max_in_window([0.0, 59.9, 60.0], 60.0) == 2


def test_rate_report_figures() -> None:
    sent = [SentMessage(USER_ID, at, "sendMessage") for at in (0.0, 0.2, 0.4, 5.0, 70.0)]
    sent += [SentMessage(GROUP, at, "editMessageText") for at in (0.1, 0.3, 30.0, 61.0)]
    refusals = [
        FloodRefusal(GROUP, 62.0, "sendMessage", "group", 5),
        FloodRefusal(7, 1, "x", "total", 1),
    ]
    report = rate_report(sent, refusals)

    assert report.messages == 9
    assert report.max_total_per_second == 5  # 0.0, 0.1, 0.2, 0.3, 0.4
    assert report.refused == 2
    assert report.chats[USER_ID].max_per_minute == 4
    assert report.chats[USER_ID].max_per_second == 3
    assert report.chats[GROUP].max_per_minute == 3  # 0.1, 0.3, 30.0 (61.0 is after)
    assert report.chats[GROUP].max_per_second == 2
    assert (report.chats[GROUP].refused, report.chats[7].messages) == (1, 0)
    assert report.lines()[0] == "messages 9, most in one second (all chats) 5, refused 429 2"
    assert any(line.startswith(f"chat {GROUP}: 4 messages") for line in report.lines())


def test_emulator_defaults_to_telegrams_limits(files_dir: Path) -> None:
    emu = BotApiEmulator(files_dir)
    assert emu.limits == FloodLimits()
    assert (emu.limits.total_per_second, emu.limits.group_per_minute) == (30, 20)
    assert emu.limits.private_per_second == 1.0


# ------------------------------------------------------------------ a share of failures


async def post_many(emu: FaultyBotApi, method: str, count: int) -> list[tuple[int, Any]]:
    """Call ``method`` ``count`` times in the user's chat; return (status, body) of each."""
    answers = []
    async with aiohttp.ClientSession() as session:
        for number in range(count):
            async with session.post(
                f"{emu.base_url}{emu.token}/{method}",
                data={"chat_id": str(USER_ID), "text": f"message {number}"},
            ) as response:
                answers.append((response.status, await response.json()))
    return answers


async def test_fail_share_fails_a_seeded_share_of_message_calls(start: Starter) -> None:
    emu, _ = await start(None)
    emu.fail_share(0.3, statuses=(429, 502), retry_after=2, seed=7)
    first = await post_many(emu, "sendMessage", 60)
    statuses = [status for status, _ in first]

    assert set(statuses) == {200, 429, 502}
    assert 8 <= statuses.count(429) + statuses.count(502) <= 30
    for status, body in first:
        if status == 429:
            assert body == {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 2",
                "parameters": {"retry_after": 2},
            }
        elif status == 502:
            assert body == {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    assert len(emu.messages(USER_ID)) == statuses.count(200)  # a failed call sends nothing
    assert emu.share_failures == [
        ShareFailure("sendmessage", status) for status in statuses if status != 200
    ]
    assert emu.flood_refusals == []  # injected failures are not the emulator's own

    # Other methods are left alone; the same seed fails the same calls again.
    assert {status for status, _ in await post_many(emu, "getMe", 20)} == {200}
    emu.fail_share(0.3, statuses=(429, 502), retry_after=2, seed=7)
    again = await post_many(emu, "sendMessage", 60)
    assert [status for status, _ in again] == statuses

    emu.fail_share(0.0)
    assert {status for status, _ in await post_many(emu, "sendMessage", 10)} == {200}


async def test_fail_share_of_chosen_methods_and_its_checks(start: Starter) -> None:
    emu, bot = await start(None)
    status = await bot.send_message(USER_ID, "step 0")
    emu.fail_share(1.0, statuses=(500,), methods=["editMessageText"])
    assert {s for s, _ in await post_many(emu, "sendMessage", 5)} == {200}
    with pytest.raises(Exception, match="Internal Server Error"):
        await bot.edit_message_text("step 1", USER_ID, status.message_id)
    emu.clear_failures()
    await bot.edit_message_text("step 1", USER_ID, status.message_id)

    with pytest.raises(ValueError, match="between 0 and 1"):
        emu.fail_share(1.5)
    with pytest.raises(ValueError, match="error statuses"):
        emu.fail_share(0.1, statuses=(200,))
    with pytest.raises(ValueError, match="retry_after"):
        emu.fail_share(0.1, retry_after=0)

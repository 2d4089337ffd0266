"""EditPacer and the rate limiter's decisions on their own, with explicit times: how often a
job's status message may be edited in a private chat and in a group, how a group's one-minute
budget is shared and freed; how the limiter counts Telegram's limits and whose message goes
first near them (a reply, then an event, then an edit)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from telegram.error import RetryAfter

from bot.pacing import WINDOW_S, EditPacer, is_group
from bot.ratelimit import (
    ChatRateLimiter,
    Priority,
    Shares,
    SlidingWindow,
    TokenBucket,
    chat_of,
    current_priority,
    messages_made,
    sending_as,
)

PERSON = 1001  # a private chat has the person's id
GROUP = -100200  # groups and supergroups have negative ids
OTHER_GROUP = -100300


def test_private_chats_have_positive_ids_and_groups_negative_ones() -> None:
    assert not is_group(PERSON)
    assert is_group(GROUP)


def test_a_status_message_never_edited_may_be_edited_at_once() -> None:
    pacer = EditPacer()
    for chat in (PERSON, GROUP):
        assert pacer.may_edit(chat, 1, now=100.0)
        assert pacer.next_edit_at(chat, 1, now=100.0) == 100.0


def test_in_a_private_chat_the_next_edit_waits_the_private_interval() -> None:
    pacer = EditPacer(private_interval_s=3.0, group_interval_s=10.0)
    pacer.edited(PERSON, 1, 100.0)
    assert not pacer.may_edit(PERSON, 1, 102.9)
    assert pacer.next_edit_at(PERSON, 1, 101.0) == 103.0
    assert pacer.may_edit(PERSON, 1, 103.0)
    assert pacer.next_edit_at(PERSON, 1, 104.0) == 104.0  # never in the past


def test_each_jobs_message_and_each_chat_has_its_own_interval() -> None:
    pacer = EditPacer(private_interval_s=3.0)
    pacer.edited(PERSON, 1, 100.0)
    assert pacer.may_edit(PERSON, 2, 100.5)
    assert pacer.may_edit(PERSON + 1, 1, 100.5)
    assert not pacer.may_edit(PERSON, 1, 100.5)


def test_in_a_group_the_next_edit_waits_the_longer_group_interval() -> None:
    pacer = EditPacer(private_interval_s=3.0, group_interval_s=10.0)
    pacer.edited(GROUP, 1, 100.0)
    assert not pacer.may_edit(GROUP, 1, 103.0)
    assert not pacer.may_edit(GROUP, 1, 109.9)
    assert pacer.next_edit_at(GROUP, 1, 105.0) == 110.0
    assert pacer.may_edit(GROUP, 1, 110.0)


def test_messages_to_a_private_chat_use_no_budget() -> None:
    pacer = EditPacer(group_messages_per_minute=2)
    for second in range(10):
        pacer.sent(PERSON, 100.0 + second)
    assert pacer.may_edit(PERSON, 1, 110.0)
    assert pacer.next_edit_at(PERSON, 1, 110.0) == 110.0


def test_a_groups_budget_counts_every_message_and_frees_as_they_leave_the_minute() -> None:
    pacer = EditPacer(group_interval_s=10.0, group_messages_per_minute=3)
    pacer.sent(GROUP, 100.0)  # a job started: never held back, but it counts
    pacer.sent(GROUP, 105.0)
    pacer.edited(GROUP, 2, 110.0)  # another job's edit counts too
    # Job 1's message was never edited, but the group's three a minute are spent.
    assert not pacer.may_edit(GROUP, 1, 120.0)
    assert pacer.next_edit_at(GROUP, 1, 120.0) == 100.0 + WINDOW_S
    assert not pacer.may_edit(GROUP, 1, 159.9)
    assert pacer.may_edit(GROUP, 1, 160.0)  # the first message has left the minute
    assert pacer.may_edit(OTHER_GROUP, 1, 120.0)  # each group has a budget of its own


def test_messages_over_the_budget_push_the_next_edit_back_until_enough_have_left() -> None:
    pacer = EditPacer(group_messages_per_minute=2)
    for at in (100.0, 101.0, 102.0, 103.0):  # forced messages go out over the budget
        pacer.sent(GROUP, at)
    # Two of the four must leave the minute before one more fits: the third oldest's turn.
    assert pacer.next_edit_at(GROUP, 1, 104.0) == 102.0 + WINDOW_S
    assert not pacer.may_edit(GROUP, 1, 161.9)
    assert pacer.may_edit(GROUP, 1, 162.0)


def test_the_later_of_the_interval_and_the_budget_decides() -> None:
    pacer = EditPacer(group_interval_s=10.0, group_messages_per_minute=15)
    pacer.edited(GROUP, 1, 100.0)
    assert pacer.next_edit_at(GROUP, 1, 101.0) == 110.0  # the budget has room
    spent = EditPacer(group_interval_s=10.0, group_messages_per_minute=1)
    spent.edited(GROUP, 1, 100.0)
    assert spent.next_edit_at(GROUP, 1, 101.0) == 100.0 + WINDOW_S  # the budget is later


def test_forget_drops_a_finished_jobs_edit_times_but_not_the_groups_budget() -> None:
    pacer = EditPacer(private_interval_s=3.0, group_interval_s=10.0, group_messages_per_minute=2)
    pacer.edited(PERSON, 1, 100.0)
    pacer.edited(PERSON, 2, 100.0)
    pacer.edited(GROUP, 1, 100.0)
    pacer.edited(GROUP, 1, 100.5)  # forced: it went out within the interval
    pacer.forget(1)
    assert pacer.may_edit(PERSON, 1, 101.0)
    assert pacer.next_edit_at(PERSON, 1, 101.0) == 101.0
    assert not pacer.may_edit(PERSON, 2, 101.0)  # another job's time is kept
    # The group's two messages still count for a minute.
    assert not pacer.may_edit(GROUP, 1, 101.0)
    assert pacer.next_edit_at(GROUP, 1, 101.0) == 100.0 + WINDOW_S


def test_a_private_chat_with_many_jobs_keeps_its_edits_under_its_own_budget() -> None:
    pacer = EditPacer(private_interval_s=3.0, private_messages_per_minute=40)
    for second in range(40):
        pacer.edited(PERSON, second, 100.0 + second * 0.5)  # 40 jobs, one edit each
    assert not pacer.may_edit(PERSON, 99, 121.0)
    assert pacer.next_edit_at(PERSON, 99, 121.0) == 160.0  # the oldest leaves the window
    assert pacer.may_edit(PERSON + 1, 99, 121.0)  # another chat has its own budget


def test_edits_in_all_chats_together_stay_under_the_bots_budget() -> None:
    pacer = EditPacer(edits_per_second=3)
    for chat in range(3):
        pacer.edited(PERSON + chat, 1, 100.0 + chat * 0.1)
    assert not pacer.may_edit(PERSON + 9, 1, 100.5)
    assert pacer.next_edit_at(PERSON + 9, 1, 100.5) == 101.0
    assert pacer.may_edit(PERSON + 9, 1, 101.0)


def test_the_job_whose_message_waited_longest_is_known() -> None:
    pacer = EditPacer()
    pacer.edited(PERSON, 1, 100.0)
    pacer.edited(PERSON, 2, 50.0)
    assert sorted([1, 2, 3], key=lambda job: pacer.last_edit(PERSON, job)) == [3, 2, 1]


# ------------------------------------------------------------------------------ the rate limiter
# Its windows and buckets with explicit times; the limiter with a clock of the test's own.


def test_a_sliding_window_never_holds_more_than_its_limit_in_any_window() -> None:
    window = SlidingWindow(limit=3, seconds=1.0)
    for at in (10.0, 10.2, 10.4):
        assert window.wait(at) == 0.0
        window.take(at)
    assert window.wait(10.5) == pytest.approx(0.5)  # until the first leaves the window
    assert window.wait(11.0) == 0.0
    # Two at once (an album) wait until two have left.
    assert window.wait(11.0, count=2) == pytest.approx(0.2)


def test_background_messages_stop_at_their_cap_and_leave_the_rest_to_replies() -> None:
    window = SlidingWindow(limit=5, seconds=1.0)
    for at in (10.0, 10.1):
        window.take(at, background=True)
    assert window.wait(10.2, cap=2, background=True) == pytest.approx(0.8)
    assert window.wait(10.2) == 0.0  # a reply goes at once
    for at in (10.3, 10.4, 10.5):
        window.take(at)  # replies fill the window
    assert window.wait(10.6) == pytest.approx(0.4)
    # Replies do not count against the background's cap, only against the limit.
    later = SlidingWindow(limit=5, seconds=1.0)
    for at in (10.0, 10.1, 10.2):
        later.take(at)
    assert later.wait(10.3, cap=2, background=True) == 0.0


def test_a_token_bucket_lets_a_burst_pass_then_one_a_second() -> None:
    bucket = TokenBucket(rate=1.0, burst=3, tokens=3, at=0.0)
    for _ in range(3):
        assert bucket.wait(0.0) == 0.0
        bucket.take(0.0)
    assert bucket.wait(0.0) == pytest.approx(1.0)
    assert bucket.wait(0.5) == pytest.approx(0.5)
    assert bucket.wait(1.0) == 0.0
    assert bucket.level(100.0) == 3  # never more than the burst


def test_a_floor_keeps_tokens_in_a_private_chat_for_what_matters_more() -> None:
    bucket = TokenBucket(rate=1.0, burst=20, tokens=3, at=0.0)
    assert bucket.wait(0.0, floor=0) == 0.0  # a reply takes one of the last three
    assert bucket.wait(0.0, floor=2) == 0.0  # an event leaves two
    assert bucket.wait(0.0, floor=6) == pytest.approx(4.0)  # an edit waits for seven
    assert bucket.wait(0.0, count=30, floor=2) == pytest.approx(17.0)  # at most a full bucket


def test_shares_need_one_value_per_priority_and_room_for_each() -> None:
    with pytest.raises(ValueError, match="one value per priority"):
        Shares(total=(30, 10))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        Shares(group=(20, 0, 0))


def test_what_counts_as_messages_and_where_they_go() -> None:
    assert messages_made("sendMessage", {}) == 1
    assert messages_made("editMessageText", {}) == 1
    assert messages_made("sendMediaGroup", {"media": [1, 2, 3]}) == 3
    assert messages_made("sendChatAction", {}) == 0
    assert chat_of({"chat_id": 42}) == 42
    assert chat_of({"chat_id": "-100"}) == -100
    assert chat_of({"chat_id": "@channel"}) == "@channel"
    assert chat_of({}) is None


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_private_chat_starts_with_part_of_its_burst_and_replies_find_room_first() -> None:
    clock = Clock()
    roomy = Shares(total=(100, 100, 100))  # in all: no limit to speak of
    limiter = ChatRateLimiter(
        clock=clock, shares=roomy, per_second=100, private_burst=20, private_start=10
    )
    for _ in range(8):  # events down to the floor of 2 they leave
        assert limiter.delay(PERSON, Priority.EVENT) == 0.0
        limiter._take(PERSON, Priority.EVENT, 1, clock.now)
    assert limiter.delay(PERSON, Priority.EVENT) == pytest.approx(1.0)
    assert limiter.delay(PERSON, Priority.EDIT) == pytest.approx(5.0)
    assert limiter.delay(PERSON, Priority.REPLY) == 0.0
    assert limiter.delay(PERSON + 1, Priority.EDIT) == 0.0  # another chat: its own bucket


def test_in_all_chats_events_and_edits_leave_room_for_replies() -> None:
    clock = Clock()
    shares = Shares(total=(10, 6, 3))
    limiter = ChatRateLimiter(clock=clock, shares=shares, per_second=10, margin_s=0.0)
    for chat in range(3):
        limiter._take(PERSON + chat, Priority.EDIT, 1, clock.now)
    assert limiter.delay(PERSON + 9, Priority.EDIT) == pytest.approx(1.0)
    for chat in range(3):
        limiter._take(PERSON + chat, Priority.EVENT, 1, clock.now)
    assert limiter.delay(PERSON + 9, Priority.EVENT) == pytest.approx(1.0)
    assert limiter.delay(PERSON + 9, Priority.REPLY) == 0.0
    for chat in range(4):
        limiter._take(PERSON + chat, Priority.REPLY, 1, clock.now)
    assert limiter.delay(PERSON + 9, Priority.REPLY) == pytest.approx(1.0)  # ten in a second


def test_a_group_counts_a_minute_and_its_window_is_a_little_longer_than_telegrams() -> None:
    clock = Clock()
    roomy = Shares(total=(100, 100, 100))
    limiter = ChatRateLimiter(
        clock=clock, shares=roomy, per_second=100, group_per_minute=20, margin_s=0.5
    )
    for _ in range(17):
        limiter._take(GROUP, Priority.EVENT, 1, clock.now)
    assert limiter.delay(GROUP, Priority.EVENT) == pytest.approx(60.5)
    assert limiter.delay(GROUP, Priority.REPLY) == 0.0
    assert limiter.delay(OTHER_GROUP, Priority.EVENT) == 0.0


async def test_a_429_pauses_only_its_chat_and_the_call_goes_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    limiter = ChatRateLimiter(max_retries=1)
    calls: list[str] = []

    async def send(chat: str) -> bool:
        calls.append(chat)
        if calls.count(chat) == 1 and chat == "first":
            raise RetryAfter(timedelta(seconds=0.2))
        return True

    async def request(chat: int, name: str) -> object:
        return await limiter.process_request(
            send, (name,), {}, "sendMessage", {"chat_id": chat}, None
        )

    first = asyncio.create_task(request(PERSON, "first"))
    await asyncio.sleep(0.05)
    assert limiter.delay(PERSON, Priority.REPLY) > 0.1  # paused
    assert await request(PERSON + 1, "other") is True  # another chat is not
    assert await first is True
    assert calls == ["first", "other", "first"]


async def test_calls_take_the_priority_of_where_they_are_made() -> None:
    seen: list[Priority] = []

    async def look() -> None:
        seen.append(current_priority())

    await look()
    with sending_as(Priority.EDIT):
        await asyncio.create_task(look())
    await look()
    assert seen == [Priority.REPLY, Priority.EDIT, Priority.REPLY]

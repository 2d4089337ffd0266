"""Pure time decisions: warnings, keepalive, idle release, checkpoint sync, finish verdicts."""

from __future__ import annotations

import pytest

from bot.runtime import RuntimeClock
from bot.schedule import (
    cluster_limit_due,
    due_warning,
    finish_verdict,
    idle_release_due,
    keepalive_due,
    needs_new_keepalive,
    sync_due,
    warning_plan,
)

H = 3600.0
CLOCK = RuntimeClock(started_at=0.0, source="test", max_seconds=12 * H)
MINUTES = (60, 15, 5)


def test_warning_plan_is_ordered_by_due_time() -> None:
    plan = warning_plan(CLOCK, MINUTES)
    assert [(w.minutes, w.due_at) for w in plan] == [
        (60, 11 * H),
        (15, 12 * H - 900),
        (5, 12 * H - 300),
    ]


def test_each_warning_fires_once_at_its_time_when_ticking() -> None:
    sent: frozenset[int] = frozenset()
    fired: list[tuple[int, float]] = []
    now = 0.0
    while now <= 12 * H:
        warning, sent = due_warning(now, CLOCK, MINUTES, sent)
        if warning is not None:
            fired.append((warning.minutes, now))
        now += 15
    assert fired == [(60, 11 * H), (15, 12 * H - 900), (5, 12 * H - 300)]


def test_warnings_due_together_become_one_message() -> None:
    warning, sent = due_warning(12 * H - 600, CLOCK, MINUTES, frozenset())
    assert warning is not None and warning.minutes == 15
    assert sent == {60, 15}
    assert due_warning(12 * H - 599, CLOCK, MINUTES, sent)[0] is None


@pytest.mark.parametrize(
    ("now", "last", "interval", "active", "expected"),
    [
        (100, None, 60, True, True),
        (100, 50, 60, True, False),
        (110, 50, 60, True, True),
        (110, None, 60, False, False),
        (110, None, 0, True, False),
    ],
)
def test_keepalive_due(
    now: float, last: float | None, interval: float, active: bool, expected: bool
) -> None:
    assert keepalive_due(now, last, interval, active) is expected


def test_a_keepalive_far_up_the_chat_is_replaced() -> None:
    assert needs_new_keepalive(None, 3)
    assert not needs_new_keepalive(10, 25)
    assert needs_new_keepalive(10, 26)


def test_idle_release_is_opt_in_and_offered_once() -> None:
    assert not idle_release_due(1000, 0, 0, False)
    assert not idle_release_due(1000, None, 10, False)
    assert not idle_release_due(599, 0, 10, False)
    assert idle_release_due(600, 0, 10, False)
    assert not idle_release_due(600, 0, 10, True)


def test_sync_due() -> None:
    assert not sync_due(100, None, 0)
    assert sync_due(100, None, 5)
    assert not sync_due(100, 0, 5)
    assert sync_due(300, 0, 5)


@pytest.mark.parametrize(
    ("eta", "left", "verdict"),
    [
        (None, 100, "no estimate yet"),
        (50, 100, "should finish in time"),
        (95, 100, "might just finish"),
        (120, 100, "will NOT finish in time"),
    ],
)
def test_finish_verdict(eta: float | None, left: float, verdict: str) -> None:
    assert finish_verdict(eta, left) == verdict


@pytest.mark.parametrize(
    ("left_s", "eta_s", "due"),
    [
        (3600.0, 7200.0, True),  # it needs longer than the limit leaves it
        (3600.0, 600.0, False),  # it will finish
        (3600.0, None, False),  # no estimate yet, and the limit is far
        (240.0, None, True),  # the limit is within the shortest warning lead (5 min)
        (240.0, 60.0, True),
    ],
)
def test_a_cluster_time_limit_is_warned_about_when_the_step_will_not_make_it(
    left_s: float, eta_s: float | None, due: bool
) -> None:
    now = 1_000_000.0
    assert cluster_limit_due(now, now + left_s, eta_s, (30, 5)) is due

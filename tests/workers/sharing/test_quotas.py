"""Weekly GPU-hours: the week, the refusal and when it resets."""

from __future__ import annotations

from datetime import UTC, datetime

from workers.sharing.quotas import QuotaSettings, held_reason, submit_refusal, week_start


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_week_starts_on_monday_at_midnight_utc() -> None:
    assert week_start(at("2026-12-06T07:30:00")) == at("2026-11-30T00:00:00")  # a Sunday
    assert week_start(at("2026-11-30T00:00:00")) == at("2026-11-30T00:00:00")


def test_a_used_up_week_refuses_and_says_when_it_resets() -> None:
    settings = QuotaSettings(gpu_hours_per_user_per_week=10)
    now = at("2026-12-05T22:00:00")
    refusal = submit_refusal("@alice", 10.25, settings, now)
    assert refusal == (
        "@alice has used 10.2 of 10 GPU-hours this week; "
        "the week resets Mon 07 Dec 00:00 UTC (in 1 d 2 h)"
    )
    assert submit_refusal("@alice", 9.9, settings, now) is None
    assert submit_refusal("@alice", 1e6, QuotaSettings(), now) is None


def test_no_running_limit_holds_nobody() -> None:
    assert held_reason("@bob", 50, QuotaSettings()) is None
    assert held_reason("@bob", 0, QuotaSettings(running_per_user=1)) is None
    assert held_reason("@bob", 1, QuotaSettings(running_per_user=1)) == (
        "waiting: @bob has 1 running job, the limit is 1"
    )

"""Whose job runs next: fewest running first, then the oldest; quotas hold jobs back."""

from __future__ import annotations

from workers.jobs import Action, Job, JobSpec, JobState
from workers.sharing.fairshare import pick_next
from workers.sharing.owners import Owner
from workers.sharing.quotas import QuotaSettings

ALICE, BOB, CAROL = Owner(1, "@alice"), Owner(2, "@bob"), Owner(3, "Carol")
SPEC = JobSpec("selftest", Action.TRAIN)


def job(job_id: int, owner: Owner | None, state: JobState = JobState.QUEUED) -> Job:
    return Job(job_id, SPEC, state, created_at=float(job_id), owner=owner)


def test_the_person_with_the_fewest_running_jobs_goes_first_whoever_queued_first() -> None:
    queued = [job(3, ALICE), job(4, ALICE), job(5, BOB)]
    running = [job(1, ALICE, JobState.RUNNING)]
    assert pick_next(queued, running, QuotaSettings()).job == queued[2]


def test_among_equals_the_oldest_submission_goes_first() -> None:
    queued = [job(7, BOB), job(6, CAROL), job(8, ALICE)]
    assert pick_next(queued, [], QuotaSettings()).job == queued[1]


def test_ten_jobs_of_one_person_do_not_hold_back_another_persons_one() -> None:
    queued = [job(i, ALICE) for i in range(1, 11)] + [job(11, BOB)]
    running: list[Job] = []
    order = []
    for _ in range(4):
        waiting = [j for j in queued if j.id not in order]
        chosen = pick_next(waiting, running, QuotaSettings()).job
        assert chosen is not None
        order.append(chosen.id)
        running.append(job(chosen.id, chosen.owner, JobState.RUNNING))
    assert order == [1, 11, 2, 3]


def test_a_person_at_the_running_limit_waits_and_is_told_why() -> None:
    settings = QuotaSettings(running_per_user=2)
    running = [job(1, ALICE, JobState.RUNNING), job(2, ALICE, JobState.RUNNING)]
    pick = pick_next([job(3, ALICE), job(4, BOB)], running, settings)
    assert pick.job is not None and pick.job.id == 4
    assert pick.held == {3: "waiting: @alice has 2 running jobs, the limit is 2"}
    alone = pick_next([job(3, ALICE)], running, settings)
    assert alone.job is None and 3 in alone.held


def test_exempt_people_and_jobs_without_an_owner_are_never_held() -> None:
    settings = QuotaSettings(running_per_user=1)
    running = [job(1, ALICE, JobState.RUNNING), job(2, None, JobState.RUNNING)]
    assert pick_next([job(3, ALICE)], running, settings, exempt={ALICE.user_id}).job is not None
    assert pick_next([job(4, None)], running, settings).job is not None

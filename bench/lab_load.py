"""A lab's load on one colabot: a hundred jobs from five people at once, within Telegram's
limits, through faults and restarts.

Five people run jobs in their private chats with colabot, and two of them also in a group
they opted in (``telegram.allowed_chats``): 100 light selftest jobs on the local executor, 8
at a time. colabot runs as its own process against the Bot API emulator, which enforces
Telegram's flood limits (30 messages a second in all, 20 a minute in a group, about one a
second in a private chat) and answers a call over them with a 429, as Telegram does. Beside
it a bare python-telegram-bot echo bot (:mod:`bench.echo_bot`, with python-telegram-bot's
``AIORateLimiter``) runs against an emulator of its own, and the same people send both the
same commands at a human pace while the jobs run: one every 100 ms to each bot, spread over
20 people, fifteen who only send commands (one every 1.7 s each) and the five job owners
(one every 5 s each, in chats busy with their jobs): no chat gets one a second.

Two phases, each on fresh emulators and a fresh data folder:

- ``clean``: nothing fails;
- ``faults``: a share of the calls that send or edit a message is answered 429 (retry after
  1 s) or 502, on both emulators, and colabot is SIGKILLed and started again twice while
  the jobs run; each owner sends ``/resume`` for each of their jobs that colabot says a kill
  interrupted. A kill lands where no Bot API call is under way: between Telegram accepting
  a message and colabot's store recording it (a few milliseconds) a kill would make colabot
  send that message again, since no Bot API call can be made idempotent.

For each phase it prints: per chat the messages, the most in any minute and in any second
(the largest burst) and the calls refused for going over a limit; the delay from a job
finishing in colabot's store to its "finished" message in the chat, and each event's stay
in colabot's outbox (p50, p99, max); command round trips, colabot's beside the echo bot's
(p50, p99); and what was lost or repeated.

Targets: no call over a limit (but where a restarted colabot cannot know what the killed
one sent: a group's last minute); each job's events once each and in order, its "finished"
message exactly once; no job lost; colabot's command p99 at most 2x the echo bot's. The
event delays are mostly the chats' own queues: a private chat takes about one message a
second, and twenty jobs of about five messages each (status, finished, two files, an edit)
fill an owner's chat for two minutes; colabot sends them in order and never lets a status
edit go ahead of one.

    python -m bench.lab_load [--jobs 100] [--phase both] [--fault-share 0.05] [--pace-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.echo_bot import start as start_echo_bot
from emulator import BotApiEmulator, BotEvent
from emulator.flood import FloodRefusal, RateReport
from tests.emulator.faults import FaultyBotApi
from tests.helpers.cli import colabot_env, start_bot_process
from workers.events import Event, EventType
from workers.jobs import Job, JobState
from workers.store.database import Store

OWNERS = (1000, 5151, 6161, 7171, 8181)
"""The five people who run jobs (the first is the emulator's default user)."""
ADMIN = 6161
GROUP = -700_900
"""The group two of them run jobs in too."""
GROUP_MEMBERS = OWNERS[:2]
VISITORS = tuple(range(9001, 9016))
"""Fifteen more lab members who only send commands."""
GROUP_JOBS_EACH = 2
"""Jobs each group member runs in the group (a group takes 20 messages a minute; a job
makes about six: status, its edits, finished, two files)."""
STEPS = (8, 9, 10, 11, 12)
"""Each job's steps (0.3 s each), in turn: jobs of one length would all end together."""


def job_command(index: int) -> str:
    """The ``index``-th job's command: a light selftest job of 2.4 to 3.6 s."""
    return f"/train selftest steps={STEPS[index % len(STEPS)]} delay=0.3"


PARALLEL = 8
QUIET_S = 0.3
"""How long the bot must have had no call under way before a kill."""

Kind = Literal["status", "edit", "finished", "failed", "interrupted", "file", "other"]
STATUS_HEAD = re.compile(r"#(\d+) \w+ \w+ · (\w+)")
FINISHED = re.compile(r"#(\d+) \w+ \w+ finished")
FAILED = re.compile(r"#(\d+) \w+ \w+ failed")
INTERRUPTED = re.compile(r"#(\d+) \w+ \w+ was interrupted")
STATE_ORDER = {"queued": 0, "running": 1}
"""Where each state comes in a status message's life (any other is an end: 2)."""
FORCED = frozenset(
    {
        EventType.STARTED,
        EventType.SUCCEEDED,
        EventType.FAILED,
        EventType.CANCELLED,
        EventType.INTERRUPTED,
    }
)
"""Events whose delivery edits the job's status message (then, for an end, says so)."""


# ----------------------------------------------------------------------------- the chat's ledger


@dataclass(frozen=True)
class Sent:
    """One message the bot made in a chat, as a person reads it: a job's status message
    (``status``) and its ``edit``s, a job's end, a file, anything else."""

    kind: Kind
    job_id: int | None
    chat_id: int
    message_id: int
    at: float
    state: str = ""


def rank(state: str) -> int:
    """Where a status state comes in a status message's life."""
    return STATE_ORDER.get(state, 2)


@dataclass
class Ledger:
    """What the chats got about each job, read from the emulator's events."""

    sent: list[Sent] = field(default_factory=list)

    @classmethod
    def read(cls, events: Iterable[BotEvent]) -> Ledger:
        """Sort the bot's messages and edits by job and kind."""
        ledger = cls()
        status_of: dict[tuple[int, int], int] = {}
        for event in events:
            if event.message_id is None or event.kind == "callback_answer":
                continue
            first = (event.text or "").split("\n", 1)[0]
            key = (event.chat_id, event.message_id)
            head = STATUS_HEAD.search(first)
            replied = ((event.message or {}).get("reply_to_message") or {}).get("text") or ""
            if replied.startswith("/") and not replied.startswith("/train"):
                # An answer to a command (/jobs, /status): not a job's own message.
                ledger.sent.append(Sent("other", None, *key, event.time))
                continue
            sent: Sent
            if event.kind == "edit" and key in status_of:
                state = head.group(2) if head else ""
                sent = Sent("edit", status_of[key], *key, event.time, state)
            elif event.kind == "message" and head is not None:
                status_of[key] = int(head.group(1))
                sent = Sent("status", int(head.group(1)), *key, event.time, head.group(2))
            elif event.kind in ("document", "photo", "video"):
                sent = Sent("file", None, *key, event.time)
            elif event.kind == "message" and (found := FINISHED.search(first)):
                sent = Sent("finished", int(found.group(1)), *key, event.time)
            elif event.kind == "message" and (found := FAILED.search(first)):
                sent = Sent("failed", int(found.group(1)), *key, event.time)
            elif event.kind == "message" and (found := INTERRUPTED.search(first)):
                sent = Sent("interrupted", int(found.group(1)), *key, event.time)
            else:
                sent = Sent("other", None, *key, event.time)
            ledger.sent.append(sent)
        return ledger

    def of_job(self, job_id: int, *kinds: Kind) -> list[Sent]:
        """A job's messages (of ``kinds``, default every kind), oldest first."""
        return [s for s in self.sent if s.job_id == job_id and (not kinds or s.kind in kinds)]

    def in_chat(self, chat_id: int, *kinds: Kind) -> list[Sent]:
        """A chat's messages (of ``kinds``), oldest first."""
        return [s for s in self.sent if s.chat_id == chat_id and (not kinds or s.kind in kinds)]

    def jobs(self) -> set[int]:
        """Every job a message was about."""
        return {s.job_id for s in self.sent if s.job_id is not None}

    def backwards(self) -> list[str]:
        """Status messages whose state went back (running after succeeded, ...)."""
        found = []
        last: dict[tuple[int, int], Sent] = {}
        for sent in self.sent:
            if sent.kind not in ("status", "edit"):
                continue
            key = (sent.chat_id, sent.message_id)
            before = last.get(key)
            if before is not None and rank(sent.state) < rank(before.state):
                found.append(f"#{sent.job_id}: {before.state} -> {sent.state}")
            last[key] = sent
        return found


def job_problems(ledger: Ledger, jobs: Sequence[Job], events: dict[int, list[Event]]) -> list[str]:
    """Each job's events as the chat got them, checked against the store's outbox: every
    event delivered; one status message per attempt (the first, and one after each
    /resume); one "finished" message, after the last status message; one interrupted notice
    per interruption, offering /resume; all of it in the chat the job came from and in the
    order of its events. An empty list: nothing lost, repeated, misplaced or out of order."""
    problems = []
    for job in jobs:
        chat = int(job.origin["chat_id"])
        own = ledger.of_job(job.id)
        outbox = events.get(job.id, [])
        count = {kind: sum(e.type is kind for e in outbox) for kind in EventType}
        undelivered = [e.type.value for e in outbox if e.delivered_at is None]
        elsewhere = sorted({s.chat_id for s in own if s.chat_id != chat})
        posts = [s for s in own if s.kind == "status"]
        finished = [s for s in own if s.kind == "finished"]
        interrupted = [s for s in own if s.kind == "interrupted"]
        expected_posts = count[EventType.QUEUED] + count[EventType.RESUMED]
        title = f"#{job.id}"
        if undelivered:
            problems.append(f"{title}: events never delivered: {undelivered}")
        if elsewhere:
            problems.append(f"{title}: messages in other chats {elsewhere}")
        if len(posts) != expected_posts:
            problems.append(f"{title}: {len(posts)} status messages for {expected_posts} attempts")
        if job.state is JobState.SUCCEEDED and len(finished) != 1:
            problems.append(f"{title}: {len(finished)} finished messages")
        if len(interrupted) != count[EventType.INTERRUPTED]:
            problems.append(
                f"{title}: {len(interrupted)} interrupted notices for "
                f"{count[EventType.INTERRUPTED]} interruptions"
            )
        order = [s.kind for s in own if s.kind in ("status", "finished", "interrupted")]
        wanted = [
            kind
            for e in outbox
            if (
                kind := {
                    EventType.QUEUED: "status",
                    EventType.RESUMED: "status",
                    EventType.SUCCEEDED: "finished",
                    EventType.INTERRUPTED: "interrupted",
                }.get(e.type)
            )
        ]
        if order != wanted:
            problems.append(f"{title}: the chat got {order}, the outbox holds {wanted}")
        if finished and posts and finished[0].at < posts[-1].at:
            problems.append(f"{title}: finished before its last status message")
    problems.extend(ledger.backwards())
    return problems


def edits_while_events_waited(
    ledger: Ledger, events: dict[int, list[Event]], chat_of: dict[int, int], grace_s: float
) -> list[str]:
    """Status edits a chat got while one of its events waited in the outbox, other than
    those the events themselves make.

    An event whose delivery edits the job's status message (started, finished, failed,
    cancelled, interrupted) makes the last edit of that message before it was marked
    delivered; every other edit is an ordinary one (progress, the clock). An ordinary edit
    in a chat later than ``grace_s`` after an event for that chat was stored and before it
    was delivered went ahead of that event (``grace_s``: an edit already under way when the
    event came). An empty list: no event waited behind a status edit.
    """
    edits = [s for s in ledger.sent if s.kind == "edit"]
    made_by_events: set[int] = set()
    for job_id, outbox in events.items():
        own = [i for i, s in enumerate(edits) if s.job_id == job_id]
        for event in outbox:
            if event.type not in FORCED or event.delivered_at is None:
                continue
            window = [i for i in own if event.created_at <= edits[i].at <= event.delivered_at]
            if window:
                made_by_events.add(window[-1])
    ordinary = [s for i, s in enumerate(edits) if i not in made_by_events]
    found = []
    for job_id, outbox in events.items():
        chat = chat_of.get(job_id)
        for event in outbox:
            if chat is None or event.delivered_at is None:
                continue
            ahead = [
                s
                for s in ordinary
                if s.chat_id == chat and event.created_at + grace_s < s.at < event.delivered_at
            ]
            if ahead:
                found.append(
                    f"job #{job_id}'s {event.type.value} event waited "
                    f"{event.delivered_at - event.created_at:.1f}s while {len(ahead)} edits "
                    f"went to chat {chat} (of jobs {sorted({s.job_id or 0 for s in ahead})})"
                )
    return found


def finish_delays(ledger: Ledger, jobs: Sequence[Job]) -> list[float]:
    """Seconds from each job finishing in the store to its "finished" message."""
    delays = []
    for job in jobs:
        finished = ledger.of_job(job.id, "finished")
        if finished and job.finished_at is not None:
            delays.append(finished[-1].at - job.finished_at)
    return delays


def outbox_delays(events: dict[int, list[Event]]) -> list[float]:
    """Seconds each event stayed in the outbox (stored to delivered)."""
    return [
        e.delivered_at - e.created_at
        for outbox in events.values()
        for e in outbox
        if e.delivered_at is not None
    ]


def read_store(data_dir: Path) -> tuple[list[Job], dict[int, list[Event]]]:
    """Every job and each job's events, from a stopped colabot's store."""
    store = Store(data_dir)
    try:
        jobs = store.list_jobs()
        return jobs, {job.id: store.events_for(job.id) for job in jobs}
    finally:
        store.close()


def refusals_after_starts(
    refusals: Sequence[FloodRefusal], starts: Sequence[float], seconds: float = 61.0
) -> tuple[list[FloodRefusal], list[FloodRefusal]]:
    """Flood refusals within ``seconds`` after a restart (a killed colabot's sends the next
    one could not know: a group's last minute) and the others."""
    near = [r for r in refusals if any(0 <= r.at - s <= seconds for s in starts[1:])]
    return near, [r for r in refusals if r not in near]


# ----------------------------------------------------------------------------- colabot, killed


class QuietWatch:
    """When the bot last had a Bot API call under way (its long poll aside)."""

    def __init__(self, emu: BotApiEmulator) -> None:
        self.calls = emu.journal.calls
        self._done = 0
        self._last = 0.0

    def quiet_for(self, now: float) -> float:
        """Seconds the bot has had no call under way (0: one is)."""
        calls = self.calls
        while self._done < len(calls) and (
            calls[self._done].finished is not None
            or calls[self._done].method.lower() == "getupdates"
            or now - calls[self._done].started > 60
        ):
            finished = calls[self._done].finished
            if finished is not None and calls[self._done].method.lower() != "getupdates":
                self._last = max(self._last, finished)
            self._done += 1
        for call in calls[self._done :]:
            if call.method.lower() == "getupdates":
                continue
            if call.finished is None:
                return 0.0
            self._last = max(self._last, call.finished)
        return now - self._last


async def kill_when_quiet(
    emu: BotApiEmulator, process: asyncio.subprocess.Process, timeout: float = 60.0
) -> None:
    """SIGKILL colabot at a moment no Bot API call of its is under way (the check and the
    kill happen with nothing in between: the emulator runs in this event loop)."""
    watch = QuietWatch(emu)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while watch.quiet_for(time.time()) < QUIET_S:
        if loop.time() > deadline:
            raise TimeoutError(f"colabot was never quiet for {QUIET_S} s")
        await asyncio.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    await process.wait()


class Resumer:
    """Each owner, told that a job of theirs was interrupted, sends /resume for it, in the
    chat the notice came to (as they would)."""

    def __init__(self, emu: BotApiEmulator, owner_of: Callable[[int], int | None]) -> None:
        self.emu = emu
        self.owner_of = owner_of
        self.sent: list[tuple[int, int]] = []
        self._sending: set[asyncio.Task[object]] = set()
        emu.add_listener(self._seen)

    def _seen(self, event: BotEvent) -> None:
        if event.kind != "message":
            return
        found = INTERRUPTED.search((event.text or "").split("\n", 1)[0])
        if found is None:
            return
        job_id = int(found.group(1))
        owner = self.owner_of(job_id)
        if owner is not None:
            self.sent.append((job_id, owner))
            task = asyncio.get_running_loop().create_task(
                self.emu.send_text(f"/resume {job_id}", user_id=owner, chat_id=event.chat_id)
            )
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)


class StoreWatch:
    """Whether every job succeeded and every event went out, read from colabot's store as
    it runs (SQLite in WAL mode lets a reader in), at most every ``every_s``."""

    def __init__(self, data_dir: Path, jobs: int, every_s: float = 0.25) -> None:
        self.data_dir = data_dir
        self.jobs = jobs
        self.every_s = every_s
        self._store: Store | None = None
        self._checked = 0.0
        self._done = False

    def submitted(self) -> int:
        """How many jobs colabot has taken."""
        if self._store is None:
            if not (self.data_dir / "colabot.sqlite3").exists():
                return 0
            self._store = Store(self.data_dir)
        return len(self._store.list_jobs())

    def done(self) -> bool:
        """Every job succeeded and the outbox is empty."""
        now = time.monotonic()
        if self._done or now - self._checked < self.every_s:
            return self._done
        self._checked = now
        if self._store is None:
            self._store = Store(self.data_dir)
        succeeded = self._store.list_jobs(states=[JobState.SUCCEEDED])
        self._done = len(succeeded) >= self.jobs and not self._store.pending_events(limit=1)
        return self._done

    def close(self) -> None:
        """Let go of the store."""
        if self._store is not None:
            self._store.close()
            self._store = None


class Finished:
    """The jobs whose "finished" message the chats have got so far."""

    def __init__(self, emu: BotApiEmulator) -> None:
        self.jobs: set[int] = set()
        emu.add_listener(self._seen)

    def _seen(self, event: BotEvent) -> None:
        if event.kind == "message":
            found = FINISHED.search((event.text or "").split("\n", 1)[0])
            if found is not None:
                self.jobs.add(int(found.group(1)))


class Owners:
    """Who sent each /train, and so whose each job is (learnt from the status message,
    which replies to the command)."""

    def __init__(self, emu: BotApiEmulator) -> None:
        self.by_message: dict[tuple[int, int], int] = {}
        self.by_job: dict[int, int] = {}
        emu.add_listener(self._seen)

    async def train(
        self, emu: BotApiEmulator, text: str, user: int, chat: int | None = None
    ) -> None:
        """``user`` sends a job's command (in ``chat``, default their private chat)."""
        sent = await emu.send_text(text, user_id=user, chat_id=chat)
        self.by_message[(int(sent["chat"]["id"]), int(sent["message_id"]))] = user

    def _seen(self, event: BotEvent) -> None:
        if event.kind != "message" or event.message is None:
            return
        head = STATUS_HEAD.search((event.text or "").split("\n", 1)[0])
        replied = (event.message.get("reply_to_message") or {}).get("message_id")
        if head is not None and replied is not None:
            owner = self.by_message.get((event.chat_id, int(replied)))
            if owner is not None:
                self.by_job.setdefault(int(head.group(1)), owner)


# ----------------------------------------------------------------------------- commands, timed


class ReplyClock:
    """Times commands sent to one bot until its reply to each."""

    def __init__(self, emu: BotApiEmulator) -> None:
        self.emu = emu
        self.asked: list[tuple[float, float, int]] = []
        """(when it was sent, seconds to the reply, who sent it), by the wall clock."""
        self.unanswered: list[float] = []
        """When each command that got no reply was sent."""
        self._waiting: dict[tuple[int, int], asyncio.Future[float]] = {}
        emu.add_listener(self._seen)

    def _seen(self, event: BotEvent) -> None:
        replied = ((event.message or {}).get("reply_to_message") or {}).get("message_id")
        if event.kind == "edit" or replied is None:
            return
        waiter = self._waiting.pop((event.chat_id, int(replied)), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(time.perf_counter())

    async def ask(self, text: str, user: int, timeout: float = 30.0) -> None:
        """Send ``text`` as ``user`` in their private chat and time the reply."""
        started = time.perf_counter()
        wall = time.time()
        sent = await self.emu.send_text(text, user_id=user)
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[(user, int(sent["message_id"]))] = waiter
        try:
            answered = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            self.unanswered.append(wall)
            return
        self.asked.append((wall, answered - started, user))

    def times_ms(
        self, away: Sequence[tuple[float, float]] = (), people: Iterable[int] | None = None
    ) -> list[float]:
        """Round trips in milliseconds (of ``people``'s commands, default everyone's), but
        for commands under way while colabot was away (``away``: a kill to polling again)."""
        who = None if people is None else set(people)
        return [
            seconds * 1000
            for sent, seconds, user in self.asked
            if (who is None or user in who)
            and not any(sent < end and sent + seconds > start for start, end in away)
        ]

    def missed(self, away: Sequence[tuple[float, float]] = ()) -> int:
        """Commands never answered, but for those sent while colabot was away."""
        return sum(
            not any(start - 30 < sent < end for start, end in away) for sent in self.unanswered
        )


async def command_stream(
    colabot: ReplyClock,
    echo: ReplyClock,
    people: Callable[[int], int],
    pace_s: float,
    going: Callable[[], bool],
    paused: Callable[[], bool] = lambda: False,
) -> None:
    """One command every ``pace_s`` to each bot (the echo bot's half a pace later), from
    ``people(turn)``, while ``going()``; none while ``paused()`` (colabot restarting)."""
    loop = asyncio.get_running_loop()
    asked: set[asyncio.Task[None]] = set()
    started = loop.time()
    turn = 0
    while going():
        if not paused():
            person = people(turn)
            text = "/jobs" if turn % 2 else "/status 1"
            for clock, offset in ((colabot, 0.0), (echo, pace_s / 2)):
                if offset:
                    await asyncio.sleep(offset)
                task = loop.create_task(clock.ask(text, person))
                asked.add(task)
                task.add_done_callback(asked.discard)
        turn += 1
        await asyncio.sleep(max(0.0, started + turn * pace_s - loop.time()))
    if asked:
        await asyncio.gather(*asked)


# ----------------------------------------------------------------------------- one phase


@dataclass
class Phase:
    """One run's figures."""

    name: str
    jobs: list[Job]
    events: dict[int, list[Event]]
    ledger: Ledger
    rates: RateReport
    refusals: list[FloodRefusal]
    near_restarts: list[FloodRefusal]
    problems: list[str]
    colabot_ms: list[float]
    echo_ms: list[float]
    owners_ms: tuple[list[float], list[float]]
    unanswered: tuple[int, int]
    across_restarts: int
    kills: int
    share_failures: int
    seconds: float


def asker(turn: int) -> int:
    """Who sends the ``turn``-th command: every tenth a job owner (one every 5 s each, in
    a chat busy with their jobs), else the visitors in turn (one every 1.7 s each)."""
    if turn % 10 == 9:
        return OWNERS[(turn // 10) % len(OWNERS)]
    return VISITORS[(turn - turn // 10) % len(VISITORS)]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of the values fall (nan for none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_phase(
    name: str, jobs: int, pace_s: float, fault_share: float, kills: int, home: Path
) -> Phase:
    """Run ``jobs`` jobs (and the commands beside them) once; kill colabot ``kills`` times."""
    emu = FaultyBotApi(home / "telegram")
    echo_emu = FaultyBotApi(home / "echo-telegram")
    people = (*OWNERS, *VISITORS)
    for server in (emu, echo_emu):
        await server.start()
        for person in people:
            server.add_chat(person, first_name=f"p{person}")
        if fault_share:
            server.fail_share(fault_share, statuses=(429, 502), retry_after=1, seed=7)
    emu.add_chat(GROUP, title="Lab")
    env = colabot_env(
        home,
        emu.url,
        emu.token,
        telegram_allowed_users=",".join(str(p) for p in people),
        telegram_allowed_chats=str(GROUP),
        telegram_admins=str(ADMIN),
        worker_max_parallel_jobs=str(PARALLEL),
        heartbeat_interval_minutes="0",
    )
    echo = start_echo_bot(echo_emu.url, echo_emu.token, env)
    owners = Owners(emu)
    done = Finished(emu)
    Resumer(emu, owners.by_job.get)
    away: list[tuple[float, float]] = []
    colabot_clock, echo_clock = ReplyClock(emu), ReplyClock(echo_emu)
    starts = [time.time()]
    process = await start_bot_process(env, home, log=home / "colabot.log")
    restarting = False
    began = time.monotonic()
    try:
        await emu.wait_until_polling(timeout=60)
        await echo_emu.wait_until_polling(timeout=60)
        group_jobs = GROUP_JOBS_EACH * len(GROUP_MEMBERS)
        for index in range(jobs - group_jobs):
            await owners.train(emu, job_command(index), OWNERS[index % len(OWNERS)])
        for index in range(group_jobs):
            member = GROUP_MEMBERS[index % len(GROUP_MEMBERS)]
            await owners.train(emu, job_command(index), member, GROUP)
        watch = StoreWatch(home / "data", jobs)
        # The commands are timed while the jobs run: from when colabot has taken them all.
        while watch.submitted() < jobs:
            await asyncio.sleep(0.1)

        def going() -> bool:
            return not watch.done()

        stream = asyncio.create_task(
            command_stream(
                colabot_clock, echo_clock, asker, pace_s, going, paused=lambda: restarting
            )
        )
        for kill in range(kills):
            target = jobs * (kill + 1) // (kills + 1)
            while len(done.jobs) < target:
                await asyncio.sleep(0.1)
            restarting = True
            await kill_when_quiet(emu, process)
            killed = time.time()
            starts.append(killed)
            process = await start_bot_process(env, home, log=home / "colabot.log")
            await emu.wait_until_polling(timeout=60)
            away.append((killed, time.time()))
            restarting = False
        await stream
        watch.close()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 120)
        echo.send_signal(signal.SIGINT)
        # In a thread: the emulator it is talking to runs on this event loop.
        await asyncio.to_thread(echo.wait, 60)
        await emu.stop()
        await echo_emu.stop()
    seconds = time.monotonic() - began
    all_jobs, events = read_store(home / "data")
    ledger = Ledger.read(emu.events)
    problems = job_problems(ledger, all_jobs, events)
    lost = [j.id for j in all_jobs if j.state is not JobState.SUCCEEDED]
    if lost or len(all_jobs) != jobs:
        problems.append(f"{len(all_jobs)} jobs in the store; not succeeded: {lost}")
    refusals = emu.flood_refusals
    near, _ = refusals_after_starts(refusals, starts)
    return Phase(
        name=name,
        jobs=all_jobs,
        events=events,
        ledger=ledger,
        rates=emu.rate_report(),
        refusals=refusals,
        near_restarts=near,
        problems=problems,
        colabot_ms=colabot_clock.times_ms(away),
        echo_ms=echo_clock.times_ms(away),
        owners_ms=(colabot_clock.times_ms(away, OWNERS), echo_clock.times_ms(away, OWNERS)),
        unanswered=(colabot_clock.missed(away), echo_clock.missed(away)),
        across_restarts=len(colabot_clock.asked) - len(colabot_clock.times_ms(away)),
        kills=kills,
        share_failures=len(emu.share_failures),
        seconds=seconds,
    )


# ----------------------------------------------------------------------------- the table


def spread(values: Sequence[float], unit: str = "s", scale: float = 1.0) -> str:
    """p50, p99 and max of a series."""
    if not values:
        return "(none)"
    return (
        f"p50 {statistics.median(values) * scale:8.2f} {unit}  p99 "
        f"{percentile(values, 0.99) * scale:8.2f} {unit}  max {max(values) * scale:8.2f} {unit}"
        f"  (n={len(values)})"
    )


def chat_name(chat_id: int) -> str:
    """How the table names a chat."""
    if chat_id == GROUP:
        return "group (2 owners)"
    if chat_id in OWNERS:
        return f"private {chat_id} (owner)"
    return f"private {chat_id}"


def report(phase: Phase) -> list[str]:
    """A phase's figures as lines of a table."""
    rates = phase.rates
    owner_chats = [c for c in rates.chats.values() if c.chat_id in (*OWNERS, GROUP)]
    visitors = [c for c in rates.chats.values() if c.chat_id not in (*OWNERS, GROUP)]
    lines = [
        f"== {phase.name}: {len(phase.jobs)} jobs, {phase.seconds:.0f} s, {phase.kills} kills, "
        f"{phase.share_failures} calls failed on purpose (429/502)",
        f"{'chat':<26}{'messages':>9}{'max/min':>9}{'burst/s':>9}{'429 over':>9}",
    ]
    for chat in owner_chats:
        lines.append(
            f"{chat_name(chat.chat_id):<26}{chat.messages:>9}{chat.max_per_minute:>9}"
            f"{chat.max_per_second:>9}{chat.refused:>9}"
        )
    if visitors:
        lines.append(
            f"{f'{len(visitors)} command-only chats':<26}"
            f"{sum(c.messages for c in visitors):>9}"
            f"{max(c.max_per_minute for c in visitors):>9}"
            f"{max(c.max_per_second for c in visitors):>9}"
            f"{sum(c.refused for c in visitors):>9}"
        )
    lines.append(
        f"{'all chats':<26}{rates.messages:>9}{'':>9}{rates.max_total_per_second:>9}"
        f"{rates.refused:>9}   (limits: 20/min a group, 1/s a private chat, 30/s in all)"
    )
    if phase.refusals:
        limits = sorted({r.limit for r in phase.refusals})
        lines.append(
            "  429s for going over, by limit: "
            + ", ".join(f"{name} {sum(r.limit == name for r in phase.refusals)}" for name in limits)
        )
    if phase.near_restarts:
        lines.append(
            f"  of the 429s, {len(phase.near_restarts)} came within a minute after a restart"
        )
    lines.append(
        "job finished in the store -> its finished message: "
        + spread(finish_delays(phase.ledger, phase.jobs))
    )
    lines.append(
        "an event's stay in the outbox:                     " + spread(outbox_delays(phase.events))
    )
    ratio = percentile(phase.colabot_ms, 0.99) / percentile(phase.echo_ms, 0.99)
    lines.append("commands, echo bot: " + spread(phase.echo_ms, "ms"))
    lines.append("commands, colabot:  " + spread(phase.colabot_ms, "ms"))
    lines.append("  owners', echo bot: " + spread(phase.owners_ms[1], "ms"))
    lines.append("  owners', colabot:  " + spread(phase.owners_ms[0], "ms"))
    lines.append(
        f"colabot p99 / echo bot p99: {ratio:.2f}x (target <= 2x); unanswered: colabot "
        f"{phase.unanswered[0]}, echo bot {phase.unanswered[1]}"
        + (
            f"; {phase.across_restarts} answered across a restart, left out"
            if phase.across_restarts
            else ""
        )
    )
    lines.append(
        "lost, repeated or out of order: "
        + ("none" if not phase.problems else f"{len(phase.problems)}: {phase.problems[:8]}")
    )
    return lines


async def main_async(args: argparse.Namespace) -> None:
    """Run the phases asked for and print their tables."""
    phases = ["clean", "faults"] if args.phase == "both" else [args.phase]
    print(
        f"{args.jobs} selftest jobs ({min(STEPS)} to {max(STEPS)} steps of 0.3 s), "
        f"{PARALLEL} at a time, from "
        f"{len(OWNERS)} people in private chats, {len(GROUP_MEMBERS)} of them also in a "
        f"group; a command every {args.pace_ms:g} ms to colabot and to the echo bot, over "
        f"{len(OWNERS) + len(VISITORS)} people"
    )
    for name in phases:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) if args.keep is None else args.keep / name
            home.mkdir(parents=True, exist_ok=True)
            faults = name == "faults"
            phase = await run_phase(
                name,
                args.jobs,
                args.pace_ms / 1000,
                args.fault_share if faults else 0.0,
                2 if faults else 0,
                home,
            )
        print("\n".join(report(phase)), flush=True)


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--phase", choices=["both", "clean", "faults"], default="both")
    parser.add_argument("--fault-share", type=float, default=0.05)
    parser.add_argument("--pace-ms", type=float, default=100.0)
    parser.add_argument(
        "--keep", type=Path, default=None, help="run in this folder and keep it (logs, store)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()

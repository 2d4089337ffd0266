"""Notebook mode: start inside a running loop, restart without a getUpdates conflict, and
jobs from cells (``notebook.train``, ``notebook.infer``, ``notebook.wait``) as the chat sees
them."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from telegram import Bot
from telegram.error import Conflict

from bot import notebook
from bot.config import Config
from bot.errors import ConfigError
from bot.service import Colabot
from emulator import BotApiEmulator
from tests.helpers.chat import Person
from tests.helpers.engine import WaitForState
from workers.jobs import JobState


async def test_start_twice_stops_the_first_instance_first(
    chat_config: Config, emu: BotApiEmulator, person: Person
) -> None:
    first = await notebook.start(chat_config)
    try:
        second = await notebook.start(chat_config)
        assert not first.running and second.running
        assert notebook.current() is second
        reply = await person.say("/help")
        assert "Commands" in (reply.text or "")
        await person.say("/jobs")
    finally:
        await notebook.stop()
    assert notebook.current() is None
    conflicts = [c for c in emu.calls if c.status == 409]
    assert conflicts == []
    answers = [e for e in emu.events if "Commands" in (e.text or "")]
    assert len(answers) == 1


async def test_stop_without_start_is_harmless() -> None:
    await notebook.stop()


async def test_notebook_mode_needs_a_token(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match=r"telegram\.token: notebook mode needs a bot token"):
        await notebook.start(Config())


# ----------------------------------------------------------------------------- jobs from cells


@pytest.fixture
async def cells(chat_config: Config) -> AsyncIterator[Colabot]:
    """colabot started as the notebook's start cell starts it; stopped after the test."""
    colabot = await notebook.start(chat_config)
    try:
        yield colabot
    finally:
        await notebook.stop()


async def test_cells_need_a_running_colabot() -> None:
    with pytest.raises(notebook.NotebookError, match=r"run `await notebook.start\(\)` first"):
        await notebook.train("selftest")
    with pytest.raises(notebook.NotebookError, match="colabot is not running here"):
        await notebook.wait()


async def test_the_start_cell_says_where_jobs_start_and_where_the_log_is(
    chat_config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    await notebook.start(chat_config)
    try:
        shown = capsys.readouterr().out
    finally:
        await notebook.stop()
    log_file = chat_config.data_dir / "colabot.log"
    assert shown == (
        "colabot is running (jobs start from the chat and from cells); send /help to your "
        f"bot. Its log: {log_file}\n"
    )
    assert log_file.stat().st_size > 0


@pytest.mark.parametrize(
    ("call", "command"),
    [
        (lambda: notebook.train("nosuchkind"), "/train nosuchkind"),
        (lambda: notebook.train("selftest", steps="many"), "/train selftest steps=many"),
        (lambda: notebook.train("selftest", colour="red"), "/train selftest colour=red"),
        (lambda: notebook.train("selftest", fail="perhaps"), "/train selftest fail=perhaps"),
        (lambda: notebook.train("selftest", "a", "b"), "/train selftest a b"),
        (lambda: notebook.train("selftest", "/etc/passwd"), "/train selftest /etc/passwd"),
        (lambda: notebook.train("selftest", "../x.txt"), "/train selftest ../x.txt"),
        (lambda: notebook.infer("selftest", 99), "/infer selftest 99"),
    ],
    ids=["kind", "value", "unknown-param", "bool", "too-many", "outside", "dots", "no-model"],
)
async def test_a_refused_cell_is_told_what_the_chat_is_told(
    cells: Colabot, person: Person, call: Callable[[], Awaitable[int]], command: str
) -> None:
    told = await person.say(command)
    with pytest.raises(notebook.NotebookError) as caught:
        await call()
    assert str(caught.value) == told.text
    assert "Traceback" not in str(caught.value)
    assert not isinstance(caught.value, notebook.JobFailedError)
    assert cells.engine is not None and cells.engine.jobs() == []


async def test_yes_no_params_take_python_bools(cells: Colabot) -> None:
    outcome = await notebook.wait(await notebook.train("selftest", steps=1, delay=0, fail=False))
    assert isinstance(outcome, notebook.Outcome) and outcome.state == "succeeded"


async def test_a_job_from_a_cell_is_announced_followed_and_its_outcome_returned(
    cells: Colabot, person: Person, emu: BotApiEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    job = await notebook.train("selftest", steps=3, delay=0.2)
    assert job == 1
    outcome = await notebook.wait(job)

    assert isinstance(outcome, notebook.Outcome)
    assert (outcome.job_id, outcome.state, outcome.error) == (1, "succeeded", None)
    assert outcome.summary == "selftest train: 3 steps"
    assert {link.label for link in outcome.links} >= {"model", "result.json"}
    # The cell's bar (tqdm's text bar outside Jupyter) went through the steps to the end.
    bar = capsys.readouterr().err.replace("\r", "\n")
    assert "#1 selftest train:" in bar
    assert any(f"step {step} of 3" in bar for step in (1, 2, 3)), bar
    assert "#1 selftest train: 100%" in bar and "succeeded" in bar.splitlines()[-1]
    # The first allowed user's chat has the job, as if it had been started there.
    status = await person.next_message("#1 selftest train")
    assert "selftest train: 3 steps" in ((await person.next_message("finished")).text or "")
    assert "succeeded" in (emu.message(person.user_id, status.message_id or 0) or {})["text"]


async def test_without_tqdm_the_bar_is_plain_lines(
    cells: Colabot, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # as if tqdm were not installed
    await notebook.wait(await notebook.train("selftest", steps=2, delay=0))
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "#1 selftest train: succeeded (100%)"
    assert len(lines) == len(set(lines)), "a line was said twice"


async def test_waiting_for_a_finished_job_returns_at_once(cells: Colabot) -> None:
    job = await notebook.train("selftest", steps=1, delay=0)
    first = await notebook.wait(job)
    # Once it has ended, waiting never gives the loop a turn: it answers at once.
    again = notebook.wait(job)
    with pytest.raises(StopIteration) as done:
        again.send(None)
    assert done.value.value == first


async def test_waiting_for_an_unknown_job_is_a_clear_error(cells: Colabot) -> None:
    with pytest.raises(notebook.NotebookError) as caught:
        await notebook.wait(99)
    assert str(caught.value) == "there is no job #99"


async def test_a_failed_job_raises_its_reason_and_last_log_lines(
    cells: Colabot, person: Person
) -> None:
    job = await notebook.train("selftest", steps=4, delay=0, fail=True)
    with pytest.raises(notebook.JobFailedError) as caught:
        await notebook.wait(job)
    failed = caught.value
    assert isinstance(failed, notebook.NotebookError)
    assert failed.job_id == job
    assert failed.reason == "the job was told to fail (fail=yes)"
    assert any("told to fail" in line for line in failed.tail)
    assert str(failed).startswith(
        f"job #{job} failed: the job was told to fail (fail=yes)\nlast log lines:\n"
    )
    # The status message says so (posted that way, or edited to it: delivery may come after).
    await person.emu.wait_for(
        lambda e: e.kind in ("message", "edit") and "· failed" in (e.text or ""),
        chat_id=person.user_id,
    )
    # Waiting again says the same, at once.
    with pytest.raises(notebook.JobFailedError, match="told to fail"):
        await asyncio.wait_for(notebook.wait(job), timeout=5)


async def test_waiting_for_every_job(cells: Colabot) -> None:
    first = await notebook.train("selftest", steps=2, delay=0.1)
    second = await notebook.train("selftest", steps=1, delay=0)
    outcomes = await notebook.wait()
    assert isinstance(outcomes, list)
    assert [(o.job_id, o.state) for o in outcomes] == [
        (first, "succeeded"),
        (second, "succeeded"),
    ]
    assert await notebook.wait() == []  # nothing queued or running now


async def test_waiting_for_several_raises_for_a_failure_once_all_have_ended(
    cells: Colabot,
) -> None:
    failing = await notebook.train("selftest", steps=1, delay=0, fail=True)
    slow = await notebook.train("selftest", steps=4, delay=0.2)
    with pytest.raises(notebook.JobFailedError) as caught:
        await notebook.wait()
    assert caught.value.job_id == failing
    assert cells.engine is not None and cells.engine.job(slow).state is JobState.SUCCEEDED


async def test_a_job_can_be_announced_in_another_served_chat_only(cells: Colabot) -> None:
    with pytest.raises(notebook.NotebookError, match="chat -100123 is not one colabot serves"):
        await notebook.train("selftest", chat_id=-100123)
    assert cells.engine is not None and cells.engine.jobs() == []


async def test_interrupting_a_wait_leaves_the_job_running_and_says_how_to_stop_it(
    cells: Colabot, wait_for_state: WaitForState, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cells.engine is not None
    job = await notebook.train("selftest", steps=2000, delay=0.05)
    waiting = asyncio.create_task(notebook.wait(job))
    await wait_for_state(cells.engine, job, {JobState.RUNNING})
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert f"Stopped waiting; #{job} keeps running. Stop one early with /stop <id>" in (
        capsys.readouterr().out
    )
    assert cells.engine.job(job).state is JobState.RUNNING
    await cells.engine.cancel(job)


async def test_a_cell_waiting_when_colabot_must_stop_is_told_and_not_left_hanging(
    cells: Colabot, emu: BotApiEmulator, wait_for_state: WaitForState
) -> None:
    """Another process polls with the bot's token: colabot stops (its watcher says why),
    the running job is interrupted, and the waiting cell ends with a clear error."""
    assert cells.engine is not None
    job = await notebook.train("selftest", steps=2000, delay=0.05)
    await wait_for_state(cells.engine, job, {JobState.RUNNING})
    waiting = asyncio.create_task(notebook.wait(job))

    async def poll_with_the_same_token() -> None:
        async with Bot(emu.token, base_url=emu.base_url) as other:
            while not cells.failed.is_set():
                try:
                    await other.get_updates(timeout=1)
                except Conflict:
                    continue

    other = asyncio.create_task(poll_with_the_same_token())
    try:
        with pytest.raises(notebook.NotebookError) as caught:
            await asyncio.wait_for(waiting, timeout=30)
    finally:
        other.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await other
    told = str(caught.value)
    assert told.startswith("colabot stopped (telegram.token: another process is polling")
    assert f"while waiting for #{job}. Start it again with `await notebook.start()`" in told
    assert "/resume <id> in the chat continues one that was running" in told
    assert notebook.current() is None
    assert not cells.running

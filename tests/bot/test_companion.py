"""Companion mode (``telegram.start_jobs = false``): jobs start from notebook cells only, and
the chat follows them (status, logs, stop early, cancel, resume) but starts none."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from bot import notebook, views
from bot.config import Config
from bot.service import Colabot
from emulator import BotApiEmulator
from tests.helpers.chat import USER, Person
from tests.helpers.engine import WaitForState
from workers.engine import Engine
from workers.jobs import JobState, Progress


async def reached_step(engine: Engine, job_id: int, step: int, timeout: float = 20.0) -> None:
    """Wait until a running job has reported ``step`` (or more)."""
    reached = asyncio.Event()

    def seen(seen_id: int, progress: Progress) -> None:
        if seen_id == job_id and (progress.step or 0) >= step:
            reached.set()

    stop_listening = engine.on_progress(seen)
    try:
        if (engine.job(job_id).progress.step or 0) < step:
            await asyncio.wait_for(reached.wait(), timeout)
    finally:
        stop_listening()


@pytest.fixture
def companion_config(chat_config: Config) -> Config:
    telegram = dataclasses.replace(chat_config.telegram, start_jobs=False)
    return chat_config.replace(telegram=telegram)


@pytest.fixture
async def companion(companion_config: Config) -> AsyncIterator[Colabot]:
    """colabot in companion mode, started from a cell; stopped after the test."""
    colabot = await notebook.start(companion_config)
    try:
        yield colabot
    finally:
        await notebook.stop()


@pytest.mark.parametrize(
    "command",
    ["/train selftest steps=1 delay=0", "/infer selftest 1", "/train nosuchkind", "/train"],
)
async def test_the_chat_starts_no_job_and_says_where_jobs_start(
    companion: Colabot, person: Person, command: str
) -> None:
    reply = await person.say(command)
    assert reply.text == views.COMPANION_MODE
    assert companion.engine is not None and companion.engine.jobs() == []


async def test_help_says_jobs_start_from_the_notebook(companion: Colabot, person: Person) -> None:
    text = (await person.say("/help")).text or ""
    assert views.COMPANION_MODE in text and "start a training job" not in text
    assert views.COMPANION_MODE in ((await person.say("/help train")).text or "")


async def test_a_file_sent_with_a_train_caption_is_not_fetched(
    companion: Colabot, person: Person, emu: BotApiEmulator
) -> None:
    await emu.send_document(b"words\n", "corpus.txt", caption="/train selftest", user_id=USER)
    reply = await person.next_message("companion mode")
    assert reply.text == views.COMPANION_MODE
    assert [c for c in emu.calls if c.method == "getFile"] == []
    assert companion.engine is not None and companion.engine.jobs() == []


async def test_the_start_cell_says_it_is_companion_mode(
    companion_config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    await notebook.start(companion_config)
    await notebook.stop()
    assert "colabot is running (companion mode: jobs start from cells" in capsys.readouterr().out


async def test_a_job_from_a_cell_is_followed_and_stopped_from_the_chat(
    companion: Colabot, person: Person, emu: BotApiEmulator, wait_for_state: WaitForState
) -> None:
    assert companion.engine is not None
    job = await notebook.train("selftest", steps=2000, delay=0.05)
    status = await person.next_message(f"#{job} selftest train")
    await reached_step(companion.engine, job, 3)
    assert f"#{job} selftest train" in ((await person.say("/jobs")).text or "")
    assert f"#{job} selftest train: running" in ((await person.say(f"/status {job}")).text or "")
    assert "progress" in ((await person.say(f"/logs {job} 3")).text or "")
    # /stop from the chat: the training ends early, keeps its model, and the cell's wait
    # returns how it ended.
    question = await person.say(f"/stop {job}")
    await person.press(question, "Yes, stop early")
    await person.next_edit(f"Asked job #{job} to stop early")
    outcome = await notebook.wait(job)
    assert isinstance(outcome, notebook.Outcome)
    assert outcome.state == "succeeded"
    assert outcome.summary.startswith("selftest train: stopped early at step")
    done = await person.next_edit("succeeded")
    assert done.message_id == status.message_id


async def test_a_job_from_a_cell_is_cancelled_from_the_chat(
    companion: Colabot, person: Person, wait_for_state: WaitForState
) -> None:
    assert companion.engine is not None
    job = await notebook.train("selftest", steps=2000, delay=0.05)
    status = await person.next_message(f"#{job} selftest train")
    await wait_for_state(companion.engine, job, {JobState.RUNNING})
    await person.press(status, "Cancel")
    question = await person.next_message(f"Cancel #{job} selftest train")
    await person.press(question, "Yes, cancel it")
    await person.next_message(f"#{job} selftest train was cancelled")
    outcome = await notebook.wait(job)
    assert isinstance(outcome, notebook.Outcome) and outcome.state == "cancelled"


async def test_an_interrupted_job_from_a_cell_is_resumed_from_the_chat(
    companion_config: Config, person: Person, wait_for_state: WaitForState
) -> None:
    first = await notebook.start(companion_config)
    try:
        assert first.engine is not None
        job = await notebook.train("selftest", steps=40, delay=0.05)
        await reached_step(first.engine, job, 3)
        # The runtime goes (the notebook's stop cell); the next one starts colabot again.
        await notebook.stop()
        again = await notebook.start(companion_config)
        assert again.engine is not None and again.engine.job(job).state is JobState.INTERRUPTED
        with pytest.raises(notebook.NotebookError) as caught:
            await notebook.wait(job)
        assert str(caught.value) == (
            f"job #{job} was interrupted (colabot stopped while the job was running): "
            f"/resume {job} in the chat continues it"
        )
        await person.emu.send_text(f"/resume {job}", user_id=USER)
        await wait_for_state(again.engine, job, {JobState.QUEUED, JobState.RUNNING})
        outcome = await notebook.wait(job)
        assert isinstance(outcome, notebook.Outcome) and outcome.state == "succeeded"
    finally:
        await notebook.stop()

"""Notebook mode: run colabot inside an already-running event loop (Jupyter, Colab), and
start and follow jobs from cells.

    from bot import notebook
    await notebook.start()        # or notebook.start(config) / notebook.start("colabot.toml")
    job = await notebook.train("sleap", "labels.slp", epochs=20)
    outcome = await notebook.wait(job)   # a progress bar; the chat keeps being answered
    ...
    await notebook.stop()

A job started from a cell is checked exactly as ``/train`` and ``/infer`` check it (the same
refusals, as a :class:`NotebookError`), and is announced in the chat of the first allowed
user (or ``chat_id=``) as if it had been started there. ``wait`` keeps the notebook busy while
jobs run, which is what Colab expects of a notebook in use.

Starting again stops the earlier instance first, so re-running a cell never leaves two
pollers on one token (Telegram's "Conflict: terminated by other getUpdates request").
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import views
from bot.commands import parse_submit
from bot.config import Config, find_config_file, load_config
from bot.errors import ConfigError, UsageError
from bot.logs import LOG_FILE, setup_logging
from bot.runtime import flush_drive_mount
from bot.service import Colabot
from workers.errors import ColabotError, UnknownJobError
from workers.jobs import Action, Job, JobState, Link
from workers.waits import wait_at_most

_current: Colabot | None = None
_watcher: asyncio.Task[None] | None = None
log = logging.getLogger(__name__)


def _resolve(config: Config | str | Path | None) -> Config:
    if isinstance(config, Config):
        return config
    path = Path(config) if config is not None else None
    return load_config(find_config_file(path, os.environ))


async def start(config: Config | str | Path | None = None) -> Colabot:
    """Start the bot, engine and heartbeat in the running loop and return at once."""
    global _current
    resolved = _resolve(config)
    if resolved.offline:
        raise ConfigError(
            "telegram.token",
            "notebook mode needs a bot token (set COLABOT_TELEGRAM_TOKEN, e.g. from a Colab "
            "secret); the offline chat is for `colabot run` in a terminal",
        )
    await stop()
    log_file = resolved.data_dir / LOG_FILE
    setup_logging(file=log_file)
    colabot = Colabot(resolved)
    await colabot.start()
    _current = colabot
    global _watcher
    _watcher = asyncio.create_task(_stop_on_failure(colabot), name="colabot-notebook-watch")
    print(status_line(colabot, log_file))
    return colabot


def status_line(colabot: Colabot, log_file: Path) -> str:
    """What the start cell shows: that colabot runs, where jobs start, where its log is."""
    config = colabot.config
    jobs = (
        "jobs start from the chat and from cells"
        if config.telegram.start_jobs
        else "companion mode: jobs start from cells, with notebook.train or notebook.infer"
    )
    return f"colabot is running ({jobs}); send /help to your bot. Its log: {log_file}"


async def _stop_on_failure(colabot: Colabot) -> None:
    """In a notebook nobody waits for colabot: when it must stop (another process polls with
    its token), say why (in the log, and in the output of the cell that is running) and stop
    it."""
    await colabot.failed.wait()
    log.error("colabot stopped: %s", colabot.fatal)
    print(f"colabot stopped: {colabot.fatal}")
    if _current is colabot:
        await stop()


async def stop() -> None:
    """Stop the running instance, if any (running jobs become interrupted and resumable)."""
    global _current, _watcher
    colabot, _current = _current, None
    watcher, _watcher = _watcher, None
    if watcher is not None and watcher is not asyncio.current_task():
        watcher.cancel()
    if colabot is not None:
        await colabot.stop()
        flushed = await flush_drive_mount(colabot.config)
        if flushed is not None:
            print(flushed)


def current() -> Colabot | None:
    """The running instance, if any."""
    return _current


class NotebookError(ColabotError):
    """What a cell is told when colabot refuses or a job fails: the chat's own words."""


class JobFailedError(NotebookError):
    """A job a cell waited for failed; ``reason`` and ``tail`` (its last log lines) say how."""

    def __init__(self, job_id: int, reason: str, tail: list[str]) -> None:
        text = f"job #{job_id} failed: {reason}"
        if tail:
            text += "\nlast log lines:\n" + "\n".join(tail)
        super().__init__(text)
        self.job_id = job_id
        self.reason = reason
        self.tail = tail


@dataclass(frozen=True)
class Outcome:
    """How a job ended, for the cell that waited for it."""

    job_id: int
    state: str
    summary: str
    links: tuple[Link, ...]
    error: str | None = None


def _running() -> Colabot:
    colabot = _current
    if colabot is None or colabot.handlers is None or colabot.engine is None:
        raise NotebookError("colabot is not running here: run `await notebook.start()` first")
    return colabot


def _announce_to(colabot: Colabot, chat_id: int | None) -> dict[str, Any]:
    """Where a job from a cell is announced: ``chat_id``, else the first allowed user's chat
    (that person is the job's owner)."""
    users = colabot.config.telegram.allowed_users
    if chat_id is None:
        if not users:
            raise NotebookError("telegram.allowed_users is empty: no chat to announce the job in")
        return {"chat_id": users[0], "user_id": users[0], "from": "notebook"}
    chats = colabot.chats
    if chats is None or not chats.serves(chat_id, "private" if chat_id > 0 else "group"):
        raise NotebookError(
            f"chat {chat_id} is not one colabot serves (telegram.allowed_users and "
            "telegram.allowed_chats)"
        )
    return {
        "chat_id": chat_id,
        "user_id": chat_id if chat_id > 0 else (users[0] if users else None),
        "from": "notebook",
    }


def _arguments(values: Sequence[object], params: dict[str, object]) -> list[str]:
    def text(value: object) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    return [*(text(v) for v in values), *(f"{k}={text(v)}" for k, v in params.items())]


async def _submit(
    action: Action,
    kind: str,
    values: Sequence[object],
    params: dict[str, object],
    chat_id: int | None,
) -> int:
    colabot = _running()
    assert colabot.handlers is not None and colabot.engine is not None
    handlers = colabot.handlers
    args = [kind, *_arguments(values, params)]
    command = f"/{action.value} " + " ".join(args)
    try:
        request = parse_submit(action, args, colabot.engine.registry, has_document=False)
        spec = handlers.check_submit(request, {})
        job = handlers.submit(spec, _announce_to(colabot, chat_id))
    except NotebookError:
        raise
    except (UsageError, ColabotError) as exc:
        raise NotebookError(views.to_plain(handlers.problem_view(exc, command).text)) from None
    return job.id


async def train(kind: str, *inputs: object, chat_id: int | None = None, **params: object) -> int:
    """Start a training job as ``/train kind inputs... key=value...`` would; return its id
    at once. NotebookError, in the chat's words, when it is refused."""
    return await _submit(Action.TRAIN, kind, inputs, params, chat_id)


async def infer(
    kind: str, model: object, *inputs: object, chat_id: int | None = None, **params: object
) -> int:
    """Run a trained model as ``/infer kind model inputs... key=value...`` would; return the
    job's id at once. NotebookError, in the chat's words, when it is refused."""
    return await _submit(Action.INFER, kind, (model, *inputs), params, chat_id)


async def wait(job_id: int | None = None) -> Outcome | list[Outcome]:
    """Wait for a job (or for every job queued or running now), with a progress bar in the
    cell, and return how it ended. The bot keeps answering the chat meanwhile.

    A failed job raises JobFailedError with its reason and last log lines (waiting for
    several, once all have ended); an interrupted job, or colabot stopping meanwhile, raises
    NotebookError saying how to go on. Interrupting the cell leaves the jobs running and says
    how to stop them.
    """
    colabot = _running()
    engine = colabot.engine
    assert engine is not None
    if job_id is None:
        ids = [job.id for job in (*engine.running_jobs(), *engine.queued_jobs())]
    else:
        try:
            ids = [engine.job(job_id).id]
        except UnknownJobError:
            raise NotebookError(f"there is no job #{job_id}") from None
    changed = asyncio.Event()
    unsubscribe = (
        engine.on_state(lambda _job: changed.set()),
        engine.on_progress(lambda _job, _progress: changed.set()),
    )
    bars = _Bars()
    jobs: list[Job] = []
    try:
        while True:
            if not colabot.running:
                # Stopped under the cell (another process polls with the token): its store
                # is closed, so say what was known last.
                raise _stopped_under(colabot, [job for job in jobs if job.active])
            jobs = [engine.job(i) for i in ids]
            bars.show(jobs)
            if not any(job.active for job in jobs):
                break
            changed.clear()
            await wait_at_most(changed, WAIT_REFRESH_S)
    except (asyncio.CancelledError, KeyboardInterrupt):
        still = [job.id for job in jobs if job.active]
        if still and colabot.running:
            names = ", ".join(f"#{i}" for i in still)
            keep = "keeps" if len(still) == 1 else "keep"
            print(
                f"Stopped waiting; {names} {keep} running. Stop one early with /stop <id> or "
                "cancel it with /cancel <id> in the chat, or stop colabot with "
                "`await notebook.stop()`."
            )
        raise
    finally:
        bars.close()
        for stop_listening in unsubscribe:
            stop_listening()
    outcomes = [_outcome(job) for job in jobs]
    failed = [o for o in outcomes if o.state == JobState.FAILED.value]
    if failed:
        first = failed[0]
        tail = await engine.read_log_tail(first.job_id, 12)
        raise JobFailedError(first.job_id, first.error or "failed", tail)
    interrupted = [o for o in outcomes if o.state == JobState.INTERRUPTED.value]
    if interrupted:
        first = interrupted[0]
        raise NotebookError(
            f"job #{first.job_id} was interrupted ({first.error or 'its step was lost'}): "
            f"/resume {first.job_id} in the chat continues it"
        )
    return outcomes[0] if job_id is not None else outcomes


def _stopped_under(colabot: Colabot, active: Sequence[Job]) -> NotebookError:
    """What a waiting cell is told when colabot stopped under it."""
    why = f" ({colabot.fatal})" if colabot.fatal is not None else ""
    if not active:
        return NotebookError(f"colabot stopped{why}")
    names = ", ".join(f"#{job.id}" for job in active)
    return NotebookError(
        f"colabot stopped{why} while waiting for {names}. Start it again with "
        "`await notebook.start()`: a queued job then starts by itself, and /resume <id> in "
        "the chat continues one that was running (it is interrupted)."
    )


WAIT_REFRESH_S = 1.0
"""How often a waiting cell's bars show the time elapsed when nothing else changed."""


def _outcome(job: Job) -> Outcome:
    return Outcome(job.id, job.state.value, job.summary, job.links, job.error)


BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}"
"""A job's bar: its percentage and time so far, then what it says (no rate of "%/s")."""


class _Bars:
    """One progress bar per job in the cell (tqdm's notebook widget in Jupyter and Colab,
    text elsewhere; plain lines when tqdm is missing)."""

    def __init__(self) -> None:
        self._bars: dict[int, Any] = {}
        self._said: dict[int, str] = {}

    def show(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            label = f"#{job.id} {job.spec.kind} {job.spec.action.value}"
            text = job.progress.message if job.active else job.state.value
            fraction = 1.0 if job.finished else (job.progress.fraction or 0.0)
            bar = self._bar(job.id, label)
            if bar is None:
                line = f"{label}: {text} ({fraction:.0%})"
                if self._said.get(job.id) != line:
                    print(line)
                    self._said[job.id] = line
                continue
            bar.n = round(fraction * 100)
            bar.set_postfix_str(text[:60], refresh=False)
            bar.refresh()

    def _bar(self, job_id: int, label: str) -> Any:
        if job_id not in self._bars:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self._bars[job_id] = None
            else:
                self._bars[job_id] = tqdm(total=100, desc=label, bar_format=BAR_FORMAT)
        return self._bars[job_id]

    def close(self) -> None:
        for bar in self._bars.values():
            if bar is not None:
                bar.close()

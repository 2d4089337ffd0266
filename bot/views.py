"""Pure message views: texts (Telegram HTML) and inline buttons for jobs, errors and help."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.commands import SUMMARY, USAGE, Verb, button_data, kind_usage
from bot.limits import MESSAGE_CHARS
from workers.executors.base import Placement, format_seconds
from workers.jobs import Action, Job, JobState, Link
from workers.kinds.registry import KindRegistry
from workers.quality import Quality
from workers.sharing.owners import Owner

if TYPE_CHECKING:
    pass

REFUSAL = "Sorry, this is a private bot."
COMPANION_MODE = (
    "Jobs start from the notebook here (companion mode): run notebook.train(...) or "
    "notebook.infer(...) in a cell. Everything else works from the chat."
)
EDIT_NOT_RUN = (
    "Edited commands are not run again. To run it with the change, send it as a new message."
)


def chat_not_allowed(chat_id: int) -> str:
    """The answer to an allowed user in a chat colabot does not serve."""
    return (
        "I only work in private chats with the people I know, and in groups listed in "
        f"telegram.allowed_chats. To use me in this chat, add its id ({chat_id}) there."
    )


STATE_MARK = {
    JobState.QUEUED: "⏳",
    JobState.RUNNING: "▶️",
    JobState.SUCCEEDED: "✅",
    JobState.FAILED: "❌",
    JobState.CANCELLED: "⏹",
    JobState.INTERRUPTED: "⚠️",
}


@dataclass(frozen=True)
class Button:
    """One inline button: its label and callback data."""

    label: str
    data: str


@dataclass(frozen=True)
class View:
    """A message to send: HTML text and rows of buttons."""

    text: str
    buttons: list[list[Button]] = field(default_factory=list)


def esc(text: object) -> str:
    """Escape text for Telegram HTML."""
    return html.escape(str(text), quote=False)


def pre(lines: Sequence[str]) -> str:
    """A preformatted block of log lines."""
    return "<pre>" + esc("\n".join(lines)) + "</pre>" if lines else ""


def progress_bar(fraction: float, width: int = 12) -> str:
    """``▓▓▓░░░ 50%``."""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return "▓" * filled + "░" * (width - filled) + f" {fraction:.0%}"


def job_title(job: Job) -> str:
    """``#12 selftest train``."""
    return f"#{job.id} {job.spec.kind} {job.spec.action.value}"


def job_buttons(job: Job) -> list[list[Button]]:
    """Status and Logs, then what the job's state allows: Results once it succeeded, Resume
    while it can be queued again, Stop early while it trains, Cancel while it can be
    cancelled."""
    row = [
        Button("Status", button_data(Verb.STATUS, job.id)),
        Button("Logs", button_data(Verb.LOGS, job.id)),
    ]
    if job.state is JobState.SUCCEEDED:
        row.append(Button("Results", button_data(Verb.RESULTS, job.id)))
    if job.can_resume:
        row.append(Button("Resume", button_data(Verb.RESUME, job.id)))
    if job.can_stop_early:
        row.append(Button("Stop early", button_data(Verb.STOP_EARLY, job.id)))
    if job.can_cancel:
        row.append(Button("Cancel", button_data(Verb.CANCEL, job.id)))
    return [row]


def _elapsed(job: Job, now: float) -> str:
    elapsed = job.elapsed(now)
    return format_seconds(elapsed) if elapsed is not None else "not started"


def progress_lines(job: Job) -> list[str]:
    """The progress part of a status: bar, message, ETA. The message is the kind's own
    formatted line (it says the figures that matter: ``train loss 0.0017 · 27.5 steps/s``);
    the raw metrics are shown only when there is no message, never said twice."""
    progress = job.progress
    lines = []
    if progress.fraction is not None:
        lines.append(progress_bar(progress.fraction))
    if progress.message:
        lines.append(esc(progress.message))
    elif progress.metrics:
        lines.append(esc(" · ".join(f"{k} {v:.4g}" for k, v in sorted(progress.metrics.items()))))
    if progress.eta_s is not None and job.state is JobState.RUNNING:
        lines.append(f"ETA {format_seconds(progress.eta_s)}")
    if progress.link.startswith(("http://", "https://")):
        href = html.escape(progress.link)
        lines.append(f'<a href="{href}">W&amp;B run</a>: {esc(progress.link)}')
    return lines


def _state_word(job: Job, where: Placement | None) -> str:
    """``running``, or ``waiting`` while a cluster has not started the job's step."""
    if job.state is JobState.RUNNING and where is not None and where.waiting:
        return "waiting"
    return job.state.value


def _running_line(job: Job, step: str, where: Placement | None, now: float) -> str:
    """``running for 3m · train · on gpu-node-2``, or what a waiting step waits for."""
    named = f" · {esc(step)}" if step else ""
    if where is not None and where.waiting:
        return f"{esc(where.waiting)}{named}"
    node = f" · on {esc(where.node)}" if where is not None and where.node else ""
    return f"running for {_elapsed(job, now)}{named}{node}"


def live_status(
    job: Job, step: str = "", now: float | None = None, where: Placement | None = None
) -> View:
    """The one status message a job keeps, edited as it progresses."""
    now = time.time() if now is None else now
    head = f"{STATE_MARK[job.state]} <b>{esc(job_title(job))}</b> · {_state_word(job, where)}"
    lines = [head]
    if job.state is JobState.QUEUED and where is not None and where.waiting:
        lines.append(esc(where.waiting))
    if job.state is JobState.RUNNING:
        lines.append(_running_line(job, step, where, now))
    if job.state is not JobState.QUEUED:
        lines.extend(progress_lines(job))
    if job.state is JobState.FAILED and job.error:
        lines.append(f"reason: {esc(job.error)}")
    if job.finished:
        lines.append(f"took {_elapsed(job, now)}")
    return View("\n".join(lines), job_buttons(job))


def status_view(
    job: Job,
    step: str,
    tail: list[str],
    now: float | None = None,
    where: Placement | None = None,
    quality: Quality | None = None,
) -> View:
    """/status: state, progress, elapsed, ETA and the last log lines (and, on a cluster,
    the node, the cluster's own job id and when its time limit ends the step); once it
    finished, its summary and the held-out scores it kept."""
    now = time.time() if now is None else now
    state = _state_word(job, where)
    lines = [f"{STATE_MARK[job.state]} <b>{esc(job_title(job))}</b>: {state}"]
    spec = job.spec
    if spec.inputs:
        lines.append("inputs: " + esc(", ".join(f"{k}={v}" for k, v in spec.inputs.items())))
    if job.state is JobState.RUNNING and step:
        lines.append(f"step: {esc(step)}")
    if job.owner is not None:
        lines.append(f"owner: {esc(job.owner.label)}")
    if job.state is JobState.QUEUED and where is not None and where.waiting:
        lines.append(esc(where.waiting))
    if job.state is JobState.RUNNING and where is not None:
        if where.waiting:
            lines.append(esc(where.waiting))
        if where.node:
            lines.append(f"node: {esc(where.node)}")
        if where.ends_at is not None and not where.waiting:
            left = format_seconds(max(0.0, where.ends_at - now))
            lines.append(f"time limit: ends in {left} (at {clock_time(where.ends_at)})")
    if job.state is JobState.RUNNING and where is not None and where.job:
        lines.append(f"{esc(where.cluster or 'cluster')} job: <code>{esc(where.job)}</code>")
    lines.append(f"elapsed: {_elapsed(job, now)}")
    lines.extend(progress_lines(job))
    if job.finished and job.summary:
        lines.append(esc(job.summary))
    lines.extend(esc(line) for line in quality_lines(job.summary, quality))
    if job.error:
        lines.append(f"reason: {esc(job.error)}")
    if job.attempt > 1:
        lines.append(f"attempt {job.attempt}")
    if tail:
        lines.append("last log lines:")
        lines.append(pre(tail))
    return View("\n".join(lines), job_buttons(job))


def job_line(
    job: Job, now: float | None = None, where: Placement | None = None, *, owner: bool = False
) -> str:
    """One line of /jobs (with ``owner``: whose job it is)."""
    now = time.time() if now is None else now
    extra = ""
    if job.state is JobState.RUNNING:
        progress = job.progress
        extra = f" · {progress.fraction:.0%}" if progress.fraction is not None else ""
        extra += f" · {_elapsed(job, now)}"
        if where is not None and where.node:
            extra += f" · on {esc(where.node)}"
    elif job.finished and job.started_at is not None:
        extra = f" · {_elapsed(job, now)}"
    if owner and job.owner is not None:
        extra += f" · {esc(job.owner.label)}"
    return f"{STATE_MARK[job.state]} <b>#{job.id}</b> {esc(job.spec.kind)} " + (
        f"{job.spec.action.value} · {_state_word(job, where)}{extra}"
    )


def jobs_view(
    jobs: list[Job],
    now: float | None = None,
    places: Mapping[int, Placement] | None = None,
    *,
    owners: bool = False,
) -> View:
    """/jobs: the caller's recent jobs (``owners``: everyone's, each with its owner), one
    line each (with the node each running job is on)."""
    if not jobs:
        return View("No jobs yet. Start one with /train (see /help).")
    places = places or {}
    lines = [job_line(job, now, places.get(job.id), owner=owners) for job in jobs]
    return View("\n".join(lines))


def mention(owner: Owner) -> str:
    """A mention of a job's owner in a group (it notifies them)."""
    return f'<a href="tg://user?id={owner.user_id}">{esc(owner.label)}</a>'


def for_owner(view: View, owner: Owner | None) -> View:
    """A job's message in a group, mentioning its owner first."""
    if owner is None:
        return view
    return View(f"{mention(owner)} {view.text}", view.buttons)


def links_lines(links: Sequence[Link]) -> list[str]:
    """One line per result link."""
    lines = []
    for link in links:
        size = f" ({_size(link.size)})" if link.size else ""
        if link.url.startswith(("http://", "https://")):
            lines.append(f'• <a href="{html.escape(link.url)}">{esc(link.label)}</a>{size}')
        else:
            lines.append(f"• {esc(link.label)}{size}: <code>{esc(link.url)}</code>")
    return lines


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def quality_lines(summary: str, quality: Quality | None) -> list[str]:
    """The held-out scores a job kept, one line per model and split, leaving out those its
    summary already says."""
    if quality is None:
        return []
    said = set(summary.splitlines())
    return [line for line in quality.lines() if line not in said]


def results_view(job: Job, quality: Quality | None = None) -> View:
    """/results: a job's summary, the held-out scores it kept, and links to its results."""
    if job.state is not JobState.SUCCEEDED and not job.links:
        return View(
            f"{job_title(job)} is {job.state.value}: it has no results"
            + (" yet." if job.active else ".")
        )
    lines = [f"<b>Results of {esc(job_title(job))}</b>"]
    if job.summary:
        lines.append(esc(job.summary))
    lines.extend(esc(line) for line in quality_lines(job.summary, quality))
    lines.extend(links_lines(job.links) or ["(no files were kept)"])
    return View("\n".join(lines))


def succeeded_view(job: Job, summary: str, links: list[Link]) -> View:
    """The message when a job finishes well."""
    lines = [f"✅ <b>{esc(job_title(job))}</b> finished in {_elapsed(job, time.time())}."]
    if summary:
        lines.append(esc(summary))
    if links:
        lines.append("Results:")
        lines.extend(links_lines(links))
    return View("\n".join(lines), job_buttons(job))


def failed_view(job: Job, reason: str, tail: list[str], step: str = "") -> View:
    """The message when a job fails: the reason and the last lines."""
    where = f" in step {esc(step)}" if step else ""
    lines = [f"❌ <b>{esc(job_title(job))}</b> failed{where}.", f"Reason: {esc(reason)}"]
    if tail:
        lines.append("Last lines of the log:")
        lines.append(pre(tail))
    return View("\n".join(lines), job_buttons(job))


def cancelled_view(job: Job) -> View:
    """The message when a job was cancelled."""
    return View(f"⏹ <b>{esc(job_title(job))}</b> was cancelled.", job_buttons(job))


def interrupted_view(job: Job) -> View:
    """The message when a running job stopped without ending (colabot stopped; its cluster
    lost it), with why."""
    why = esc(job.error) if job.error else "colabot stopped"
    text = f"⚠️ <b>{esc(job_title(job))}</b> was interrupted: {why}."
    if job.spec.action is Action.TRAIN:
        text += f" Send /resume {job.id} to continue from its last checkpoint."
    else:
        text += f" Send /resume {job.id} to run it again."
    return View(text, job_buttons(job))


def notice_view(job: Job | None, text: str) -> View:
    """A notice from a job (or the runtime)."""
    prefix = f"ℹ️ <b>{esc(job_title(job))}</b>: " if job else "ℹ️ "
    return View(prefix + esc(text))


def button_note(request: object) -> str:
    """The short answer a button press gets at once, before its work is done."""
    from bot.commands import (
        CancelDeclined,
        CancelRequest,
        ResumeRequest,
        StopEarlyDeclined,
        StopEarlyRequest,
    )

    if isinstance(request, CancelRequest) and request.confirmed:
        return f"cancelling #{request.job_id}…"
    if isinstance(request, StopEarlyRequest) and request.confirmed:
        return f"stopping #{request.job_id} early…"
    if isinstance(request, CancelDeclined | StopEarlyDeclined):
        return "kept"
    if isinstance(request, ResumeRequest):
        return f"resuming #{request.job_id}"
    return ""


def cancel_outcome(job: Job) -> str:
    """What a confirmed cancel did, for the confirmation message."""
    if job.state is JobState.CANCELLED:
        return f"Cancelled job #{job.id}."
    return f"Job #{job.id} is {job.state.value}: it ended before the cancel reached it."


def cancel_question(job: Job) -> View:
    """The confirmation asked before cancelling."""
    return View(
        f"Cancel <b>{esc(job_title(job))}</b> ({job.state.value})?",
        [
            [
                Button("Yes, cancel it", button_data(Verb.CANCEL_CONFIRMED, job.id)),
                Button("No, keep it", button_data(Verb.CANCEL_DECLINED, job.id)),
            ]
        ],
    )


def stop_early_question(job: Job) -> View:
    """The confirmation asked before a training is stopped early."""
    return View(
        f"Stop the training of <b>{esc(job_title(job))}</b> early and keep its model?\n"
        "Its best checkpoint is kept and the job goes on with what follows training "
        "(other models, inference), then succeeds. /cancel instead stops everything now "
        "and keeps nothing new.",
        [
            [
                Button("Yes, stop early", button_data(Verb.STOP_EARLY_CONFIRMED, job.id)),
                Button("No, keep training", button_data(Verb.STOP_EARLY_DECLINED, job.id)),
            ]
        ],
    )


def stop_early_outcome(job: Job, step: str, when: str) -> str:
    """What a confirmed stop-early did, for the confirmation message."""
    return f"Asked job #{job.id} to stop early: {step} ends {when}. The job then goes on."


def plot_caption(job: Job) -> str:
    """The caption of a /plot picture."""
    so_far = " so far" if job.state in (JobState.RUNNING, JobState.QUEUED) else ""
    return f"{job_title(job)}: loss{so_far} ({job.state.value})"


def usage_view(problem: str, usage: str) -> View:
    """A malformed command: what is wrong and the right form."""
    return View(f"⚠️ {esc(problem)}\nUsage: <code>{esc(usage)}</code>")


def error_view(problem: str) -> View:
    """A clear error for the chat (never a traceback)."""
    return View(f"⚠️ {esc(problem)}")


def help_view(
    topic: str, registry: KindRegistry, *, welcome: bool = False, companion: bool = False
) -> View:
    """/help, /help <command> or /help <kind> (``companion``: jobs start from the notebook,
    and the help says so)."""
    starts = ("train", "infer")
    if topic in USAGE:
        note = f"\n{esc(COMPANION_MODE)}" if companion and topic in starts else ""
        return View(f"<code>{esc(USAGE[topic])}</code>\n{esc(SUMMARY[topic])}{note}")
    if topic in registry.names():
        return View(kind_help(topic, registry))
    lines = []
    if topic:
        lines.append(f"⚠️ No help on {esc(topic)!r}. Here is everything:")
    if welcome:
        lines.append(
            "👋 colabot runs training and inference jobs on this machine's GPU, reports "
            "progress here, warns before the runtime is taken away and keeps results off it."
        )
    if companion:
        lines.append(esc(COMPANION_MODE))
    lines.append("<b>Commands</b>")
    shown = [n for n in USAGE if not (companion and n in starts)]
    lines.extend(f"<code>{esc(USAGE[n])}</code> {esc(SUMMARY[n])}" for n in shown)
    lines.append("<b>Job kinds</b>")
    lines.extend(f"<b>{esc(k.name)}</b>: {esc(k.summary)}" for k in registry.all())
    lines.append(
        "Inputs can be a path on this machine (inside the allowed folders), a file you send "
        "(with the command as its caption, or reply to it with the command), an http(s) URL "
        "or a Google Drive link. /help &lt;kind&gt; shows a kind's inputs and options."
    )
    return View("\n".join(lines))


def kind_help(name: str, registry: KindRegistry) -> str:
    """Inputs, parameters and notes of one job kind."""
    kind = registry.get(name)
    lines = [f"<b>{esc(name)}</b>: {esc(kind.summary)}"]
    for action in sorted(kind.actions, key=lambda a: a.value):
        slots = kind.inputs(action)
        params = kind.params(action)
        lines.append(f"<code>{esc(kind_usage(action, name, slots, params))}</code>")
        lines.extend(f"  {esc(s.name)}: {esc(s.help)}" for s in slots)
        lines.extend(f"  {esc(p)}: {esc(spec.help)}" for p, spec in params.items())
    notes = getattr(kind, "help_notes", "")
    if notes:
        lines.append(esc(notes))
    return "\n".join(lines)


def to_plain(text: str) -> str:
    """Telegram HTML -> plain text (for replies too long for one message, sent as a file)."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def fits(text: str, limit: int = MESSAGE_CHARS) -> bool:
    """Whether the text fits in one Telegram message."""
    return len(text) <= limit


def clock_time(timestamp: float) -> str:
    """``14:32 UTC``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M UTC")


def file_too_large_view(name: str, size: int, job: Job | None) -> View:
    """Instead of a file Telegram will not take: where to get it."""
    links = [link for link in (job.links if job else ()) if name in link.url or link.label in name]
    text = (
        f"{esc(name)} ({_size(size)}) is too large to send in the chat (bots may send files "
        "up to 50 MB)."
    )
    if links:
        text += " It is here:\n" + "\n".join(links_lines(links))
    elif job is not None:
        text += f" /results {job.id} lists where it was saved."
    return View(text)


VIDEO_NOTE = (
    "Telegram re-encodes clips sent as a video, which changes their frames. To keep the "
    'original frames, send the file with 📎 → File ("send as file") instead.'
)

"""Pure views of the runtime: /runtime, the warnings before the runtime is taken away, the
keepalive message, lost jobs, and the heartbeat's notes (low disk, long jobs, cluster limits,
an idle runtime)."""

from __future__ import annotations

import time
from pathlib import Path

from bot.commands import Verb, button_data, release_data
from bot.runtime import MachineFacts, RuntimeClock
from bot.schedule import finish_verdict
from bot.views import Button, View, clock_time, esc, job_title
from workers.executors.base import format_seconds
from workers.jobs import Action, CheckpointNote, Job


def runtime_view(
    facts: MachineFacts,
    clock: RuntimeClock,
    now: float | None = None,
    cluster: list[str] | None = None,
) -> View:
    """/runtime: the machine's resources and the runtime's age and time left; with a
    cluster executor, the cluster's nodes and GPUs first."""
    now = time.time() if now is None else now
    lines = ["<b>Runtime</b>" + (" (Google Colab)" if facts.is_colab else "")]
    if cluster:
        lines.append("Jobs run on: " + esc(cluster[0]))
        lines.extend(esc(line) for line in cluster[1:])
        lines.append("This machine (the bot's):")
    if facts.gpus:
        for gpu in facts.gpus:
            util = f", {gpu.utilization_pct:.0f}% busy" if gpu.utilization_pct is not None else ""
            lines.append(
                f"GPU: {esc(gpu.name)}, {gpu.memory_used_mb / 1024:.1f} of "
                f"{gpu.memory_total_mb / 1024:.1f} GB used{util}"
            )
    else:
        lines.append(f"GPU: none ({esc(facts.gpu_note)})")
    lines.append(f"CPU: {facts.cpu_count} cores, {facts.cpu_percent:.0f}% busy")
    lines.append(f"RAM: {facts.ram_used_gb:.1f} of {facts.ram_total_gb:.1f} GB used")
    lines.append(f"Disk: {facts.disk_free_gb:.1f} of {facts.disk_total_gb:.1f} GB free")
    lines.append(
        f"Age: {format_seconds(clock.age(now))} (since {esc(clock.source)}); "
        f"time left: {format_seconds(clock.left(now))} of {clock.max_seconds / 3600:g} h"
    )
    if clock.note:
        lines.append(f"note: {esc(clock.note)}")
    return View("\n".join(lines))


def _job_progress_words(job: Job) -> str:
    progress = job.progress
    if progress.message:
        return progress.message
    if progress.fraction is not None:
        return f"{progress.fraction:.0%}"
    return "starting"


def warning_view(
    minutes: int,
    clock: RuntimeClock,
    now: float,
    running: list[Job],
    queued: list[Job],
    saved: dict[int, CheckpointNote | None],
    results_backend: str,
) -> View:
    """A runtime limit warning: what runs, whether it will finish, what is saved."""
    left = clock.left(now)
    lines = [
        f"⏰ <b>About {format_seconds(left)} left on this runtime</b> "
        f"(warning {minutes} min before its {clock.max_seconds / 3600:g} h limit, "
        f"expected end {clock_time(clock.deadline)})."
    ]
    if running:
        lines.append("Running:")
        for job in running:
            eta = job.progress.eta_s
            eta_text = f", ETA {format_seconds(eta)}" if eta is not None else ""
            verdict = finish_verdict(eta, left)
            lines.append(
                f"• {esc(job_title(job))}: {esc(_job_progress_words(job))}{eta_text}: {verdict}"
            )
    else:
        lines.append("No job is running.")
    if queued:
        ids = ", ".join(f"#{j.id}" for j in queued)
        lines.append(f"Waiting: {ids}; they may not get to run before the end.")
    saved_lines = []
    for job in running:
        note = saved.get(job.id)
        if note is not None:
            saved_lines.append(
                f"• {esc(job_title(job))}: checkpoint at {esc(note.progress or 'unknown point')}"
                f", saved {clock_time(note.saved_at)}"
            )
        else:
            saved_lines.append(f"• {esc(job_title(job))}: no checkpoint saved yet")
    if saved_lines:
        lines.append(f"Saved to {esc(results_backend)}:")
        lines.extend(saved_lines)
    lines.append(
        "Finished results are already saved. After the runtime ends, start colabot on a new "
        "one with the same results settings and /resume what was lost."
    )
    return View("\n".join(lines))


def keepalive_view(
    clock: RuntimeClock,
    now: float,
    running: list[Job],
    queued: list[Job],
    facts: MachineFacts,
) -> View:
    """The compact heartbeat message, edited in place while jobs run or wait."""
    lines = [
        f"💓 <b>colabot</b> · runtime {format_seconds(clock.age(now))} old, "
        f"{format_seconds(clock.left(now))} left · updated {clock_time(now)}"
    ]
    for job in running:
        eta = job.progress.eta_s
        eta_text = f" · ETA {format_seconds(eta)}" if eta is not None else ""
        lines.append(f"▶️ {esc(job_title(job))} · {esc(_job_progress_words(job))}{eta_text}")
    if queued:
        lines.append(f"⏳ waiting: {', '.join(f'#{j.id}' for j in queued)}")
    for gpu in facts.gpus:
        util = f"{gpu.utilization_pct:.0f}% busy, " if gpu.utilization_pct is not None else ""
        lines.append(
            f"GPU {esc(gpu.name)}: {util}{gpu.memory_used_mb / 1024:.1f}/"
            f"{gpu.memory_total_mb / 1024:.1f} GB"
        )
    lines.append(f"disk: {facts.disk_free_gb:.1f} GB free")
    return View("\n".join(lines))


def lost_job_view(job: Job, stopped_at: float, note: CheckpointNote | None) -> View:
    """A job the previous runtime lost, with a button to resume it."""
    where = _job_progress_words(job)
    text = (
        f"⚠️ The previous runtime stopped at {clock_time(stopped_at)} while "
        f"<b>{esc(job_title(job))}</b> was at {esc(where)}; "
    )
    if note is not None:
        text += (
            f"newest saved checkpoint from {esc(note.progress or 'an unknown point')} "
            f"(saved {clock_time(note.saved_at)})."
        )
    elif job.spec.action is Action.TRAIN:
        text += "no checkpoint was saved, so it would start from the beginning."
    else:
        text += "it can be run again."
    return View(text, [[Button(f"Resume #{job.id}", button_data(Verb.RESUME, job.id))]])


def low_disk_text(free_mb: float, folder: Path, min_free_mb: float) -> str:
    """The warning when the data folder runs short of space."""
    return (
        f"Disk space is low: {free_mb:.0f} MB free in {folder} (worker.min_free_disk_mb is "
        f"{min_free_mb:g}). New jobs are refused until there is more room; running jobs go on."
    )


def long_job_text(estimate_s: float, left_s: float) -> str:
    """The warning given at submit when a job will likely outlast the runtime."""
    return (
        f"This job will probably take about {format_seconds(estimate_s)}, but the runtime has "
        f"only {format_seconds(left_s)} left. Checkpoints are saved off the machine as it "
        "goes, so /resume can continue it on the next runtime."
    )


def cluster_limit_text(
    cluster: str, left_s: float, eta_s: float | None, saved: CheckpointNote | None
) -> str:
    """The warning (a notice about one job) for a step whose cluster time limit will end
    it."""
    if eta_s is not None and eta_s > left_s:
        verdict = (
            f"needs about {format_seconds(eta_s)} more, but its {cluster} time limit ends it in "
            f"{format_seconds(left_s)}: it will NOT finish in time"
        )
    else:
        verdict = f"its {cluster} time limit ends it in {format_seconds(left_s)}"
    kept = (
        f" Its checkpoint at {saved.progress or 'an unknown point'} was saved "
        f"{clock_time(saved.saved_at)}."
        if saved
        else ""
    )
    return (
        f"⏰ {verdict[0].upper()}{verdict[1:]}.{kept} Checkpoints are copied off as it goes; "
        "/resume continues it after the limit (a longer slurm.time_limit gives it more time)."
    )


def idle_offer_view(idle_minutes: float, colab: bool) -> View:
    """The offer to release an idle runtime."""
    where = (
        "Release the Colab runtime now to save your compute units?"
        if colab
        else "This machine is not a Colab runtime; colabot will only remind you to stop it."
    )
    return View(
        f"💤 No job has run or waited for {idle_minutes:g} minutes. {where}",
        [[Button("Release runtime", release_data(True)), Button("Keep it", release_data(False))]],
    )

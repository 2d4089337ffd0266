"""How soon a SLEAP training shows in the chat: ``/train sleap example`` end to end.

Runs colabot in this process against the Bot API emulator (as the tests do) and sends
``/train sleap example`` N times, one after another. For each run it prints the time from the
chat message to the "finished" reply, and from the message to the first status edit that
shows training progress. Every status edit is matched with the progress it shows; the time
from that progress arriving (a training step ending, for step-level progress; an epoch row
read from training_log.csv, for epoch-level) to the first edit that shows it reaching the
chat is the latency printed, median and p90, for training steps; and, since edits are paced
(a few seconds apart), for every training step passed on, the time until the status message
shows it or a newer one.

    python -m bench.sleap_live [--runs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import Config, HeartbeatConfig, ResultsConfig, TelegramConfig, WorkerConfig
from bot.service import Colabot
from emulator import DEFAULT_USER_ID, BotApiEmulator, BotEvent
from workers.jobs import Progress

# Progress of a training step (as opposed to an epoch row, a prediction, an upload).
TRAINING_STEP = " · step "


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of the values fall."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def is_finished(job_id: int, event: BotEvent) -> bool:
    """Whether ``event`` is the message that says the job finished."""
    return event.kind == "message" and f"#{job_id} sleap train finished" in (event.text or "")


@dataclass
class RunResult:
    """One run's figures (seconds)."""

    total: float
    first: float | None
    latencies: list[float] = field(default_factory=list)
    caught_up: list[float] = field(default_factory=list)


async def one_run(emu: BotApiEmulator, colabot: Colabot, job_id: int) -> RunResult:
    """One ``/train sleap example``: timings and the latency of each progress edit."""
    assert colabot.engine is not None
    arrived: dict[str, float] = {}

    def record(seen_job: int, progress: Progress) -> None:
        if seen_job == job_id and progress.message:
            arrived.setdefault(html.escape(progress.message, quote=False), progress.updated_at)

    colabot.engine.on_progress(record)
    sent_at = time.time()
    await emu.send_text("/train sleap example", user_id=DEFAULT_USER_ID)
    await emu.wait_for(lambda e: is_finished(job_id, e), timeout=900)
    total = time.time() - sent_at
    latencies: list[float] = []
    first_shown: float | None = None
    shown: set[str] = set()
    edits: list[tuple[float, float]] = []  # (edit time, arrival of the newest progress shown)
    for event in emu.events:
        text = event.text or ""
        if event.kind != "edit" or event.time < sent_at or f"#{job_id} " not in text:
            continue
        if "running for" not in text:
            continue  # the job's end: it shows the last progress, long after it came
        showing = [at for message, at in arrived.items() if message in text]
        if showing:
            edits.append((event.time, max(showing)))
        for message, at in arrived.items():
            if message in text and message not in shown:
                # The first edit that shows this progress; later ones only repeat it.
                shown.add(message)
                if first_shown is None:
                    first_shown = event.time - sent_at
                if TRAINING_STEP in message:
                    latencies.append(event.time - at)
    # Every training step passed on, whether or not an edit showed it: how long until the
    # status message showed it or a newer one (edits are paced, so most are superseded).
    caught_up = []
    for message, at in arrived.items():
        if TRAINING_STEP in message:
            later = [when for when, newest in edits if newest >= at and when >= at]
            if later:
                caught_up.append(min(later) - at)
    return RunResult(total, first_shown, latencies, caught_up)


async def main(runs: int) -> None:
    """Run the example ``runs`` times and print the figures."""
    with tempfile.TemporaryDirectory(prefix="colabot-bench-") as tmp:
        home = Path(tmp)
        emu = BotApiEmulator(home / "telegram")
        await emu.start()
        emu.add_chat(DEFAULT_USER_ID, first_name="Bench")
        config = Config(
            telegram=TelegramConfig(
                token=emu.token, api_url=emu.url, allowed_users=(DEFAULT_USER_ID,)
            ),
            worker=WorkerConfig(data_dir=home / "data"),
            results=ResultsConfig(dir=home / "results"),
            heartbeat=HeartbeatConfig(interval_minutes=0),
        )
        colabot = Colabot(config)
        await colabot.start()
        results = []
        try:
            for job_id in range(1, runs + 1):
                result = await one_run(emu, colabot, job_id)
                results.append(result)
                print(
                    f"run {job_id}: chat -> finished {result.total:.1f} s, first progress "
                    f"shown after {result.first or 0:.1f} s, {len(result.latencies)} "
                    "progress edits",
                    flush=True,
                )
        finally:
            await colabot.stop()
            await emu.stop()
    totals = [r.total for r in results]
    firsts = [r.first for r in results if r.first is not None]
    latencies = [x for r in results for x in r.latencies]
    caught_up = [x for r in results for x in r.caught_up]
    print(f"/train sleap example, chat -> finished reply: median {statistics.median(totals):.1f} s")
    if firsts:
        first = statistics.median(firsts)
        print(f"chat -> first progress in the status message: median {first:.1f} s")
    if latencies:
        print(
            f"progress arriving -> status edit in the chat ({len(latencies)} edits): "
            f"median {statistics.median(latencies) * 1000:.0f} ms, "
            f"p90 {percentile(latencies, 0.9) * 1000:.0f} ms"
        )
    if caught_up:
        print(
            f"training step passed on -> the status shows it or a newer one ({len(caught_up)} "
            f"steps): median {statistics.median(caught_up) * 1000:.0f} ms, "
            f"p90 {percentile(caught_up, 0.9) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    asyncio.run(main(parser.parse_args().runs))

"""Chat latency, bot memory and import time, against the Bot API emulator.

Starts ``colabot run`` as its own process pointed at an emulator in this process, and beside
it a bare python-telegram-bot echo bot (:mod:`bench.echo_bot`: the same ``AIORateLimiter``)
pointed at a second emulator. Commands go at a human pace (one every ``--pace-ms``, 100 ms
by default), alternating between the two bots so that both meet the same machine: colabot
gets /jobs and /status 1, the echo bot the same texts. They come from ten people in turn
(all of them colabot's admins, so that /status 1 shows the job to each): one person's chat
gets a command every 2 s, under Telegram's limit of about one message a second in a
private chat, which colabot keeps and the emulator enforces. Each is timed until the bot's
reply arrives: once idle, once while a colabot job floods its output. Also prints the bot
process's idle RSS and the import time of ``bot``.

Targets: colabot's p99 at most 1.3x the echo bot's idle and 1.5x while flooding; idle RSS
under 150 MB; import under 1.5 s with torch and spaCy never imported.

    python -m bench.chat_latency [--commands 500] [--pace-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psutil

from bench.colabot_process import colabot_env
from bench.echo_bot import start as start_echo_bot
from emulator import DEFAULT_USER_ID, BotApiEmulator, BotEvent

PEOPLE = tuple(DEFAULT_USER_ID + index for index in range(10))
"""Who sends the commands, in turn."""


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of the values fall."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def replies_to(message_id: int, event: BotEvent) -> bool:
    """Whether ``event`` is the bot's reply to message ``message_id``."""
    replied = (event.message or {}).get("reply_to_message") or {}
    return bool(replied.get("message_id") == message_id)


async def round_trip(emu: BotApiEmulator, text: str, user: int = DEFAULT_USER_ID) -> float:
    """Milliseconds from ``user`` sending ``text`` to the bot's reply to it."""
    started = time.perf_counter()
    sent = await emu.send_text(text, user_id=user)
    await emu.wait_for(
        partial(replies_to, sent["message_id"]), kind="message", chat_id=user, timeout=30
    )
    return (time.perf_counter() - started) * 1000


async def round_trips(
    colabot: BotApiEmulator,
    echo: BotApiEmulator,
    count: int,
    pace_s: float,
    while_: Callable[[], bool] = lambda: True,
) -> tuple[list[float], list[float]]:
    """Round trips to colabot and to the echo bot, in turn, one command every ``pace_s``,
    ``count`` of each at most, while ``while_()`` holds; the people take turns."""
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(count):
        if not while_():
            break
        text = "/jobs" if i % 2 else "/status 1"
        person = PEOPLE[i % len(PEOPLE)]
        for emu, times in ((colabot, ours), (echo, theirs)):
            started = time.perf_counter()
            times.append(await round_trip(emu, text, person))
            # A human pace: the next command waits for the rest of the interval.
            await asyncio.sleep(max(0.0, pace_s - (time.perf_counter() - started)))
    return ours, theirs


def line(name: str, values: list[float]) -> str:
    """p50 and p99 of a series."""
    return (
        f"{name:<26} p50 {statistics.median(values):7.1f} ms   "
        f"p99 {percentile(values, 0.99):7.1f} ms   max {max(values):7.1f} ms  (n={len(values)})"
    )


def ratio(ours: list[float], theirs: list[float]) -> str:
    """colabot's p50 and p99 as multiples of the echo bot's."""
    p50 = statistics.median(ours) / statistics.median(theirs)
    p99 = percentile(ours, 0.99) / percentile(theirs, 0.99)
    return f"{'colabot / echo bot':<26} p50 {p50:6.2f}x     p99 {p99:6.2f}x"


def import_time() -> tuple[float, str]:
    """Seconds to import the bot's modules in a fresh interpreter, and heavy modules seen."""
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "import bot.service, bot.handlers, bot.cli\n"
        "dt = time.perf_counter() - t\n"
        "heavy = [m for m in ('torch', 'spacy', 'sleap_nn', 'sleap_io') if m in sys.modules]\n"
        "print(dt, ','.join(heavy) or 'none')\n"
    )
    runs = []
    heavy = ""
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        runs.append(float(out[0]))
        heavy = out[1]
    return statistics.median(runs), heavy


async def main_async(commands: int, flood_mb: int, pace_ms: float) -> None:
    """Run the measurements and print them."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        emu = BotApiEmulator(home / "telegram")
        echo_emu = BotApiEmulator(home / "echo-telegram")
        for server in (emu, echo_emu):
            await server.start()
            for person in PEOPLE:
                server.add_chat(person)
        people = ",".join(str(person) for person in PEOPLE)
        env = colabot_env(
            home,
            emu.url,
            emu.token,
            COLABOT_WORKER_MAX_PARALLEL_JOBS="2",
            COLABOT_TELEGRAM_ALLOWED_USERS=people,
            COLABOT_TELEGRAM_ADMINS=people,
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        echo = start_echo_bot(echo_emu.url, echo_emu.token, env)
        pace = pace_ms / 1000
        try:
            await emu.wait_until_polling(timeout=60)
            await echo_emu.wait_until_polling(timeout=60)
            await emu.send_text("/train selftest steps=1 delay=0", user_id=DEFAULT_USER_ID)
            await emu.wait_for(lambda e: "finished" in (e.text or ""), timeout=60)
            idle, echo_idle = await round_trips(emu, echo_emu, commands, pace)
            rss_idle = psutil.Process(proc.pid).memory_info().rss / 1024**2
            await emu.send_text(
                f"/train selftest steps=1 delay=0 flood_mb={flood_mb}", user_id=DEFAULT_USER_ID
            )
            await emu.wait_for(lambda e: "#2 selftest" in (e.text or ""), timeout=60)

            def flooding_on() -> bool:
                return not any("#2 selftest train finished" in (e.text or "") for e in emu.events)

            flooding, echo_flooding = await round_trips(
                emu, echo_emu, commands, pace, while_=flooding_on
            )
            still_flooding = flooding_on()
            rss_after = psutil.Process(proc.pid).memory_info().rss / 1024**2
            refused = (len(emu.flood_refusals), len(echo_emu.flood_refusals))
        finally:
            for process in (proc, echo):
                process.send_signal(signal.SIGINT)
            for process in (proc, echo):
                # In a thread: the emulator it is talking to runs on this event loop.
                await asyncio.to_thread(process.wait, 60)
            await emu.stop()
            await echo_emu.stop()
    seconds, heavy = import_time()
    print(
        f"chat latency over {commands} commands each, one every {pace_ms:g} ms from "
        f"{len(PEOPLE)} people in turn, through the emulator (target: colabot's p99 <= 1.3x "
        "the echo bot's idle, <= 1.5x flooding)"
    )
    print(line("echo bot, idle", echo_idle))
    print(line("colabot, idle", idle))
    print(ratio(idle, echo_idle))
    print(line("echo bot, colabot flooding", echo_flooding))
    print(line("colabot, a job flooding", flooding) + ("" if still_flooding else "  (flood ended)"))
    print(ratio(flooding, echo_flooding))
    print(
        f"calls over Telegram's limits (429)  colabot {refused[0]}, echo bot {refused[1]}"
        " (target: none)"
    )
    print(
        f"bot process RSS        idle {rss_idle:.1f} MB, after the flood {rss_after:.1f} MB"
        " (target < 150 MB)"
    )
    print(
        f"import of bot          {seconds:.2f} s (median of 5; target < 1.5 s); "
        f"heavy modules imported: {heavy}"
    )


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--flood-mb", type=int, default=6000)
    parser.add_argument("--pace-ms", type=float, default=100.0)
    args = parser.parse_args()
    asyncio.run(main_async(args.commands, args.flood_mb, args.pace_ms))


if __name__ == "__main__":
    main()

"""A tiny SLEAP training through colabot versus the same sleap-nn command run directly.

Starts ``colabot run`` as its own process against a Bot API emulator in this process, writes
tiny synthetic SLEAP data, and runs N interleaved pairs (the order alternates): ``/train
sleap`` through the chat, and the job's own ``sleap-nn train`` command (same config, same
environment, output to a log file) run directly. The bot process is watched from outside with
psutil every 20 ms: its RSS, and each job step as a child process (first seen to gone). Prints the
medians, the wall-time ratio of the training step (target < 1.05), the whole job from the
chat message to the reply (which adds the checks before training and the loss curve after),
and the bot process's peak RSS.

    python -m bench.sleap_overhead [--pairs 5] [--epochs 3] [--steps 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.colabot_process import colabot_env
from emulator import DEFAULT_USER_ID, BotApiEmulator
from workers.kinds.sleap.kind import STEP_ENV

SAMPLE_S = 0.02


@dataclass
class Watcher:
    """Samples the bot process: peak RSS and the lifetime of each child process."""

    pid: int
    peak_rss: int = 0
    first_rss: int = 0
    started: dict[int, tuple[float, str]] = field(default_factory=dict)
    ended: dict[int, float] = field(default_factory=dict)

    def sample(self) -> None:
        """One look at the bot process and its children."""
        bot = psutil.Process(self.pid)
        self.peak_rss = max(self.peak_rss, bot.memory_info().rss)
        alive = set()
        for child in bot.children():
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
                if child.pid not in self.started:
                    # First seen, not create_time(): that one is only as exact as the boot
                    # time the kernel reports (whole seconds).
                    self.started[child.pid] = (time.time(), " ".join(child.cmdline()))
            except psutil.Error:
                continue
            alive.add(child.pid)
        now = time.time()
        for pid in self.started:
            if pid not in alive and pid not in self.ended:
                self.ended[pid] = now

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_S)

    def steps_since(self, since: float) -> list[tuple[str, float]]:
        """(command, seconds) of the children that started after ``since`` and ended."""
        found = []
        for pid, (created, command) in sorted(self.started.items(), key=lambda i: i[1][0]):
            if created >= since and pid in self.ended:
                found.append((command, self.ended[pid] - created))
        return found


def step_kind(command: str) -> str:
    """``train``, ``prepare``, ``finish training`` ... from a step's command line."""
    if "sleap_nn.cli train" in command or "sleap-nn train" in command:
        return "train"
    if "workers.kinds.sleap.tools " in command:
        return command.split("workers.kinds.sleap.tools ", 1)[1].split()[0]
    return "other"


async def through_colabot(
    emu: BotApiEmulator, watcher: Watcher, job_id: int, command: str
) -> tuple[float, dict[str, float]]:
    """Send the command; return the seconds to the reply and each step's seconds."""
    started = time.time()
    await emu.send_text(command, user_id=DEFAULT_USER_ID)
    done = await emu.wait_for(
        lambda e: (
            f"#{job_id} sleap train finished" in (e.text or "")
            or f"#{job_id} sleap train failed" in (e.text or "")
        ),
        timeout=600,
    )
    total = time.time() - started
    if "failed" in (done.text or ""):
        raise RuntimeError(f"job {job_id} failed: {done.text}")
    await asyncio.sleep(SAMPLE_S * 3)
    steps: dict[str, float] = {}
    for step, seconds in watcher.steps_since(started):
        kind = step_kind(step)
        steps[kind] = steps.get(kind, 0.0) + seconds
    return total, steps


def direct_config(job_config: Path, dest: Path) -> Path:
    """The job's training config, writing its run folder under ``dest`` instead."""
    text = job_config.read_text()
    lines = []
    for line in text.splitlines():
        if line.strip().startswith("ckpt_dir:"):
            indent = line[: len(line) - len(line.lstrip())]
            line = f"{indent}ckpt_dir: {dest}"
        lines.append(line)
    path = dest / job_config.name
    dest.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def run_direct(config: Path, log: Path, cwd: Path) -> float:
    """Seconds for ``sleap-nn train`` run directly, output to a log like colabot's."""
    env = {**os.environ, **STEP_ENV}
    argv = [sys.executable, "-m", "sleap_nn.cli", "train", str(config)]
    started = time.perf_counter()
    with log.open("wb") as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, check=True)
    return time.perf_counter() - started


def make_data(folder: Path) -> Path:
    """Tiny SLEAP data; returns the labels file with its video beside it."""
    argv = [sys.executable, "-m", "workers.kinds.sleap.tools", "make-data", str(folder)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    paths = dict(line.split(": ", 1) for line in out.splitlines())
    return Path(paths["slp_mp4"])


def start_colabot(home: Path, emu: BotApiEmulator, inputs: Path) -> subprocess.Popen[bytes]:
    """``colabot run`` as its own process, pointed at the emulator."""
    env = colabot_env(home, emu.url, emu.token, COLABOT_WORKER_INPUT_ROOTS=str(inputs))
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run"],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@dataclass
class Figures:
    """What the pairs measured."""

    direct: list[float] = field(default_factory=list)
    train_step: list[float] = field(default_factory=list)
    job: list[float] = field(default_factory=list)
    steps: list[dict[str, float]] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    first_rss_mb: float = 0.0


async def measure(pairs: int, epochs: int, steps: int) -> Figures:
    """Run a warm-up job, then the interleaved pairs."""
    figures = Figures()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        labels = make_data(home / "inputs")
        emu = BotApiEmulator(home / "telegram")
        await emu.start()
        emu.add_chat(DEFAULT_USER_ID)
        proc = start_colabot(home, emu, home / "inputs")
        watcher = Watcher(proc.pid)
        sampler = asyncio.create_task(watcher.run())
        command = (
            f"/train sleap {labels} epochs={epochs} steps_per_epoch={steps} batch=4 "
            "model_config.backbone_config.unet.filters=8"
        )
        try:
            await emu.wait_until_polling(timeout=60)
            watcher.first_rss = psutil.Process(proc.pid).memory_info().rss
            await through_colabot(emu, watcher, 1, command)
            job_config = next((home / "data" / "jobs" / "1" / "work" / "configs").glob("*.yaml"))
            cwd = home / "data" / "jobs" / "1" / "work"
            for i in range(pairs):
                config = direct_config(job_config, home / "direct" / str(i))
                order = ("direct", "colabot") if i % 2 == 0 else ("colabot", "direct")
                for which in order:
                    if which == "direct":
                        log = home / "direct" / f"{i}.log"
                        figures.direct.append(await asyncio.to_thread(run_direct, config, log, cwd))
                    else:
                        total, found = await through_colabot(emu, watcher, i + 2, command)
                        figures.job.append(total)
                        figures.steps.append(found)
                        figures.train_step.append(found["train"])
        finally:
            sampler.cancel()
            proc.send_signal(signal.SIGINT)
            # In a thread: the emulator it is talking to runs on this event loop.
            await asyncio.to_thread(proc.wait, 60)
            await emu.stop()
        figures.peak_rss_mb = watcher.peak_rss / 1024**2
        figures.first_rss_mb = watcher.first_rss / 1024**2
    return figures


def report(figures: Figures, epochs: int, steps: int) -> None:
    """Print the figures."""
    pairs = len(figures.direct)
    ratios = [c / d for c, d in zip(figures.train_step, figures.direct, strict=True)]
    print(
        f"SLEAP training through colabot vs directly: {pairs} interleaved pairs, "
        f"{epochs} epochs x {steps} steps, 96x96 frames, CPU (target: ratio < 1.05)"
    )
    print(f"direct sleap-nn train          median {statistics.median(figures.direct):6.2f} s")
    print(f"colabot training step          median {statistics.median(figures.train_step):6.2f} s")
    print(
        f"ratio colabot / direct         median {statistics.median(ratios):6.3f}  "
        f"(pairs: {', '.join(f'{r:.3f}' for r in ratios)})"
    )
    names = ["prepare", "train", "finish-training"]
    parts = ", ".join(
        f"{name} {statistics.median(s.get(name, 0.0) for s in figures.steps):.2f} s"
        for name in names
    )
    print(
        f"colabot whole job, chat->reply median {statistics.median(figures.job):6.2f} s ({parts})"
    )
    print(
        f"bot process RSS                peak {figures.peak_rss_mb:.1f} MB "
        f"(idle before the jobs {figures.first_rss_mb:.1f} MB)"
    )


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.pairs, args.epochs, args.steps))
    report(figures, args.epochs, args.steps)


if __name__ == "__main__":
    main()

"""What colabot adds to a spaCy training run, against the same ``spacy train`` run directly.

Starts ``colabot run`` as its own process pointed at a Bot API emulator in this process, then
times, in interleaved rounds (the order rotates each round): a /train spacy job from the chat
message to the bot's "finished" message, and the same training command run directly, once as
``python -m spacy train`` and once with PyTorch kept out as colabot does. Prints the medians,
the wall-time ratios (target: colabot / direct < 1.05) and the bot process's peak RSS.

    python -m bench.spacy_overhead [--rounds 5] [--steps 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench.colabot_process import colabot_env
from emulator import DEFAULT_USER_ID, BotApiEmulator
from workers.inputs.archives import zip_folder
from workers.kinds.plans import REQUEST, write_json
from workers.kinds.spacy.plan import Request
from workers.kinds.spacy.tools.example import write_corpus


def write_bench_corpus(dest: Path, steps: int) -> dict[str, Path]:
    """A small NER corpus and a blank-English config that trains it for ``steps`` steps."""
    write_corpus(
        dest, sizes=(200, 50), pipeline=["ner"], max_steps=steps, eval_frequency=max(1, steps // 4)
    )
    return {
        name: dest / f"{name}.{ext}"
        for name, ext in (("config", "cfg"), ("train", "spacy"), ("dev", "spacy"))
    }


class PeakRss:
    """Polls a process's resident memory in a thread and keeps the highest value."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def direct_argv(files: dict[str, Path], output: Path, *, block_torch: bool) -> list[str]:
    """The training command, as a person would type it (or with PyTorch kept out)."""
    tools = ["-m", "workers.kinds.spacy.tools", "spacy", "--no-torch"]
    runner = tools if block_torch else ["-m", "spacy"]
    return [
        sys.executable,
        *runner,
        "train",
        str(files["config"]),
        "--output",
        str(output),
        "--paths.train",
        str(files["train"]),
        "--paths.dev",
        str(files["dev"]),
        "--gpu-id",
        "-1",
    ]


def run_direct(files: dict[str, Path], output: Path, *, block_torch: bool) -> float:
    """Seconds for one direct training run."""
    shutil.rmtree(output, ignore_errors=True)
    env = {**os.environ, "SPACY_CONFIG_OVERRIDES": ""}
    started = time.perf_counter()
    subprocess.run(
        direct_argv(files, output, block_torch=block_torch),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    return time.perf_counter() - started


async def run_colabot(emu: BotApiEmulator, files: dict[str, Path], job_id: int) -> float:
    """Seconds from the /train message to the bot's "finished" message."""
    command = f"/train spacy {files['config']} train={files['train']} dev={files['dev']} gpu=cpu"
    started = time.perf_counter()
    await emu.send_text(command, user_id=DEFAULT_USER_ID)
    done = await emu.wait_for(
        lambda e: (
            f"#{job_id} spacy train" in (e.text or "")
            and ("finished" in (e.text or "") or "failed" in (e.text or ""))
        ),
        kind="message",
        timeout=600,
    )
    if "failed" in (done.text or ""):
        raise RuntimeError(done.text)
    return time.perf_counter() - started


async def measure(rounds: int, steps: int) -> None:
    """Run the rounds and print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        files = write_bench_corpus(home / "corpus", steps)
        emu = BotApiEmulator(home / "telegram")
        await emu.start()
        emu.add_chat(DEFAULT_USER_ID)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            env=colabot_env(home, emu.url, emu.token, COLABOT_WORKER_INPUT_ROOTS=str(home)),
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        times: dict[str, list[float]] = {"colabot": [], "direct": [], "direct_no_torch": []}
        job_id = 0
        try:
            await emu.wait_until_polling(timeout=60)
            job_id += 1
            await run_colabot(emu, files, job_id)  # warm-up: caches, bytecode
            run_direct(files, home / "direct", block_torch=False)
            with PeakRss(proc.pid) as rss:
                names = list(times)
                for index in range(rounds):
                    for name in names[index % 3 :] + names[: index % 3]:
                        if name == "colabot":
                            job_id += 1
                            times[name].append(await run_colabot(emu, files, job_id))
                        else:
                            times[name].append(
                                await asyncio.to_thread(
                                    run_direct,
                                    files,
                                    home / name,
                                    block_torch=name == "direct_no_torch",
                                )
                            )
            parts = overhead_parts(files, home, home / "data" / "jobs" / str(job_id))
        finally:
            proc.send_signal(signal.SIGINT)
            # In a thread: the emulator it is talking to runs on this event loop.
            await asyncio.to_thread(proc.wait, 60)
            await emu.stop()
    report(times, rss.peak, steps, parts)


def overhead_parts(files: dict[str, Path], home: Path, job: Path) -> dict[str, float]:
    """Medians of the two known extra costs, measured on their own: the prepare step, and
    packing model-best and model-last for the results backend."""
    work = home / "work"
    request = Request(
        action="train",
        work=str(work),
        outputs=str(home / "out"),
        gpu="cpu",
        config=str(files["config"]),
        train=str(files["train"]),
        dev=str(files["dev"]),
    )
    write_json(work / REQUEST, request)
    prepare = [sys.executable, "-m", "workers.kinds.spacy.tools", "prepare", str(work)]
    prepare_s, pack_s = [], []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(prepare, check=True, stdout=subprocess.DEVNULL)
        prepare_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        for name in ("model-best", "model-last"):
            zip_folder(job / "outputs" / "training" / name, home / "pack" / f"{name}.zip")
        pack_s.append(time.perf_counter() - started)
    return {"prepare": statistics.median(prepare_s), "pack": statistics.median(pack_s)}


def report(
    times: dict[str, list[float]], peak_rss: int, steps: int, parts: dict[str, float]
) -> None:
    """Print medians, ratios and the bot's peak memory."""
    median = {name: statistics.median(values) for name, values in times.items()}
    rounds = len(times["colabot"])
    print(f"spaCy training overhead: blank English NER, {steps} steps, CPU, {rounds} rounds")
    for name, label in (
        ("colabot", "colabot (chat → finished)"),
        ("direct", "python -m spacy train"),
        ("direct_no_torch", "same, PyTorch kept out"),
    ):
        runs = " ".join(f"{v:5.2f}" for v in times[name])
        print(f"{label:<28} median {median[name]:6.2f} s   runs: {runs}")
    print(
        "colabot keeps PyTorch out of this training (the config needs none); the plain "
        "command imports it."
    )
    print(
        f"ratio colabot / python -m spacy train      {median['colabot'] / median['direct']:.3f}"
        "  (target < 1.05)"
    )
    like = median["colabot"] / median["direct_no_torch"]
    print(f"ratio colabot / same without PyTorch       {like:.3f}  (like for like)")
    pairs = [c / d for c, d in zip(times["colabot"], times["direct_no_torch"], strict=True)]
    print(f"like-for-like ratio per round              {' '.join(f'{p:.3f}' for p in pairs)}")
    gap = median["colabot"] - median["direct_no_torch"]
    print(
        f"like-for-like gap {gap:.2f} s; measured alone: prepare step {parts['prepare']:.2f} s, "
        f"packing model-best + model-last for the results {parts['pack']:.2f} s"
    )
    print(f"bot process peak RSS during the rounds     {peak_rss / 1024**2:.1f} MB")


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(measure(args.rounds, args.steps))


if __name__ == "__main__":
    main()

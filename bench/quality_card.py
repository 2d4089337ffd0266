"""What telling a researcher how good the model is costs a tiny SLEAP job, on this CPU.

Two parts:

1. A tiny ``/train sleap`` through colabot (``colabot run`` as its own process against a Bot
   API emulator in this process), its steps timed from outside with psutil: the whole job
   from the chat message to the reply, the training step (sleap-nn evaluates the models on
   each split inside it, after training, by predicting its frames: that share is read from
   the step's log timestamps, whole seconds), and the step after it that reads the metrics
   and draws the end-of-job card (the loss curves and the table of held-out metrics). The
   training is long enough (4 epochs of 50 steps) for the model to find the animals, so that
   there is something to evaluate.
2. The views an inference on a video adds, drawn with the preview tool's own functions on a
   10 s 1024x1024 30 fps video (written with imageio-ffmpeg) and a few predicted animals per
   frame (sleap-io, as the research for the clip did): the clip and the album of the frames
   to label next (with their ``.pkg.slp`` of suggestions).

Each cost is printed with its share of the whole tiny job (target: the clip and the album
together under 15%).

    python -m bench.quality_card [--epochs 4] [--steps 50] [--seconds 10] [--side 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil

from bench.sleap_overhead import Watcher, make_data, start_colabot, through_colabot
from emulator import DEFAULT_USER_ID, BotApiEmulator

ANIMALS = 3
FPS = 30
# sleap-nn's loguru lines begin with their time, to the second.
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


@dataclass
class Job:
    """The tiny training job, as measured."""

    whole: float
    steps: dict[str, float]
    evaluation: float | None
    card: str


async def tiny_job(epochs: int, steps: int) -> Job:
    """Run one tiny SLEAP training through colabot; its times."""
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
            "model_config.backbone_config.unet.filters=8 trainer_config.optimizer.lr=0.003"
        )
        try:
            await emu.wait_until_polling(timeout=60)
            whole, found = await through_colabot(emu, watcher, 1, command)
            # The end-of-job picture follows the final message.
            picture = await emu.wait_for(lambda e: e.kind == "photo", timeout=60)
            card = str((picture.message or {}).get("caption") or "")
        finally:
            sampler.cancel()
            proc.send_signal(signal.SIGINT)
            # In a thread: the emulator it is talking to runs on this event loop.
            await asyncio.to_thread(proc.wait, 60)
            await emu.stop()
        log = home / "data" / "jobs" / "1" / "job.log"
        return Job(whole, found, evaluation_seconds(log.read_text(errors="replace")), card)


def evaluation_seconds(log: str) -> float | None:
    """From sleap-nn's own log lines: the seconds from its first prediction on a split's
    frames (``labels_gt.<split>``: how its evaluation after training begins) to the last
    stamped line of the training step (whole seconds; None when it did not evaluate)."""
    stamps = []
    evaluating = False
    for line in log.splitlines():
        if line.startswith("=== colabot step:") and evaluating:
            break
        found = STAMP.match(line)
        if found is None:
            continue
        when = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
        if not evaluating and "Starting inference" in line and "labels_gt." in line:
            evaluating = True
        if evaluating:
            stamps.append(when)
    return stamps[-1] - stamps[0] if len(stamps) > 1 else None


def make_video(folder: Path, seconds: int, side: int) -> Path:
    """A ``seconds`` long, ``side``x``side`` video of a few bugs and its predictions (noisy
    body parts, a missing one now and then, an animal lost now and then): the ``.slp``."""
    import imageio
    import numpy as np
    import sleap_io as sio

    from workers.kinds.sleap.tools.example import draw_scene, skeleton

    n = seconds * FPS
    scene = draw_scene(n, side, animals=ANIMALS, seed=0)
    video_path = folder / "big.mp4"
    writer = imageio.get_writer(str(video_path), fps=FPS, codec="libx264", macro_block_size=16)
    try:
        for frame in scene.frames:
            writer.append_data(frame)
    finally:
        writer.close()
    bug, rng = skeleton(), np.random.default_rng(1)
    video = sio.Video.from_filename(str(video_path))
    frames = []
    for i in range(n):
        instances = []
        for a in range(ANIMALS):
            if i % 23 == 0 and a == 2:
                continue
            points = scene.points[i, a] + rng.normal(0, 2, (3, 2))
            scores = rng.uniform(0.3, 1.0, 3)
            if i % 17 == 0 and a == 0:
                points[2], scores[2] = np.nan, 0.0
            instances.append(
                sio.PredictedInstance.from_numpy(
                    points, skeleton=bug, point_scores=scores, score=float(scores.mean())
                )
            )
        frames.append(sio.LabeledFrame(video=video, frame_idx=i, instances=instances))
    dest = folder / "big.mp4.slp"
    sio.Labels(labeled_frames=frames, videos=[video], skeletons=[bug]).save(str(dest))
    return dest


@dataclass
class Views:
    """The clip and the album, as drawn."""

    clip_s: float
    clip_frames: int
    clip_mb: float
    clip_side: int
    album_s: float
    album_pictures: int


def draw_views(predictions: Path, seconds: int, budget: float) -> Views:
    """Draw the clip and the album with the preview tool's functions, as its step does."""
    import sleap_io as sio

    from workers.kinds.sleap.tools import preview

    labels = sio.load_slp(str(predictions))
    shape = labels.video.shape
    assert shape is not None
    predicted = preview.predicted_frames("", int(shape[0]))
    out = predictions.parent

    started = time.perf_counter()
    doubts = preview.frame_doubts(labels, predicted)
    usual = preview.usual_count(doubts)
    chosen = preview.least_sure(doubts, preview.ALBUM_MAX)
    preview.write_suggestions(labels, [d.frame for d in chosen], out / "label-next.pkg.slp")
    scale = preview.clip_scale(int(shape[2]), int(shape[1]))
    pictures = preview.draw_album(labels, chosen, usual, out / "label-next", scale)
    album_s = time.perf_counter() - started

    started = time.perf_counter()
    fps = float(getattr(labels.video.backend, "fps", None) or FPS)
    frames, clip_fps = preview.clip_frames(predicted, fps, seconds)
    made = preview.render_clip(
        labels, out / "clip.mp4", frames, clip_fps, time.monotonic() + budget
    )
    clip_s = time.perf_counter() - started
    return Views(
        clip_s,
        len(made.frames),
        made.path.stat().st_size / 1e6,
        round(max(int(shape[1]), int(shape[2])) * scale),
        album_s,
        len(pictures),
    )


def report(job: Job, views: Views, seconds: int, side: int) -> None:
    """Print the figures."""
    whole = job.whole

    def share(part: float) -> str:
        return f"{100 * part / whole:5.1f}% of the tiny job"

    print(f"Tiny SLEAP training through colabot (CPU, {psutil.cpu_count()} cores)")
    print(f"  whole job, chat -> reply        {whole:7.2f} s")
    for name in ("prepare", "train", "finish-training"):
        if name in job.steps:
            print(f"  step {name:<26} {job.steps[name]:7.2f} s")
    if job.evaluation is not None:
        print(
            f"  evaluation inside sleap-nn     ~{job.evaluation:6.0f} s  ({share(job.evaluation)}; "
            "sleap-nn's own, whole seconds)"
        )
    else:
        print("  evaluation inside sleap-nn      no evaluation lines found in the log")
    finish = job.steps.get("finish-training")
    if finish is not None:
        print(
            f"  metrics read + card drawn      {finish:7.2f} s  ({share(finish)}; the whole "
            "finish-training step)"
        )
    print(f"  end-of-job picture caption     {job.card!r}")
    print(f"Views of an inference on a {seconds} s {side}x{side} {FPS} fps video, on this CPU")
    print(
        f"  clip                           {views.clip_s:7.2f} s  ({share(views.clip_s)}; "
        f"{views.clip_frames} frames at {views.clip_side} px, {views.clip_mb:.2f} MB)"
    )
    print(
        f"  album + suggestions .pkg.slp   {views.album_s:7.2f} s  ({share(views.album_s)}; "
        f"{views.album_pictures} pictures)"
    )
    both = views.clip_s + views.album_s
    verdict = "meets" if both < 0.15 * whole else "misses"
    print(f"  clip + album                   {both:7.2f} s  ({share(both)}: {verdict} < 15%)")


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--budget", type=float, default=120.0, help="the clip's time limit, s")
    args = parser.parse_args()
    job = asyncio.run(tiny_job(args.epochs, args.steps))
    with tempfile.TemporaryDirectory() as tmp:
        predictions = make_video(Path(tmp), args.seconds, args.side)
        views = draw_views(predictions, args.seconds, args.budget)
    report(job, views, args.seconds, args.side)


if __name__ == "__main__":
    main()

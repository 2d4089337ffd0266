"""What an inference on a video shows besides its files: a short clip of the predictions drawn
on the frames, and the frames where the model is least sure, to label next (an album of them,
and a ``.pkg.slp`` that holds them as labelling suggestions for the SLEAP GUI).

``preview WORK`` is the job's step. It runs ``draw-views WORK`` (sleap-io, skia, ffmpeg) as a
child with a hard time limit and always exits 0: the predictions are the job's result and
these only show them, so nothing the drawing does (an error, a crash, a hang) fails the job;
each failure becomes one line of the summary. What was drawn goes to ``WORK/views.json``,
written again after each part, so a part drawn before a failure is kept.

Runs in job subprocesses only; the decisions (which frames, which scale, what to say) are pure
functions here, and sleap-io is imported only where frames are read or drawn.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.kinds.plans import REQUEST, write_json
from workers.kinds.sleap.params import views_asked
from workers.kinds.sleap.plan import (
    VIEWS,
    OutputRecord,
    PredictPlan,
    Result,
    load_plan,
    load_request,
    load_views,
)
from workers.safety.names import label

if TYPE_CHECKING:
    import sleap_io as sio

TOOLS = __name__.rpartition(".")[0]
CLIP_MAX_BYTES = 45 * 1024 * 1024
"""Under Telegram's 50 MB upload limit for bots with room to spare (and no more than colabot
sends files under by default)."""
CLIP_MAX_FPS = 30.0
"""Above this a clip keeps every k-th frame, so it still plays in real time."""
CLIP_SIDE = (480, 1280)
"""The clip's and pictures' longer side is kept within these (a small video is enlarged up to
4 times, so the skeleton can be seen on a phone)."""
SMALLEST_SIDE = 240
"""A clip too large to send is made smaller down to this, then shorter."""
ALBUM = "frames to label next"
ALBUM_MAX = 10
"""Telegram's largest album; more frames to label go only into the .pkg.slp."""
SHRINK_TRIES = 3


# ----------------------------------------------------------------------- decisions (pure)


def predicted_frames(frames: str, n_video: int) -> list[int]:
    """The frames a prediction ran on: its ``frames=`` (``2-5``, the end included, or
    ``1,3,8``) within the video, or every frame of it."""
    text = frames.replace(" ", "")
    if not text:
        return list(range(n_video))
    if "-" in text:
        start, end = (int(v) for v in text.split("-"))
        return list(range(max(0, start), min(end + 1, n_video)))
    return sorted({i for i in (int(v) for v in text.split(",")) if 0 <= i < n_video})


@dataclass(frozen=True)
class Doubt:
    """How sure the model was on one frame."""

    frame: int
    found: int = 0
    """Animals (predicted instances) found."""
    missing: int = 0
    """Body parts missing, over the animals found."""
    score: float = 0.0
    """The mean body-part score of the least sure animal (0 when none was found). Not the
    instance score, which means a sum of peaks for one model type and the centroid's peak for
    another."""


def usual_count(doubts: list[Doubt]) -> int:
    """How many animals the model finds on most frames (the larger count on a tie)."""
    counts = Counter(d.found for d in doubts)
    return max(counts, key=lambda c: (counts[c], c)) if counts else 0


def least_sure(doubts: list[Doubt], n: int) -> list[Doubt]:
    """The ``n`` frames where the model is least sure, least sure first: fewer animals than
    the video usually has, then more missing body parts, then a lower score.

    Frames next to one already chosen wait until the others have been considered: neighbours
    look alike, and labelling both teaches the model little more than labelling one.
    """
    if n <= 0 or not doubts:
        return []
    usual = usual_count(doubts)
    ranked = sorted(doubts, key=lambda d: (-max(0, usual - d.found), -d.missing, d.score, d.frame))
    span = max(d.frame for d in doubts) - min(d.frame for d in doubts) + 1
    near = span // (4 * n)
    chosen: list[Doubt] = []
    waiting: list[Doubt] = []
    for doubt in ranked:
        if len(chosen) == n:
            break
        if near and any(abs(doubt.frame - c.frame) <= near for c in chosen):
            waiting.append(doubt)
        else:
            chosen.append(doubt)
    return chosen + waiting[: n - len(chosen)]


def caption(doubt: Doubt, usual: int) -> str:
    """``frame 12: 1 of 2 animals found, 2 body parts missing, confidence 0.31``."""
    if doubt.found == 0:
        what = f"no animal found (usually {usual})" if usual else "no animal found"
    elif doubt.found < usual:
        what = f"{doubt.found} of {usual} animals found"
    else:
        what = _count(doubt.found, "animal") + " found"
    parts = [what]
    if doubt.missing:
        parts.append(_count(doubt.missing, "body part") + " missing")
    if doubt.found:
        parts.append(f"confidence {doubt.score:.2f}")
    return f"frame {doubt.frame}: " + ", ".join(parts)


def clip_frames(predicted: list[int], fps: float, seconds: float) -> tuple[list[int], float]:
    """The frames of a clip of the first ``seconds`` of the predicted frames, and the clip's
    frame rate. A fast video keeps every k-th frame so the clip plays in real time at 30 frames
    per second or fewer."""
    if not predicted:
        return [], fps
    step = max(1, math.ceil(fps / CLIP_MAX_FPS - 1e-9))
    window = max(1, round(seconds * fps))
    first = [f for f in predicted if f < predicted[0] + window]
    return first[::step], fps / step


def clip_scale(width: int, height: int) -> float:
    """The scale that brings the longer side within :data:`CLIP_SIDE`."""
    longer = max(width, height, 1)
    low, high = CLIP_SIDE
    if longer < low:
        return min(4.0, low / longer)
    return high / longer if longer > high else 1.0


def smaller(scale: float, frames: int, longer: int, size: int, limit: int) -> tuple[float, int]:
    """The scale and frame count for another try at a clip that came out ``size`` bytes,
    over ``limit``: smaller frames while the longer side stays :data:`SMALLEST_SIDE` or more,
    then fewer frames. The size goes about with pixels times frames; aim 20% under."""
    factor = 0.8 * limit / size
    wanted = scale * math.sqrt(factor)
    floor = min(scale, SMALLEST_SIDE / max(1, longer))
    if wanted >= floor:
        return wanted, frames
    left = factor / (floor / scale) ** 2
    return floor, max(1, int(frames * left))


@dataclass(frozen=True)
class ClipMade:
    """A clip as rendered."""

    path: Path
    frames: list[int]
    fps: float
    planned: int
    """Frames the clip was to have."""
    stopped: bool = False
    """Rendering time ran out before the last frame."""
    smaller: bool = False
    """It was made smaller or shorter to stay under the size limit."""


def clip_caption(clip: ClipMade, source: str) -> str:
    """``predictions on clip.mp4, frames 0-39 (4.0 s)``: the clip's caption in the chat."""
    seconds = len(clip.frames) / clip.fps
    return f"predictions on {source}, frames {clip.frames[0]}-{clip.frames[-1]} ({seconds:.1f} s)"


def clip_line(clip: ClipMade, source: str, budget: float) -> str:
    """``Clip: frames 0-39 of clip.mp4 (4.0 s), with the predictions drawn.``; a clip cut
    short says by how much and why."""
    seconds = len(clip.frames) / clip.fps
    planned = clip.planned / clip.fps
    frames = f"frames {clip.frames[0]}-{clip.frames[-1]} of {source}"
    if clip.stopped:
        return (
            f"Clip: {frames}, {seconds:.1f} s of the {planned:.1f} s asked "
            f"({planned - seconds:.1f} s short): rendering stopped at its {budget:g} s limit."
        )
    if clip.smaller and len(clip.frames) < clip.planned:
        return (
            f"Clip: {frames}, {seconds:.1f} s of the {planned:.1f} s asked: cut "
            f"{planned - seconds:.1f} s short to stay under {CLIP_MAX_BYTES // 2**20} MB."
        )
    tail = f", made smaller to stay under {CLIP_MAX_BYTES // 2**20} MB" if clip.smaller else ""
    return f"Clip: {frames} ({seconds:.1f} s), with the predictions drawn{tail}."


def suggestions_line(count: int, file: str, pictures: int = 0) -> str:
    """What the frames to label next are, where they are and what to do with them."""
    if not pictures:
        shown = ""
    elif pictures < count:
        shown = f" (the {pictures} least sure in the album)"
    else:
        shown = " (in the album)"
    return (
        f"Frames to label next: {_count(count, 'frame')} where the model is least sure"
        f"{shown}. Open {file} in SLEAP: it holds them, with the predictions to correct, as "
        "labelling suggestions. Label them (merging them into your project if you like), "
        "then send the .slp back with /train sleap <file>."
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    named = text if isinstance(exc, ViewError) else f"{type(exc).__name__}: {text}"
    return label(named, 200)


class ViewError(Exception):
    """Why a view could not be made, in words (shown without the exception's type)."""


# ------------------------------------------------------------------- reading and drawing


def frame_doubts(labels: sio.Labels, frames: list[int]) -> list[Doubt]:
    """How sure the model was on each of ``frames`` (a frame with no prediction found none)."""
    import numpy as np

    found = {lf.frame_idx: lf for lf in labels.labeled_frames}
    doubts = []
    for index in frames:
        frame = found.get(index)
        instances = list(frame.predicted_instances) if frame is not None else []
        if not instances:
            doubts.append(Doubt(index))
            continue
        points = [inst.numpy(scores=True) for inst in instances]
        missing = sum(int(np.isnan(p[:, 0]).sum()) for p in points)
        score = min(float(np.nan_to_num(p[:, 2]).mean()) for p in points)
        doubts.append(Doubt(index, len(instances), missing, score))
    return doubts


def write_suggestions(labels: sio.Labels, frames: list[int], dest: Path) -> Path:
    """A ``.pkg.slp`` with ``frames`` as labelling suggestions, in that order, their images
    embedded (it opens without the job's video) and their predictions kept to correct."""
    import sleap_io as sio

    video, wanted = labels.video, set(frames)
    chosen = sio.Labels(
        labeled_frames=[lf for lf in labels.labeled_frames if lf.frame_idx in wanted],
        videos=[video],
        skeletons=list(labels.skeletons),
        tracks=list(labels.tracks),
        suggestions=[sio.SuggestionFrame(video=video, frame_idx=i) for i in frames],
    )
    dest.unlink(missing_ok=True)
    chosen.save(str(dest), embed="suggestions", verbose=False)
    return dest


def draw_album(
    labels: sio.Labels, doubts: list[Doubt], usual: int, folder: Path, scale: float
) -> list[tuple[Path, str]]:
    """One JPEG per frame with the predictions drawn, and its caption."""
    import sleap_io as sio

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    found = {lf.frame_idx: lf for lf in labels.labeled_frames}
    drawn = []
    for doubt in doubts:
        frame = found.get(doubt.frame) or sio.LabeledFrame(
            video=labels.video, frame_idx=doubt.frame
        )
        path = folder / f"frame_{doubt.frame:06d}.jpg"
        sio.render_image(frame, save_path=str(path), scale=scale, marker_size=3.0)
        drawn.append((path, caption(doubt, usual)))
    return drawn


def _render(
    labels: sio.Labels, dest: Path, frames: list[int], fps: float, scale: float, deadline: float
) -> int:
    """Render ``frames`` into ``dest`` until ``deadline``; the number of frames written."""
    import sleap_io as sio

    if time.monotonic() >= deadline:
        return 0
    done = {"frames": len(frames)}

    def go_on(index: int, _total: int) -> bool:
        if time.monotonic() < deadline:
            return True
        done["frames"] = index
        return False

    try:
        sio.render_video(
            labels,
            str(dest),
            video=0,
            frame_inds=frames,
            include_unlabeled=True,
            fps=fps,
            scale=scale,
            marker_size=3.0,
            show_progress=False,
            progress_callback=go_on,
        )
    except Exception:
        if done["frames"]:
            raise
        # Stopped before the first frame: there is no video to open at the end.
    return done["frames"]


def render_clip(
    labels: sio.Labels,
    dest: Path,
    frames: list[int],
    fps: float,
    deadline: float,
    limit: int = CLIP_MAX_BYTES,
) -> ClipMade:
    """Render the clip, cut where ``deadline`` passes, and again smaller (then shorter) while
    it is over ``limit`` bytes and time is left. ViewError when nothing came out."""
    started = time.monotonic()
    shape = labels.video.shape
    if shape is None:
        raise ViewError("the video cannot be read")
    height, width = int(shape[1]), int(shape[2])
    scale, planned, stopped, shrunk = clip_scale(width, height), len(frames), False, False
    for _ in range(SHRINK_TRIES):
        written = _render(labels, dest, frames, fps, scale, deadline)
        if written < len(frames):
            stopped, frames = True, frames[:written]
        if not frames:
            dest.unlink(missing_ok=True)
            raise ViewError("its rendering time ran out before the first frame")
        size = dest.stat().st_size
        print(
            f"clip: {len(frames)} frames at {round(width * scale)}x{round(height * scale)}, "
            f"{size / 1e6:.2f} MB, {time.monotonic() - started:.2f} s",
            flush=True,
        )
        if size <= limit:
            return ClipMade(dest, frames, fps, planned, stopped, shrunk)
        if time.monotonic() >= deadline:
            break
        scale, count = smaller(scale, len(frames), max(width, height), size, limit)
        frames, shrunk = frames[:count], True
    dest.unlink(missing_ok=True)
    raise ViewError(f"it stayed over {limit // 2**20} MB however it was drawn")


# ------------------------------------------------------------------------------- the step


@dataclass
class _Views:
    """What has been drawn so far, saved to views.json after each part."""

    path: Path
    clip: list[OutputRecord] = field(default_factory=list)
    album: list[OutputRecord] = field(default_factory=list)
    suggestions: list[OutputRecord] = field(default_factory=list)
    lines: dict[str, str] = field(default_factory=dict)

    def save(self) -> None:
        outputs = [*self.clip, *self.album, *self.suggestions]
        order = ("clip", "suggest")
        lines = [self.lines[k] for k in order if k in self.lines]
        write_json(self.path, Result(outputs=outputs, summary="\n".join(lines)))


def _base_name(predictions: Path) -> str:
    """``clip.mp4.predictions.slp`` -> ``clip.mp4``: the name the views are saved under."""
    name = predictions.name.removesuffix(".slp")
    return name.removesuffix(".predictions") or name


def draw_views(work: Path, budget: float) -> int:
    """The child: draw the clip and the frames to label next for the first prediction on a
    video; every failure is a line in views.json. Returns 0."""
    plan, request = load_plan(work), load_request(work / REQUEST)
    views = _Views(work / VIEWS)
    views.save()
    seconds, suggest = views_asked(request.params)
    chosen = [p for p in (plan.predictions if plan else []) if p.on_video]
    if not chosen or not Path(chosen[0].output).is_file():
        return 0
    prediction = chosen[0]
    name = Path(prediction.data).name
    try:
        import sleap_io as sio

        labels = sio.load_slp(prediction.output)
        shape = labels.video.shape
        predicted = predicted_frames(prediction.frames, int(shape[0])) if shape else []
        if predicted:
            _first_frame(labels, predicted[0], name)
    except Exception as exc:
        views.lines["clip"] = f"No clip or frames to label next: {_reason(exc)}"
        views.save()
        return 0
    if suggest:
        _suggest(views, labels, prediction, predicted, suggest)
    if seconds:
        _clip(views, labels, prediction, predicted, seconds, budget)
    return 0


def _first_frame(labels: Any, index: int, name: str) -> None:
    """ViewError unless the video's first predicted frame can be read here."""
    try:
        frame = labels.video[index]
    except Exception as exc:
        raise ViewError(f"{name} cannot be read here ({_reason(exc)})") from None
    if frame is None:
        raise ViewError(f"{name} cannot be read here")


def _suggest(
    views: _Views, labels: Any, prediction: PredictPlan, predicted: list[int], count: int
) -> None:
    out = Path(prediction.output)
    base = _base_name(out)
    started = time.monotonic()
    try:
        doubts = frame_doubts(labels, predicted)
        usual = usual_count(doubts)
        chosen = least_sure(doubts, count)
        if not chosen:
            raise ViewError("no frame was predicted")
        dest = out.parent / f"{base}.label-next.pkg.slp"
        file = write_suggestions(labels, [d.frame for d in chosen], dest)
    except Exception as exc:
        views.lines["suggest"] = f"No frames to label next: {_reason(exc)}"
        views.save()
        return
    views.suggestions = [OutputRecord(str(file), "suggestions", file.name)]
    views.lines["suggest"] = suggestions_line(len(chosen), file.name)
    views.save()
    try:
        shape = labels.video.shape
        scale = clip_scale(int(shape[2]), int(shape[1]))
        folder = out.parent / f"{base}.label-next"
        pictures = draw_album(labels, chosen[:ALBUM_MAX], usual, folder, scale)
    except Exception as exc:
        views.lines["suggest"] += f" No album: {_reason(exc)}"
    else:
        views.album = [
            OutputRecord(str(path), "label next", text, photo=True, album=ALBUM)
            for path, text in pictures
        ]
        views.lines["suggest"] = suggestions_line(len(chosen), file.name, len(pictures))
        print(
            f"frames to label next: {len(chosen)} chosen, {len(pictures)} drawn in "
            f"{time.monotonic() - started:.2f} s",
            flush=True,
        )
    views.save()


def _clip(
    views: _Views,
    labels: Any,
    prediction: PredictPlan,
    predicted: list[int],
    seconds: int,
    budget: float,
) -> None:
    out = Path(prediction.output)
    source = Path(prediction.data).name
    try:
        fps = float(getattr(labels.video.backend, "fps", None) or 30.0)
        frames, clip_fps = clip_frames(predicted, fps, seconds)
        if not frames:
            raise ViewError("no frame was predicted")
        dest = out.parent / f"{_base_name(out)}.clip.mp4"
        made = render_clip(labels, dest, frames, clip_fps, time.monotonic() + budget)
    except Exception as exc:
        views.lines["clip"] = f"No clip: {_reason(exc)}"
    else:
        views.clip = [OutputRecord(str(made.path), "clip", clip_caption(made, source), video=True)]
        views.lines["clip"] = clip_line(made, source, budget)
    views.save()


def preview(work: Path, budget: float, limit: float) -> int:
    """The step: run :func:`draw_views` as a child for at most ``limit`` seconds; a child
    that fails, crashes or runs out of time leaves a line saying so. Always returns 0."""
    (work / VIEWS).unlink(missing_ok=True)
    argv = [sys.executable, "-m", TOOLS, "draw-views", str(work), "--budget", f"{budget:g}"]
    note = ""
    try:
        done = subprocess.run(argv, timeout=max(0.01, limit), check=False)
    except subprocess.TimeoutExpired:
        note = f"Drawing stopped at its {limit:g} s limit; what was drawn by then is kept."
    except OSError as exc:
        note = f"Nothing was drawn: {_reason(exc)}"
    else:
        kept = "what was drawn by then is kept"
        if done.returncode < 0:
            note = f"Drawing ended with signal {-done.returncode}; {kept}."
        elif done.returncode:
            note = f"Drawing failed (status {done.returncode}, see the log); {kept}."
    views = load_views(work)
    if note:
        views.summary = "\n".join(s for s in (views.summary, note) if s)
        write_json(work / VIEWS, views)
    if views.summary:
        print(views.summary, flush=True)
    return 0

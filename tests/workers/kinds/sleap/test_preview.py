"""What an inference on a video shows besides its files: a clip of the predictions drawn on
the frames, and the frames where the model is least sure (an album, and a .pkg.slp that holds
them as labelling suggestions). Real sleap-nn, sleap-io and ffmpeg on tiny generated data,
through the engine; drawing that fails, through the real tool; the decisions, directly."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from tests.helpers.engine import WaitForState
from workers.engine import Engine
from workers.errors import SpecError
from workers.events import Album, FileReady
from workers.jobs import Action, Job, JobSpec, JobState
from workers.kinds.base import JobContext, Outcome
from workers.kinds.plans import REQUEST, write_json
from workers.kinds.sleap.kind import STEP_ENV, TOOLS_MODULE, SleapKind
from workers.kinds.sleap.params import view_times, views_asked
from workers.kinds.sleap.plan import VIEWS, Plan, PredictPlan, Request, load_views
from workers.kinds.sleap.tools.preview import (
    ALBUM,
    CLIP_MAX_BYTES,
    ClipMade,
    Doubt,
    caption,
    clip_frames,
    clip_line,
    clip_scale,
    least_sure,
    predicted_frames,
    smaller,
    suggestions_line,
)
from workers.safety.environment import step_environment

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[4]
KIND = SleapKind()
TRAIN = {
    "epochs": "2",
    "steps_per_epoch": "10",
    "batch": "4",
    "model_config.backbone_config.unet.filters": "8",
    "trainer_config.optimizer.lr": "0.003",
}
NEW_FRAMES = 40
"""Frames of the video predicted on (4 s at the 10 frames per second write_mp4 gives)."""


# ------------------------------------------------------------------------------- helpers


def submit(engine: Engine, action: Action, inputs: dict[str, str], **params: str) -> Job:
    """Submit a SLEAP job."""
    return engine.submit(JobSpec("sleap", action, inputs, dict(params)))


async def succeed(engine: Engine, wait_for_state: WaitForState, job: Job) -> Job:
    """Wait for the job to end; fail with its reason and log tail unless it succeeded."""
    done = await wait_for_state(engine, job.id, timeout=300)
    if done.state is not JobState.SUCCEEDED:
        tail = "\n".join(engine.log_tail(job.id, 40))
        raise AssertionError(f"job {job.id} {done.state}: {done.error}\n{tail}")
    return done


def outcome(engine: Engine, job_id: int) -> Outcome:
    """What the kind collects from a finished job's folder."""
    ctx = JobContext(engine.job(job_id), engine.workdir(job_id), {}, sys.executable, print)
    return KIND.collect(ctx)


def write_video(path: Path, frames: int) -> Path:
    """A new video of the synthetic bug (96x96, 10 frames per second)."""
    from workers.kinds.sleap.tools.example import draw_scene, write_mp4

    return write_mp4(draw_scene(frames, 96, seed=5).frames, path)


def decoded(path: Path) -> tuple[int, int, int, float]:
    """(frames decoded, width, height, frames per second) of an MP4."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(video=0))
        found = (count, stream.width, stream.height, float(stream.average_rate or 0))
    return found


def suggested(path: Path) -> list[int]:
    """The labelling suggestions of a .slp, as sleap-io reads them (frame numbers, in order)."""
    import sleap_io as sio

    labels = sio.load_slp(str(path))
    return [s.frame_idx for s in labels.suggestions]


def inside(path: Path) -> tuple[str, int, tuple[int, ...]]:
    """What a suggestions .pkg.slp holds itself: the file its frames are read from, its
    predicted instances, and the shape of the first suggested frame's image."""
    import sleap_io as sio

    labels = sio.load_slp(str(path))
    image = labels.video[labels.suggestions[0].frame_idx]
    count = sum(len(lf.predicted_instances) for lf in labels.labeled_frames)
    return Path(labels.video.filename).name, count, tuple(image.shape)


def framed(captions: list[str]) -> list[int]:
    """The frame numbers the album's captions name."""
    found = [re.match(r"frame (\d+): ", c) for c in captions]
    assert all(found), captions
    return [int(m.group(1)) for m in found if m]


def step_names(log: Path) -> list[str]:
    """The steps a job ran, in order, from its log."""
    prefix = "=== colabot step: "
    return [
        line[len(prefix) :].removesuffix(" ===")
        for line in log.read_text().splitlines()
        if line.startswith(prefix)
    ]


# --------------------------------------------------------------------- through the engine


async def test_inference_on_a_video_sends_a_clip_and_the_frames_to_label_next(
    engine: Engine, wait_for_state: WaitForState, sleap_inputs: dict[str, Path], input_root: Path
) -> None:
    trained = submit(engine, Action.TRAIN, {"input": str(sleap_inputs["pkg"])}, **TRAIN)
    await succeed(engine, wait_for_state, trained)
    video = write_video(input_root / "walk.mp4", NEW_FRAMES)
    inputs = {"model": str(trained.id), "input": str(video)}
    # A model this little trained finds the bug only with every peak kept.
    found = {"peak_threshold": "0"}
    plain = submit(engine, Action.INFER, inputs, **found)
    short = submit(engine, Action.INFER, inputs, preview_seconds="2", suggest="12", **found)
    neither = submit(engine, Action.INFER, inputs, preview="no", suggest="0", **found)
    await asyncio.gather(*(succeed(engine, wait_for_state, j) for j in (plain, short, neither)))

    # The clip: every predicted frame up to 10 s, enlarged 4 times, sent as a video.
    result = outcome(engine, plain.id)
    (clip,) = [o for o in result.outputs if o.role == "clip"]
    assert clip.send_as_video and clip.path.name == "walk.mp4.clip.mp4"
    assert decoded(clip.path) == (NEW_FRAMES, 384, 384, 10.0)
    assert clip.path.stat().st_size < CLIP_MAX_BYTES
    assert "Clip: frames 0-39 of walk.mp4 (4.0 s), with the predictions drawn." in result.summary
    events = [e.payload for e in engine.store.events_for(plain.id)]
    videos = [e for e in events if isinstance(e, FileReady) and e.video]
    assert [Path(e.path).name for e in videos] == ["walk.mp4.clip.mp4"]
    assert not [e for e in events if isinstance(e, FileReady) and e.photo]  # no one-frame preview

    # The frames to label next: one album of the 10 least sure, the same frames in the .slp.
    pictures = [o for o in result.outputs if o.album]
    assert len(pictures) == 10 and {o.album for o in pictures} == {ALBUM}
    assert all(o.send_as_photo and o.path.read_bytes()[:2] == b"\xff\xd8" for o in pictures)
    (album,) = [e for e in events if isinstance(e, Album)]
    assert album.title == ALBUM and len(album.paths) == 10
    (slp,) = [o.path for o in result.outputs if o.role == "suggestions"]
    assert slp.name == "walk.mp4.label-next.pkg.slp"
    assert suggested(slp) == framed(album.captions)
    # Its frames are inside it (it opens without the job's video), with the predictions.
    assert inside(slp) == (slp.name, 10, (96, 96, 1))
    assert len(set(framed(album.captions))) == 10
    assert any(isinstance(e, FileReady) and Path(e.path) == slp for e in events)
    assert (
        "Frames to label next: 10 frames where the model is least sure (in the album). "
        "Open walk.mp4.label-next.pkg.slp in SLEAP"
    ) in result.summary
    assert "then send the .slp back with /train sleap <file>" in result.summary

    # preview_seconds=2 shortens the clip; suggest=12 keeps 12 in the .slp, 10 in the album.
    result = outcome(engine, short.id)
    (short_clip,) = [o.path for o in result.outputs if o.role == "clip"]
    assert decoded(short_clip)[0] == 20
    captions = [o.label for o in result.outputs if o.album]
    (slp,) = [o.path for o in result.outputs if o.role == "suggestions"]
    assert len(suggested(slp)) == 12 and suggested(slp)[:10] == framed(captions)
    assert "12 frames where the model is least sure (the 10 least sure in the album)" in (
        result.summary
    )

    # preview=no suggest=0: no step, no clip, no album, no suggestions.
    result = outcome(engine, neither.id)
    assert {o.role for o in result.outputs} == {"predictions", "export"}
    assert "preview" not in step_names(engine.workdir(neither.id) / "job.log")
    assert "Clip" not in result.summary and "label next" not in result.summary
    outputs_dir = engine.workdir(neither.id) / "outputs"
    assert not list(outputs_dir.glob("*.mp4")) and not list(outputs_dir.glob("*label-next*"))


# ------------------------------------------------------------------ drawing that fails


def _views_work(tmp_path: Path, labels: Path, video: Path, **params: object) -> Path:
    """A job folder whose prediction on ``video`` is ``labels`` (a labels file of it), as the
    preview step finds it after export."""
    work = tmp_path / "job" / "work"
    write_json(
        work / "plan.json",
        Plan(
            action="infer",
            predictions=[PredictPlan(data=str(video), models=[], output=str(labels))],
        ),
    )
    write_json(work / REQUEST, Request(action="infer", workdir=str(work.parent), params=params))
    return work


def _preview(work: Path, *options: str) -> tuple[int, str, float]:
    """Run the preview step as the kind does; (status, output, seconds taken)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", TOOLS_MODULE, "preview", str(work), *options],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=step_environment(STEP_ENV),
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def _collected(work: Path) -> Outcome:
    job = Job(1, JobSpec("sleap", Action.INFER, {}, {}), JobState.RUNNING, 0.0)
    return KIND.collect(JobContext(job, work.parent, {}, sys.executable, print))


def test_drawing_that_fails_is_a_line_and_never_a_failed_step(
    sleap_inputs: dict[str, Path], tmp_path: Path
) -> None:
    labels, video = sleap_inputs["slp_mp4"], sleap_inputs["slp_mp4"].parent / "video.mp4"

    # No time to render: no clip, and the frames to label next still come.
    work = _views_work(tmp_path, labels, video)
    status, output, _ = _preview(work, "--budget", "0")
    assert status == 0, output
    drawn = _collected(work)
    assert "No clip: its rendering time ran out before the first frame" in drawn.summary
    assert not [o for o in drawn.outputs if o.role == "clip"]
    (slp,) = [o.path for o in drawn.outputs if o.role == "suggestions"]
    assert len(suggested(slp)) == 8  # every frame: the labels hold no prediction at all
    assert len([o for o in drawn.outputs if o.album]) == 8

    # The drawing stopped at the step's limit: a line, and exit 0 all the same.
    status, output, taken = _preview(work, "--budget", "60", "--limit", "0.05")
    assert status == 0, output
    assert "Drawing stopped at its 0.05 s limit; what was drawn by then is kept." in (
        _collected(work).summary
    )
    assert taken < 30

    # A video the renderer cannot read: one line each, nothing drawn, exit 0.
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(labels, broken / "labels.slp")
    (broken / "video.mp4").write_bytes(b"not a video at all")
    work = _views_work(tmp_path / "second", broken / "labels.slp", broken / "video.mp4")
    status, output, _ = _preview(work)
    assert status == 0, output
    drawn = _collected(work)
    assert drawn.outputs == []
    (line,) = drawn.summary.splitlines()
    assert line.startswith("No clip or frames to label next: ")
    assert json.loads((work / VIEWS).read_text())["outputs"] == []
    assert load_views(work).summary == drawn.summary


# ------------------------------------------------------------------------- the decisions


def test_the_frames_predicted_and_the_frames_of_the_clip() -> None:
    assert predicted_frames("", 5) == [0, 1, 2, 3, 4]
    assert predicted_frames("3-6", 5) == [3, 4]
    assert predicted_frames("9,1,1,4", 5) == [1, 4]
    assert clip_frames(list(range(100)), 10.0, 2) == (list(range(20)), 10.0)
    # 60 frames per second: every second frame, still 2 s of the video, played at 30.
    assert clip_frames(list(range(300)), 60.0, 2) == (list(range(0, 120, 2)), 30.0)
    assert clip_frames([5, 50, 500], 10.0, 10) == ([5, 50], 10.0)
    assert clip_frames([], 30.0, 10) == ([], 30.0)
    assert clip_scale(96, 96) == 4.0 and clip_scale(200, 150) == 2.4
    assert clip_scale(1024, 768) == 1.0 and clip_scale(2560, 1440) == 0.5


def test_a_clip_over_the_limit_is_made_smaller_then_shorter() -> None:
    scale, frames = smaller(1.0, 300, 1024, size=4 * CLIP_MAX_BYTES, limit=CLIP_MAX_BYTES)
    assert scale == pytest.approx(0.4472, abs=1e-3) and frames == 300
    scale, frames = smaller(0.25, 300, 1024, size=4 * CLIP_MAX_BYTES, limit=CLIP_MAX_BYTES)
    assert scale == pytest.approx(240 / 1024) and frames < 300
    assert frames == int(300 * 0.2 / (240 / 1024 / 0.25) ** 2)


def test_the_least_sure_frames_come_first_and_spread_out() -> None:
    doubts = [Doubt(i, 2, 0, 0.9) for i in range(40)]
    doubts[7] = Doubt(7, 1, 0, 0.9)  # an animal missed
    doubts[8] = Doubt(8, 1, 0, 0.95)  # its neighbour, as unsure: waits
    doubts[20] = Doubt(20, 2, 3, 0.9)  # body parts missing
    doubts[30] = Doubt(30, 2, 0, 0.2)  # a low score
    doubts[34] = Doubt(34, 0)  # nothing found
    assert [d.frame for d in least_sure(doubts, 4)] == [34, 7, 20, 30]
    # Asked for every frame, none waits: the order is the order of doubt.
    assert [d.frame for d in least_sure(doubts, 40)][:6] == [34, 7, 8, 20, 30, 0]
    assert sorted(d.frame for d in least_sure(doubts, 40)) == list(range(40))
    # A neighbour that waited is taken when nothing else is left.
    near = [Doubt(0), Doubt(1), Doubt(2), Doubt(20)]
    assert [d.frame for d in least_sure(near, 4)] == [0, 2, 20, 1]
    assert least_sure(doubts, 0) == [] and least_sure([], 5) == []
    assert caption(doubts[34], 2) == "frame 34: no animal found (usually 2)"
    assert caption(doubts[7], 2) == "frame 7: 1 of 2 animals found, confidence 0.90"
    assert caption(doubts[20], 2) == "frame 20: 2 animals found, 3 body parts missing, " + (
        "confidence 0.90"
    )


def test_what_the_summary_says_about_the_views() -> None:
    made = ClipMade(Path("c.mp4"), list(range(44)), 30.0, planned=300, stopped=True)
    assert clip_line(made, "v.mp4", 60) == (
        "Clip: frames 0-43 of v.mp4, 1.5 s of the 10.0 s asked (8.5 s short): "
        "rendering stopped at its 60 s limit."
    )
    cut = ClipMade(Path("c.mp4"), list(range(150)), 30.0, planned=300, smaller=True)
    assert clip_line(cut, "v.mp4", 60) == (
        "Clip: frames 0-149 of v.mp4, 5.0 s of the 10.0 s asked: cut 5.0 s short to stay "
        "under 45 MB."
    )
    assert suggestions_line(3, "x.pkg.slp").startswith(
        "Frames to label next: 3 frames where the model is least sure. Open x.pkg.slp"
    )


def test_view_params_and_their_refusals() -> None:
    assert views_asked({}) == (10, 10)
    assert views_asked({"preview": False, "preview_seconds": 5, "suggest": 0}) == (0, 0)
    assert views_asked({"preview_seconds": 3, "suggest": 50}) == (3, 50)
    assert view_times(None) == (60.0, 180.0) and view_times(2.0) == (30.0, 60.0)

    def infer(**params: str) -> JobSpec:
        inputs = {"model": "3", "input": "v.mp4"}
        return KIND.validate(JobSpec("sleap", Action.INFER, inputs, dict(params)))

    assert infer(preview="no", preview_seconds="5", suggest="0").params["preview"] is False
    for params, message in [
        ({"suggest": "51"}, "params.suggest: must be at most 50, got '51'"),
        ({"suggest": "-1"}, "params.suggest: must be at least 0, got '-1'"),
        ({"preview_seconds": "0"}, "params.preview_seconds: must be at least 1, got '0'"),
        ({"preview_seconds": "61"}, "params.preview_seconds: must be at most 60, got '61'"),
        ({"preview": "maybe"}, "params.preview: must be yes or no, got 'maybe'"),
    ]:
        with pytest.raises(SpecError) as caught:
            infer(**params)
        assert str(caught.value) == message

    def train(inputs: dict[str, str], **params: str) -> JobSpec:
        return KIND.validate(JobSpec("sleap", Action.TRAIN, inputs, dict(params)))

    assert train({"input": "example"}, suggest="3").params["suggest"] == 3
    assert train({"input": "p.slp.training_job.zip"}, infer="yes", preview="no")
    with pytest.raises(SpecError) as caught:
        train({"input": "p.slp"}, suggest="3")
    assert caught.value.field == "params.suggest"
    assert "this training predicts nothing: add infer=yes" in caught.value.message

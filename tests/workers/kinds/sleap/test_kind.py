"""SLEAP jobs through the engine: real sleap-nn training and inference on tiny data."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import pytest

from tests.helpers.engine import WaitForState, notices
from tests.helpers.waiting import eventually
from tests.helpers.wandb_files import wandb_history
from tests.loopback.wandb_server import WandbServer
from workers.engine import Engine, EngineSettings
from workers.events import FileReady
from workers.jobs import Action, Job, JobSpec, JobState, Progress
from workers.kinds.base import JobContext
from workers.kinds.registry import default_registry
from workers.kinds.sleap.kind import SleapKind
from workers.kinds.sleap.plan import load_plan
from workers.kinds.sleap.progress import parse_log
from workers.kinds.sleap.tools.device import gpu_driver_present
from workers.kinds.sleap.tools.metrics import GIVEN_CENTROIDS
from workers.quality import Quality, comparison, fingerprint
from workers.results.local import LocalResults
from workers.safety.environment import step_environment
from workers.store.database import Store
from workers.wandb.runs import WandbSettings, offline_runs

pytestmark = pytest.mark.timeout(600)


TINY = {
    "epochs": "2",
    "steps_per_epoch": "1",
    "batch": "4",
    "model_config.backbone_config.unet.filters": "8",
}


LEARNS = {
    "epochs": "4",
    "steps_per_epoch": "10",
    "batch": "4",
    "model_config.backbone_config.unet.filters": "8",
    "model_config.backbone_config.unet.output_stride": "4",
    "trainer_config.optimizer.lr": "0.003",
    "data_config.use_augmentations_train": "false",
}
"""Short training that still finds the animal at sleap-nn's evaluation threshold (0.2), so
the held-out frames are scored (with TINY's two steps nothing is found)."""
SINGLE = {
    "model_config.head_configs.single_instance.confmaps.output_stride": "4",
    "model_config.head_configs.single_instance.confmaps.sigma": "5",
}
TOP_DOWN = {
    "model_config.head_configs.centroid.confmaps.output_stride": "4",
    "model_config.head_configs.centered_instance.confmaps.output_stride": "4",
    "model_config.head_configs.centered_instance.confmaps.sigma": "5",
}
CARD = "training card: loss curve and held-out scores"

TRAIN_TIMEOUT = 240.0


def submit(engine: Engine, action: Action, inputs: dict[str, str], **params: str) -> Job:
    """Submit a SLEAP job."""
    return engine.submit(JobSpec("sleap", action, inputs, dict(params)))


def outputs(engine: Engine, job_id: int) -> dict[str, list[Path]]:
    """The kept outputs by role."""
    found: dict[str, list[Path]] = {}
    for item in engine.store.outputs(job_id):
        found.setdefault(item.role, []).append(Path(item.path))
    return found


def photos(engine: Engine, job_id: int) -> list[str]:
    """Captions of the pictures sent to the chat."""
    return [
        e.payload.caption
        for e in engine.store.events_for(job_id)
        if isinstance(e.payload, FileReady) and e.payload.photo
    ]


def step_names(log: Path) -> list[str]:
    """The steps a job ran, in order, from its log."""
    prefix = "=== colabot step: "
    return [
        line[len(prefix) :].removesuffix(" ===")
        for line in log.read_text().splitlines()
        if line.startswith(prefix)
    ]


def watch_progress(engine: Engine) -> list[tuple[int, Progress]]:
    """Every progress report from now on."""
    seen: list[tuple[int, Progress]] = []
    engine.on_progress(lambda job_id, progress: seen.append((job_id, progress)))
    return seen


def sleap_nn_scores(model: Path) -> dict[str, float | None]:
    """The numbers sleap-nn wrote for a model's validation frames, read here on their own."""
    data = json.loads((model / "metrics.val.0.json").read_text())
    if "detection_metrics" in data:
        detection, distance = data["detection_metrics"], data["distance_metrics"]
        return {
            "F1": detection["f1"],
            "precision": detection["precision"],
            "recall": detection["recall"],
            "distance p50": distance["p50"],
            "distance p90": distance["p90"],
        }
    voc, pck, distance = data["voc_metrics"], data["pck_metrics"], data["distance_metrics"]
    return {
        "mOKS": data["mOKS"]["mOKS"],
        "OKS mAP": voc["oks_voc.mAP"],
        "OKS mAR": voc["oks_voc.mAR"],
        "mPCK": pck["mPCK"],
        "PCK@5px": pck["PCK@5"],
        "PCK@10px": pck["PCK@10"],
        "distance p50": distance["p50"],
        "distance p95": distance["p95"],
    }


def reported(quality: Quality | None) -> dict[tuple[str, str], dict[str, float | None]]:
    """The scores colabot kept, by model and split."""
    assert quality is not None
    return {(m.model, m.split): {s.name: s.value for s in m.scores} for m in quality.models}


async def succeed(engine: Engine, wait_for_state: WaitForState, job: Job) -> Job:
    """Wait for the job to end; fail with its reason and log tail unless it succeeded."""
    done = await wait_for_state(engine, job.id, timeout=TRAIN_TIMEOUT)
    if done.state is not JobState.SUCCEEDED:
        tail = "\n".join(engine.log_tail(job.id, 40))
        raise AssertionError(f"job {job.id} {done.state}: {done.error}\n{tail}")
    return done


async def test_train_on_labels_beside_their_images_then_infer(
    engine: Engine, wait_for_state: WaitForState, sleap_inputs: dict[str, Path], input_root: Path
) -> None:
    seen = watch_progress(engine)
    # Enough steps, fast enough, for the model to find something to draw.
    params = {**TINY, "steps_per_epoch": "10", "trainer_config.optimizer.lr": "0.003"}
    job = submit(
        engine, Action.TRAIN, {"input": str(sleap_inputs["slp_png"])}, run_name="bugs", **params
    )
    await succeed(engine, wait_for_state, job)

    summary = notices(engine, job.id)[0]
    assert "labels.slp: 8 labeled frames" in summary and "8 instances" in summary
    assert "skeleton 'bug': head, thorax, tail" in summary
    assert "beside the labels: img_000.png (+7 images)" in summary
    assert "Training on the CPU" in summary
    messages = [p.message for job_id, p in seen if job_id == job.id]
    assert messages[-1].startswith("epoch 2 of 2 · step 10 of 10 · ")
    assert "train loss" in messages[-1] and "val loss" in messages[-1]
    assert any(p.eta_s is not None for job_id, p in seen if job_id == job.id)

    kept = outputs(engine, job.id)
    (model,) = kept["model"]
    assert model.name == "bugs"
    assert {"best.ckpt", "last.ckpt", "training_config.yaml"} <= {p.name for p in model.iterdir()}
    assert [r.epoch for r in parse_log((model / "training_log.csv").read_text())] == [0, 1]
    assert photos(engine, job.id) == [CARD]
    assert kept["plot"][0].read_bytes().startswith(b"\x89PNG")
    done = engine.job(job.id)
    assert done.summary.startswith("Trained 1 model: single_instance: 2 epochs")

    ctx = JobContext(engine.job(job.id), engine.workdir(job.id), {}, sys.executable, print)
    checkpoint = SleapKind().checkpoint(ctx)
    assert checkpoint is not None
    assert sorted(p.name for p in (checkpoint / "bugs").iterdir()) == [
        "FINISHED",
        "best.ckpt",
        "initial_config.yaml",
        "training_config.yaml",
        "training_log.csv",
    ]

    infer = submit(
        engine,
        Action.INFER,
        {"model": str(job.id), "input": str(sleap_inputs["video"])},
        frames="0-5",
        peak_threshold="0",
    )
    await succeed(engine, wait_for_state, infer)
    assert "Video: new_video.mp4: 8 frames, 96x96" in notices(engine, infer.id)[0]
    predicted = [p for job_id, p in seen if job_id == infer.id]
    assert predicted[-1].message.startswith("frames 6 of 6")
    kept = outputs(engine, infer.id)
    assert [p.name for p in kept["predictions"]] == ["new_video.mp4.predictions.slp"]
    exports = {p.name: p for p in kept["export"]}
    assert set(exports) == {
        "new_video.mp4.predictions.csv",
        "new_video.mp4.predictions.analysis.h5",
    }
    header = exports["new_video.mp4.predictions.csv"].read_text().splitlines()[0]
    assert "head.x" in header and "tail.y" in header
    with h5py.File(exports["new_video.mp4.predictions.analysis.h5"]) as analysis:
        nodes = [n.decode() for n in analysis["node_names"][:]]
        assert nodes == ["head", "thorax", "tail"] and analysis["tracks"].shape[1:3] == (2, 3)
    # On a video, a clip and the frames to label next show the predictions (test_preview.py).
    assert photos(engine, infer.id) == []
    assert [p.name for p in kept["clip"]] == ["new_video.mp4.clip.mp4"]
    assert len(kept["label next"]) == 6 and len(kept["suggestions"]) == 1
    assert "predicted 6 frames of new_video.mp4" in engine.job(infer.id).summary.lower()

    # The model as a zip (as results hand it out), run on labels whose video is beside them.
    packed = shutil.make_archive(str(input_root / "bugs-model"), "zip", model.parent, model.name)
    on_labels = submit(
        engine, Action.INFER, {"model": packed, "input": str(sleap_inputs["slp_mp4"])}
    )
    await succeed(engine, wait_for_state, on_labels)
    assert "(beside the labels: video.mp4)" in notices(engine, on_labels.id)[0]
    assert "Models: single_instance (bugs)" in notices(engine, on_labels.id)[0]
    kept = outputs(engine, on_labels.id)
    assert [p.name for p in kept["predictions"]] == ["labels.predictions.slp"]
    assert "predicted 8 frames of labels.slp" in engine.job(on_labels.id).summary.lower()
    (caption,) = photos(engine, on_labels.id)
    assert caption.startswith("preview: frame")


async def test_a_training_reports_sleap_nn_s_held_out_scores_on_a_card(
    engine: Engine, wait_for_state: WaitForState, sleap_inputs: dict[str, Path], tmp_path: Path
) -> None:
    pkg = str(sleap_inputs["pkg"])
    params = {**LEARNS, **SINGLE}
    job = submit(engine, Action.TRAIN, {"input": pkg}, **params)
    await succeed(engine, wait_for_state, job)
    (model,) = outputs(engine, job.id)["model"]
    expected = sleap_nn_scores(model)
    quality = engine.quality(job.id)
    assert reported(quality) == {("single_instance", "val"): expected}
    assert quality is not None and quality.data == fingerprint([sleap_inputs["pkg"]])
    assert quality.params == dict(engine.job(job.id).spec.params)
    assert quality.params["epochs"] == 4
    summary = engine.job(job.id).summary
    assert (
        f"\nsingle_instance (val): mOKS {expected['mOKS']:.3f} · OKS mAP "
        f"{expected['OKS mAP']:.3f} · OKS mAR {expected['OKS mAR']:.3f} · mPCK "
        f"{expected['mPCK']:.3f}"
    ) in summary
    assert photos(engine, job.id) == [CARD]
    (card,) = outputs(engine, job.id)["plot"]
    assert card.name == "training-card.png" and card.read_bytes().startswith(b"\x89PNG")

    # The same training on the same data, asked for differently: compared with the first by
    # the headline score, and what it asked for differently is named. Two steps find no
    # animal at sleap-nn's threshold: that run scores nothing, and its line says why (no
    # comparison with the job before: there is no score to compare). Both at once.
    again = submit(engine, Action.TRAIN, {"input": pkg}, device="cpu", **params)
    quick = submit(engine, Action.TRAIN, {"input": pkg}, **TINY)
    await succeed(engine, wait_for_state, again)
    await succeed(engine, wait_for_state, quick)
    now, before = engine.quality(again.id), engine.quality(job.id)
    assert now is not None and before is not None and now.data == before.data
    compared = comparison(now, before, job.id)
    assert compared[0].startswith("single_instance: mOKS ")
    assert compared[0].endswith(f" vs #{job.id}")
    assert compared[1:] == ["differing parameters: device auto → cpu"]
    assert engine.job(again.id).summary.splitlines()[-2:] == compared

    (short,) = outputs(engine, quick.id)["model"]
    assert not list(short.glob("metrics.val.*"))
    line = (
        "single_instance (val): not evaluated: the model found no animal in the val frames at "
        "sleap-nn's peak threshold 0.2 (train longer, or label more frames)"
    )
    assert line in engine.job(quick.id).summary.splitlines()
    assert " vs #" not in engine.job(quick.id).summary
    assert reported(engine.quality(quick.id)) == {("single_instance", "val"): {}}

    # /compare's picture: both jobs' loss curves, drawn by the kind's plot step.
    both = tmp_path / "both.png"
    step = SleapKind().plot(
        engine.workdir(job.id), sys.executable, both, compare=engine.workdir(again.id)
    )
    assert step is not None
    drawn = subprocess.run(
        step.argv, env=step_environment(step.env), capture_output=True, text=True, timeout=120
    )
    assert drawn.returncode == 0, drawn.stdout + drawn.stderr
    assert both.read_bytes().startswith(b"\x89PNG")
    lonely = tmp_path / "7"
    (lonely / "work").mkdir(parents=True)
    step = SleapKind().plot(engine.workdir(job.id), sys.executable, both, compare=lonely)
    assert step is not None
    refused = subprocess.run(
        step.argv, env=step_environment(step.env), capture_output=True, text=True, timeout=120
    )
    assert (refused.returncode, refused.stdout) == (2, "colabot-plot: job #7 planned no training\n")


async def test_a_package_trains_each_model_in_order_and_resume_skips_finished_ones(
    engine: Engine,
    engine_settings: EngineSettings,
    store: Store,
    wait_for_state: WaitForState,
    sleap_inputs: dict[str, Path],
) -> None:
    seen = watch_progress(engine)
    params = {**LEARNS, **TOP_DOWN}
    job = submit(
        engine, Action.TRAIN, {"input": str(sleap_inputs["package"])}, infer="yes", **params
    )
    await eventually(
        lambda: engine.current_step(job.id).startswith("train centered_instance"),
        timeout=TRAIN_TIMEOUT,
        what="the second model's training",
    )
    first = [p.message for job_id, p in seen if job_id == job.id]
    assert any(m.startswith("model 1 of 2: centroid · epoch 4 of 4") for m in first)
    await engine.stop()
    assert engine.job(job.id).state is JobState.INTERRUPTED

    again = Engine(engine_settings, store, default_registry())
    seen = watch_progress(again)
    await again.start()
    try:
        again.resume(job.id)
        await succeed(again, wait_for_state, job)
    finally:
        await again.stop()

    log = engine.workdir(job.id) / "job.log"
    steps = step_names(log)
    second = steps[len(steps) - 1 - steps[::-1].index("prepare") :]
    assert second == [
        "prepare",
        "train centered_instance (model 2 of 2)",
        "finish training",
        "predict project.pkg.slp",
        "export",
    ]
    assert "Model 1 (centroid) was finished before: kept." in notices(engine, job.id)[-1]
    assert (
        "Training package: 2 model(s) to train in order (centroid, centered_instance), "
        "then 1 inference job(s)"
    ) in notices(engine, job.id)[0]
    messages = [p.message for job_id, p in seen if job_id == job.id]
    assert any(m.startswith("model 2 of 2: centered_instance · epoch") for m in messages)
    kept = outputs(engine, job.id)
    assert sorted(p.name for p in kept["model"]) == [
        "260101_120000.centered_instance.n=7",
        "260101_120000.centroid.n=7",
    ]
    assert all((p / "best.ckpt").is_file() for p in kept["model"])
    assert [p.name for p in kept["predictions"]] == ["project.pkg.slp.predictions.slp"]
    assert "training card: loss curves and held-out scores" in photos(engine, job.id)

    # The held-out scores are sleap-nn's own, model by model (the centroid model's from
    # before the interruption), and the centered_instance's say they assume true centroids.
    centroid, centered = sorted(kept["model"], key=lambda p: "centered" in p.name)
    quality = store.quality(job.id)
    assert reported(quality) == {
        ("centroid", "val"): sleap_nn_scores(centroid),
        ("centered_instance", "val"): sleap_nn_scores(centered),
    }
    assert quality is not None and quality.models[1].note == GIVEN_CENTROIDS
    assert quality.data == fingerprint([engine.workdir(job.id) / "work/package/project.pkg.slp"])
    summary = engine.job(job.id).summary
    f1 = sleap_nn_scores(centroid)["F1"]
    assert f1 is not None and f"centroid (val): F1 {f1:.3f} · precision" in summary
    assert f"\nnote on centered_instance (val): {GIVEN_CENTROIDS}" in summary
    # Each score line is the kept quality's own, so /results does not say it twice.
    assert all(line in summary.splitlines() for line in quality.lines())


async def test_a_sleap_1_4_package_with_json_configs_trains(
    engine: Engine, wait_for_state: WaitForState, sleap_inputs: dict[str, Path]
) -> None:
    seen = watch_progress(engine)
    job = submit(
        engine,
        Action.TRAIN,
        {"input": str(sleap_inputs["package14"])},
        epochs="1",
        steps_per_epoch="2",
        **{"trainer_config.enable_progress_bar": "true"},
    )
    await succeed(engine, wait_for_state, job)
    # The bar is in the log; the progress within each epoch comes over the live sockets.
    steps = [p.message for j, p in seen if j == job.id and "· step " in p.message]
    assert steps and steps[-1].startswith("epoch 1 of 1 · step 2 of 2")
    assert "Epoch 0: 100%" in (engine.workdir(job.id) / "job.log").read_text()
    work = engine.workdir(job.id) / "work"
    config = (work / "configs" / "1-single_instance.yaml").read_text()
    assert str(work / "package" / "project14.pkg.slp") in config
    (model,) = outputs(engine, job.id)["model"]
    assert model.name == "260101_120000.single_instance" and (model / "best.ckpt").is_file()
    assert "frames embedded in the file" in notices(engine, job.id)[0]


async def test_resume_on_a_fresh_machine_continues_after_the_saved_epoch(
    engine_settings: EngineSettings,
    store: Store,
    wait_for_state: WaitForState,
    sleap_inputs: dict[str, Path],
    tmp_path: Path,
) -> None:
    results = LocalResults(tmp_path / "results")
    engine = Engine(engine_settings, store, default_registry(), results=results)
    seen = watch_progress(engine)
    await engine.start()
    params = {**TINY, "epochs": "4", "steps_per_epoch": "25", "seed": "7"}
    job = submit(engine, Action.TRAIN, {"input": str(sleap_inputs["pkg"])}, **params)
    try:

        def first_epoch_saved() -> bool:
            if not any(j == job.id and (p.step or 0) >= 1 for j, p in seen):
                return False
            saved = engine.checkpoint_of(job.id)
            return saved is not None and (saved / "single_instance" / "last.ckpt").is_file()

        await eventually(first_epoch_saved, timeout=TRAIN_TIMEOUT, what="the first epoch")
        saved = engine.checkpoint_of(job.id)
        assert saved is not None and saved.name == "sleap-resume"
        names = {p.name for p in (saved / "single_instance").iterdir()}
        assert {"last.ckpt", "best.ckpt", "training_config.yaml", "training_log.csv"} <= names
        assert not any(n.startswith("labels_") for n in names)
        store.set_checkpoint(job.id, results.sync_checkpoint(job.id, saved))
    finally:
        await engine.stop()
    assert engine.job(job.id).state is JobState.INTERRUPTED
    if engine.job(job.id).progress.step == 4:
        pytest.skip("the machine was too slow to stop the training before it ended")
    shutil.rmtree(engine.workdir(job.id))

    again = Engine(engine_settings, store, default_registry(), results=results)
    seen = watch_progress(again)
    await again.start()
    try:
        again.resume(job.id)
        await succeed(again, wait_for_state, job)
    finally:
        await again.stop()

    workdir = engine.workdir(job.id)
    assert (workdir / "restored" / "sleap-resume" / "single_instance" / "last.ckpt").is_file()
    plan = load_plan(workdir / "work")
    assert plan is not None
    start = plan.models[0].start_epoch
    assert 1 <= start < 4
    assert "Restored all states from the checkpoint" in (workdir / "job.log").read_text()
    assert f"continues after epoch {start} of 4" in notices(engine, job.id)[-1]
    resumed = [p.message for j, p in seen if j == job.id]
    assert resumed and all(
        not m.startswith(f"epoch {n} ") for m in resumed for n in range(1, start + 1)
    )
    (model,) = outputs(engine, job.id)["model"]
    assert [r.epoch for r in parse_log((model / "training_log.csv").read_text())] == [0, 1, 2, 3]


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def _without(package: Path, dest: Path, suffix: str) -> Path:
    with zipfile.ZipFile(package) as archive:
        kept = {n: archive.read(n) for n in archive.namelist() if not n.endswith(suffix)}
    return _zip(dest, kept)


def _bomb(path: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("jobs.yaml", b"\0" * (60 * 1024 * 1024))
    path.write_bytes(buffer.getvalue())
    return path


BAD_INPUTS: dict[str, tuple[Callable[[dict[str, Path]], dict[str, str]], dict[str, str], str]] = {
    "not hdf5": (
        lambda d: {"input": str(_write(d["pkg"].parent / "fake.slp", b"just text"))},
        {},
        "fake.slp is not a SLEAP labels file: a .slp file is HDF5",
    ),
    "no instances": (lambda d: {"input": str(d["empty"])}, {}, "has no instances labelled"),
    "missing video": (
        lambda d: {"input": str(d["lonely"])},
        {},
        "video not found: video.mp4. Put the video files in the same folder as the labels",
    ),
    "zip without jobs.yaml": (
        lambda d: {"input": str(_zip(d["pkg"].parent / "labels.zip", {"a.slp": b"x"}))},
        {},
        "labels.zip is not a SLEAP training package: it has no jobs.yaml",
    ),
    "zip without labels": (
        lambda d: {"input": str(_without(d["package"], d["pkg"].parent / "nolabels.zip", ".slp"))},
        {},
        "nolabels.zip is missing a file: jobs.yaml names the labels file project.pkg.slp",
    ),
    "zip slip": (
        lambda d: {"input": str(_zip(d["pkg"].parent / "slip.zip", {"../evil.sh": b"x"}))},
        {},
        "slip.zip: entry '../evil.sh' points outside the archive folder",
    ),
    "absolute entry": (
        lambda d: {"input": str(_zip(d["pkg"].parent / "abs.zip", {"/etc/cron.d/x": b"x"}))},
        {},
        "abs.zip: entry '/etc/cron.d/x' has an absolute path",
    ),
    "zip bomb": (
        lambda d: {"input": str(_bomb(d["pkg"].parent / "bomb.zip"))},
        {},
        "bomb.zip: entry 'jobs.yaml' is compressed suspiciously well (zip bomb?)",
    ),
    "unknown override": (
        lambda d: {"input": str(d["pkg"])},
        {"trainer_config.max_epoch": "3", "model_config.nothing.here": "1"},
        "unknown config keys: trainer_config.max_epoch (did you mean trainer_config.max_epochs?);"
        " model_config.nothing",
    ),
    "override for another model type": (
        lambda d: {"input": str(d["pkg"])},
        {"model_config.head_configs.centroid.confmaps.sigma": "3"},
        "model_config.head_configs.centroid is not used by this model",
    ),
    "bad override value": (
        lambda d: {"input": str(d["pkg"])},
        {"trainer_config.max_epochs": "many"},
        "config values that do not fit: trainer_config.max_epochs=many",
    ),
    "config with unknown keys": (
        lambda d: {
            "input": str(d["pkg"]),
            "config": str(
                _write(
                    d["pkg"].parent / "cfg.yaml",
                    b"model_config:\n  backbone_config:\n    unet: {}\n"
                    b"trainer_config:\n  max_epocs: 3\n",
                )
            ),
        },
        {},
        "the config cfg.yaml is not a valid sleap-nn config",
    ),
    "unknown anchor": (
        lambda d: {"input": str(d["pkg"])},
        {"preset": "topdown", "anchor": "nose"},
        "anchor=nose is not a node of the skeleton (head, thorax, tail)",
    ),
    "gpu without cuda": (
        lambda d: {"input": str(d["pkg"])},
        {"device": "gpu"},
        "device=gpu was asked for, but this machine has no usable CUDA GPU",
    ),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def test_bad_training_input_is_refused_before_training(
    engine: Engine, wait_for_state: WaitForState, sleap_inputs: dict[str, Path]
) -> None:
    jobs = {}
    for case, (make_inputs, params, _expected) in BAD_INPUTS.items():
        if case == "gpu without cuda" and gpu_driver_present():
            continue
        jobs[case] = submit(engine, Action.TRAIN, make_inputs(sleap_inputs), **params)
    wrong = []
    for case, job in jobs.items():
        done = await wait_for_state(engine, job.id, timeout=180)
        expected = BAD_INPUTS[case][2]
        ran = step_names(engine.workdir(job.id) / "job.log")
        if (
            done.state is not JobState.FAILED
            or expected not in (done.error or "")
            or ran != ["prepare"]
        ):
            wrong.append(f"{case}: {done.state} {done.error!r} after {ran}")
    assert not wrong, "\n".join(wrong)


async def test_inference_refuses_a_missing_video_and_a_half_top_down_pair(
    engine: Engine, wait_for_state: WaitForState, sleap_inputs: dict[str, Path], input_root: Path
) -> None:
    for head in ("centered_instance", "single_instance"):
        model = input_root / head
        model.mkdir()
        (model / "training_config.yaml").write_text(
            f"model_config:\n  head_configs:\n    {head}: {{confmaps: {{}}}}\n"
        )
        (model / "best.ckpt").write_bytes(b"weights")
    video, lonely_labels = str(sleap_inputs["video"]), str(sleap_inputs["lonely"])
    half = submit(engine, Action.INFER, {"model": "centered_instance", "input": video})
    lonely = submit(engine, Action.INFER, {"model": "single_instance", "input": lonely_labels})
    results = await asyncio.gather(
        wait_for_state(engine, half.id, timeout=120), wait_for_state(engine, lonely.id, timeout=120)
    )
    assert [r.state for r in results] == [JobState.FAILED, JobState.FAILED]
    assert "a centered_instance model needs its centroid model too" in (results[0].error or "")
    assert "video not found: video.mp4" in (results[1].error or "")


FAKE_WANDB_KEY = "0123456789abcdef0123456789abcdef01234567"


async def test_a_wandb_run_offline_logs_the_losses_and_stays_with_the_model(
    engine_settings: EngineSettings,
    store: Store,
    wait_for_state: WaitForState,
    sleap_inputs: dict[str, Path],
) -> None:
    settings = dataclasses.replace(
        engine_settings, wandb=WandbSettings(api_key=FAKE_WANDB_KEY, mode="offline")
    )
    engine = Engine(settings, store, default_registry())
    await engine.start()
    try:
        job = submit(engine, Action.TRAIN, {"input": str(sleap_inputs["pkg"])}, wandb="yes", **TINY)
        done = await succeed(engine, wait_for_state, job)
    finally:
        await engine.stop()
    (model,) = outputs(engine, job.id)["model"]
    (run,) = offline_runs(model)
    history = wandb_history(run)
    logged = [row["val/loss"] for row in history if "val/loss" in row]
    epochs = parse_log((model / "training_log.csv").read_text())
    assert logged == pytest.approx([row.val_loss for row in epochs])
    assert "wandb sync models/" in done.summary and "offline-run-" in done.summary
    config = (model / "training_config.yaml").read_text()
    assert "use_wandb: true" in config and "wandb_mode: offline" in config
    log = (engine.workdir(job.id) / "job.log").read_text()
    assert FAKE_WANDB_KEY not in log and FAKE_WANDB_KEY not in config


async def test_a_key_wandb_rejects_turns_the_run_offline_with_a_note(
    engine_settings: EngineSettings,
    store: Store,
    wait_for_state: WaitForState,
    sleap_inputs: dict[str, Path],
    wandb_server: WandbServer,
) -> None:
    refused = WandbSettings(api_key=FAKE_WANDB_KEY, mode="online", base_url=wandb_server.base)
    engine = Engine(dataclasses.replace(engine_settings, wandb=refused), store, default_registry())
    await engine.start()
    try:
        job = submit(engine, Action.TRAIN, {"input": str(sleap_inputs["pkg"])}, **TINY)
        done = await succeed(engine, wait_for_state, job)
    finally:
        await engine.stop()
    assert wandb_server.seen_keys == [FAKE_WANDB_KEY]
    assert "W&B did not accept this run" in notices(engine, job.id)[0]
    (model,) = outputs(engine, job.id)["model"]
    assert "wandb_mode: offline" in (model / "training_config.yaml").read_text()
    assert offline_runs(model) and "wandb sync " in done.summary

"""Small synthetic SLEAP data: a bug-like animal with three body parts on plain frames.

Used by ``/train sleap example`` and by anyone who wants data to try the SLEAP kind with:
labels with videos beside them (an mp4 and a PNG image sequence), a ``.pkg.slp`` with
embedded frames, and training job packages in the layout the SLEAP GUI exports (``jobs.yaml``
with ``<head>.yaml`` configs as SLEAP 1.5+ writes them, or ``<head>.json`` as SLEAP 1.4 did).

Runs in job subprocesses only: it imports numpy and sleap-io.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import sleap_io as sio

NODES = ("head", "thorax", "tail")
EDGES = (("head", "thorax"), ("thorax", "tail"))
ANCHOR = "thorax"


@dataclass(frozen=True)
class Scene:
    """Frames and the true body-part positions (frames x animals x nodes x 2)."""

    frames: np.ndarray
    points: np.ndarray


def draw_scene(n_frames: int, size: int = 128, animals: int = 1, seed: int = 0) -> Scene:
    """Grayscale frames of ``animals`` bugs in random poses, with their body-part positions."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = np.full((n_frames, size, size), 30, np.uint8)
    points = np.zeros((n_frames, animals, len(NODES), 2), np.float32)
    length = size * 0.2
    for i in range(n_frames):
        for a in range(animals):
            low, high = (
                (0.3, 0.7)
                if animals == 1
                else (0.2 + 0.6 * a / animals, 0.2 + 0.6 * (a + 1) / animals - 0.1)
            )
            center = np.array([rng.uniform(low, high) * size, rng.uniform(0.3, 0.7) * size])
            angle = rng.uniform(0, 2 * np.pi)
            direction = np.array([np.cos(angle), np.sin(angle)], np.float32)
            head, tail = center + length * direction, center - length * direction
            # An elongated body with a distinct disc on each body part, so each is findable.
            dx, dy = xx - center[0], yy - center[1]
            along = dx * direction[0] + dy * direction[1]
            across = -dx * direction[1] + dy * direction[0]
            body = (along / (length * 1.3)) ** 2 + (across / (length * 0.45)) ** 2 <= 1.0
            frames[i][body] = 80
            for spot, radius, shade in ((head, 0.45, 255), (center, 0.35, 200), (tail, 0.3, 150)):
                disc = (xx - spot[0]) ** 2 + (yy - spot[1]) ** 2 <= (length * radius) ** 2
                frames[i][disc] = shade
            points[i, a] = np.stack([head, center, tail])
    return Scene(frames, points)


def skeleton() -> sio.Skeleton:
    """The three-node skeleton of the synthetic bug."""
    import sleap_io as sio

    return sio.Skeleton(nodes=list(NODES), edges=[list(e) for e in EDGES], name="bug")


def write_mp4(frames: np.ndarray, path: Path) -> Path:
    """Write frames as a lossless H.264 mp4."""
    import imageio

    writer = imageio.get_writer(
        str(path),
        fps=10,
        codec="libx264",
        quality=None,
        ffmpeg_params=["-crf", "0"],
        macro_block_size=16,
    )
    try:
        for frame in frames:
            writer.append_data(frame)
    finally:
        writer.close()
    return path


def write_pngs(frames: np.ndarray, folder: Path) -> list[Path]:
    """Write frames as ``img_000.png``, ... in ``folder``."""
    import imageio.v3 as iio

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = folder / f"img_{i:03d}.png"
        iio.imwrite(path, frame)
        paths.append(path)
    return paths


def labels_for(
    video: sio.Video, scene: Scene, labeled: list[int] | None = None, suggest: tuple[int, ...] = ()
) -> sio.Labels:
    """Labels with user instances on the ``labeled`` frames (all by default) of ``video``."""
    import sleap_io as sio

    sk = skeleton()
    frame_ids = range(len(scene.frames)) if labeled is None else labeled
    frames = [
        sio.LabeledFrame(
            video=video,
            frame_idx=i,
            instances=[sio.Instance.from_numpy(pts, skeleton=sk) for pts in scene.points[i]],
        )
        for i in frame_ids
    ]
    labels = sio.Labels(labeled_frames=frames, videos=[video], skeletons=[sk])
    labels.suggestions = [sio.SuggestionFrame(video=video, frame_idx=i) for i in suggest]
    return labels


@dataclass(frozen=True)
class ExampleData:
    """What :func:`make_example` wrote."""

    labels: Path
    video: Path
    new_video: Path


def make_example(folder: Path, frames: int = 16, size: int = 128) -> ExampleData:
    """A labelled mp4 (``labels.slp`` beside ``video.mp4``) and an unlabelled ``new_video.mp4``."""
    import sleap_io as sio

    folder.mkdir(parents=True, exist_ok=True)
    scene = draw_scene(frames, size, seed=0)
    video_path = write_mp4(scene.frames, folder / "video.mp4")
    labels = labels_for(sio.Video.from_filename(str(video_path.resolve())), scene)
    labels_path = folder / "labels.slp"
    labels.save(str(labels_path))
    new_video = write_mp4(draw_scene(frames, size, seed=1).frames, folder / "new_video.mp4")
    return ExampleData(labels_path, video_path, new_video)


def make_test_data(
    folder: Path, frames: int = 8, size: int = 96, animals: int = 1
) -> dict[str, Path]:
    """Every input form, in ``folder``: returns their paths by name.

    ``pkg``: ``labels.pkg.slp`` (embedded frames); ``slp_mp4``: ``mp4/labels.slp`` beside
    ``mp4/video.mp4``; ``slp_png``: ``png/labels.slp`` beside its ``img_*.png`` frames;
    ``video``: an mp4 of new frames; ``lonely``: labels whose video is nowhere; ``empty``:
    labels without instances. The media were written elsewhere and moved beside the labels
    afterwards, as when a project comes from another machine, so the stored video paths lead
    nowhere and using the labels needs the beside-the-labels lookup.
    """
    import shutil

    import sleap_io as sio

    folder.mkdir(parents=True, exist_ok=True)
    origin = folder / "origin"
    scene = draw_scene(frames, size, animals=animals, seed=0)
    mp4 = write_mp4(scene.frames, _fresh(origin / "mp4") / "video.mp4")
    pngs = write_pngs(scene.frames, origin / "png")
    paths: dict[str, Path] = {
        "pkg": folder / "labels.pkg.slp",
        "slp_mp4": _fresh(folder / "mp4") / "labels.slp",
        "slp_png": _fresh(folder / "png") / "labels.slp",
        "lonely": _fresh(folder / "lonely") / "labels.slp",
        "empty": folder / "mp4" / "empty.slp",
    }
    from_mp4 = labels_for(sio.Video.from_filename(str(mp4.resolve())), scene)
    from_mp4.save(str(paths["pkg"]), embed="user", verbose=False)
    from_mp4.save(str(paths["slp_mp4"]))
    from_mp4.save(str(paths["lonely"]))
    empty = labels_for(sio.Video.from_filename(str(mp4.resolve())), scene, labeled=[])
    empty.save(str(paths["empty"]))
    sequence = labels_for(sio.Video.from_filename([str(p.resolve()) for p in pngs]), scene)
    sequence.save(str(paths["slp_png"]))
    shutil.move(mp4, folder / "mp4" / mp4.name)
    for png in pngs:
        shutil.move(png, folder / "png" / png.name)
    shutil.rmtree(origin)
    new_frames = draw_scene(frames, size, animals=animals, seed=1).frames
    paths["video"] = write_mp4(new_frames, folder / "new_video.mp4")
    return paths


def _fresh(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------------- training packages


def _legacy_config(head: str) -> dict[str, Any]:
    """A SLEAP 1.4 ``<head>.json`` (the parts that matter; the rest keeps its defaults)."""
    heads: dict[str, Any] = {
        "single_instance": None,
        "centroid": None,
        "centered_instance": None,
        "multi_instance": None,
    }
    part_names = list(NODES)
    if head == "single_instance":
        heads[head] = {"part_names": part_names, "sigma": 2.5, "output_stride": 2}
    elif head == "centroid":
        heads[head] = {"anchor_part": ANCHOR, "sigma": 2.5, "output_stride": 2}
    else:
        heads[head] = {
            "anchor_part": ANCHOR,
            "part_names": part_names,
            "sigma": 2.5,
            "output_stride": 2,
        }
    return {
        "data": {
            "labels": {
                "training_labels": "C:\\Users\\lab\\project.slp",
                "validation_fraction": 0.1,
            },
            "preprocessing": {"input_scaling": 1.0},
            "instance_cropping": {"center_on_part": ANCHOR if head != "single_instance" else None},
        },
        "model": {
            "backbone": {
                "unet": {
                    "stem_stride": None,
                    "filters": 8,
                    "max_stride": 16,
                    "output_stride": 2,
                    "filters_rate": 1.5,
                    "middle_block": True,
                    "up_interpolate": True,
                    "stacks": 1,
                }
            },
            "heads": heads,
        },
        "optimization": {"batch_size": 4, "epochs": 200, "initial_learning_rate": 0.0001},
        "outputs": {"run_name": f"old.{head}", "runs_folder": "models"},
        "sleap_version": "1.4.1",
    }


def _modern_configs(labels_path: Path, heads: list[str]) -> dict[str, Any]:
    """Full sleap-nn configs per head, as SLEAP 1.5+ writes them into a package."""
    from sleap_nn.config.training_job_config import verify_training_cfg
    from sleap_nn.config_generator.generator import ConfigGenerator

    generator = ConfigGenerator.from_slp(str(labels_path)).auto()
    configs: dict[str, Any] = {}
    if heads == ["single_instance"]:
        generator.pipeline("single_instance")
        configs["single_instance"] = verify_training_cfg(generator.build())
    else:
        generator.pipeline("centroid")
        configs["centroid"] = verify_training_cfg(generator.build_centroid())
        configs["centered_instance"] = verify_training_cfg(generator.build_centered_instance())
        for head in ("centroid", "centered_instance"):
            configs[head].model_config.head_configs[head].confmaps.anchor_part = ANCHOR
    return configs


def make_package(
    labels_path: Path,
    dest: Path,
    *,
    style: str = "1.6",
    heads: tuple[str, ...] = ("centroid", "centered_instance"),
    suggest: tuple[int, ...] = (1,),
) -> Path:
    """A training job package zip like the SLEAP GUI's "Export Training Job Package".

    ``style`` "1.6" writes ``<head>.yaml`` sleap-nn configs, "1.4" writes legacy
    ``<head>.json`` configs. The ``suggest`` frames lose their labels and become suggestions;
    jobs.yaml asks to train every head and then to predict on those suggested frames.
    """
    import sleap_io as sio
    import yaml
    from omegaconf import OmegaConf

    project = "project14" if style == "1.4" else "project"
    pkg_name = f"{project}.pkg.slp"
    labels = sio.load_slp(str(labels_path))
    labels.labeled_frames = [lf for lf in labels.labeled_frames if lf.frame_idx not in suggest]
    labels.suggestions = [sio.SuggestionFrame(video=labels.video, frame_idx=i) for i in suggest]
    staging = dest.parent / f".{dest.name}.staging"
    staging.mkdir(parents=True, exist_ok=True)
    labels.save(str(staging / pkg_name), embed="all", verbose=False)
    training: list[dict[str, str]] = []
    run_paths: list[str] = []
    if style == "1.4":
        for head in heads:
            (staging / f"{head}.json").write_text(json.dumps(_legacy_config(head), indent=4))
            run_path = f"models/260101_120000.{head}"
            training.append({"cfg": f"{head}.json", "run_path": run_path, "train_labels": pkg_name})
            run_paths.append(run_path)
    else:
        configs = _modern_configs(staging / pkg_name, list(heads))
        n = len(labels.user_labeled_frames)
        for head, cfg in configs.items():
            run_name = f"260101_120000.{head}.n={n}"
            cfg.trainer_config.run_name = run_name
            cfg.trainer_config.ckpt_dir = "models"
            cfg.data_config.train_labels_path = [pkg_name]
            OmegaConf.save(cfg, staging / f"{head}.yaml")
            run_path = f"models/{run_name}"
            training.append({"cfg": f"{head}.yaml", "run_path": run_path, "train_labels": pkg_name})
            run_paths.append(run_path)
    jobs = {
        "training": training,
        "inference": [
            {
                "data_path": pkg_name,
                "models": run_paths,
                "output_path": f"{pkg_name}.predictions.slp",
                "type": "labels",
                "only_suggested_frames": True,
                "tracking": {"tracking.tracker": "none"},
            }
        ],
    }
    (staging / "jobs.yaml").write_text(yaml.safe_dump(jobs))
    (staging / "train-script.sh").write_text("#!/bin/bash\necho never run by colabot\nexit 1\n")
    (staging / "inference-script.sh").write_text("#!/bin/bash\nexit 1\n")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(staging.iterdir()):
            archive.write(path, path.name)
            path.unlink()
    staging.rmdir()
    return dest

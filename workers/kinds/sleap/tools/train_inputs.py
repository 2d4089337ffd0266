"""What a SLEAP training job was given: a labels file, a training package (a zip or folder
with jobs.yaml) or the built-in example, opened and checked before any training starts.

Every file a package's jobs.yaml names must lie inside the package and be there; a package
without jobs.yaml or labels is refused with what to send instead. Runs in a job subprocess.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from workers.inputs.archives import safe_extract, single_root
from workers.kinds.sleap.tools.errors import ToolError
from workers.kinds.sleap.tools.package import PackageError, PackageJobs, parse_jobs
from workers.quality import fingerprint
from workers.safety.names import shown
from workers.safety.paths import Refused, join_inside


@dataclass
class TrainingSource:
    """What a training input turned out to be."""

    labels: list[Path]
    package_dir: Path | None = None
    jobs: PackageJobs | None = None
    new_video: Path | None = None
    data: list[Path] = field(default_factory=list)
    """The files whose content is the training data, when not the labels and their videos."""


def _find_jobs_yaml(folder: Path) -> Path | None:
    root = single_root(folder)
    for candidate in (root / "jobs.yaml", root / "jobs.yml"):
        if candidate.is_file():
            return candidate
    return None


def package_file(root: Path, relative: str, name: str) -> Path:
    """A file jobs.yaml names, which must lie inside the package even after symlinks."""
    try:
        return join_inside(root, relative)
    except Refused as exc:
        raise ToolError(
            f"{name}: jobs.yaml names {shown(relative)}, which lies outside the package "
            f"({exc.reason})"
        ) from None


def open_package(folder: Path, name: str) -> TrainingSource:
    """An unpacked training package: read jobs.yaml and check every file it names."""
    import yaml

    jobs_file = _find_jobs_yaml(folder)
    if jobs_file is None:
        slps = sorted(
            p.name
            for p in folder.rglob("*.slp")
            if not p.name.startswith(("labels_gt.", "labels_pr."))
        )
        hint = f" (it holds {', '.join(slps[:3])}: send that file instead)" if slps else ""
        raise ToolError(
            f"{name} is not a SLEAP training package: it has no jobs.yaml{hint}. Export one "
            "from SLEAP with Predict > Run Training > Export Training Job Package"
        )
    try:
        jobs = parse_jobs(yaml.safe_load(jobs_file.read_text()))
    except yaml.YAMLError as exc:
        raise ToolError(f"{name}: jobs.yaml is not valid YAML ({exc})") from None
    except PackageError as exc:
        raise ToolError(f"{name}: {exc}") from None
    root = jobs_file.parent
    labels: list[Path] = []
    for entry in jobs.training:
        for wanted, what in ((entry.cfg, "config"), (entry.train_labels, "labels file")):
            package_file(root, wanted, name)
            if not (root / wanted).is_file():
                raise ToolError(
                    f"{name} is missing a file: jobs.yaml names the {what} {wanted}, "
                    "which is not in the package"
                )
        if root / entry.train_labels not in labels:
            labels.append(root / entry.train_labels)
    return TrainingSource(labels=labels, package_dir=root, jobs=jobs)


def open_training_input(path: Path, work: Path) -> TrainingSource:
    """A labels file, a package zip, or a folder holding one of them."""
    if path.is_dir():
        if _find_jobs_yaml(path) is not None:
            return open_package(path, path.name)
        slps = sorted(path.glob("*.slp"))
        if len(slps) != 1:
            found = ", ".join(p.name for p in slps) or "none"
            raise ToolError(
                f"the folder {path.name} should hold one .slp labels file or a jobs.yaml "
                f"(found: {found})"
            )
        return TrainingSource(labels=slps)
    if path.suffix.lower() == ".zip":
        folder = work / "package"
        if folder.exists():
            shutil.rmtree(folder)
        safe_extract(path, folder)
        return open_package(folder, path.name)
    if path.suffix.lower() == ".slp":
        return TrainingSource(labels=[path])
    raise ToolError(
        f"{path.name} is neither SLEAP labels (.slp, .pkg.slp) nor a training package (.zip)"
    )


def example_source(work: Path) -> TrainingSource:
    """The built-in example: synthetic labels, and a new video to predict on."""
    from workers.kinds.sleap.tools.example import make_example

    data = make_example(work / "example")
    # Its labels file names the folder it was made in; its frames (and the labels drawn
    # with them) come from a fixed seed, so the video alone tells one example from another.
    return TrainingSource(labels=[data.labels], new_video=data.new_video, data=[data.video])


def data_files(source: TrainingSource, usable: list[Path]) -> list[Path]:
    """The files a training learns from, in order: each labels file as it was sent (a
    package's ``.pkg.slp``), then the video files the labels read frames from (``usable``:
    the labels as checked, with the videos found beside them); embedded frames are in the
    labels file already."""
    if source.data:
        return list(source.data)
    import sleap_io as sio

    files = list(source.labels)
    for path in usable:
        labels = sio.load_slp(str(path), open_videos=False)
        for video in labels.videos:
            names = video.filename if isinstance(video.filename, list) else [video.filename]
            for name in names:
                candidate = Path(str(name))
                embedded = candidate.suffix.lower() == ".slp"
                if not embedded and candidate.is_file() and candidate not in files:
                    files.append(candidate)
    return files


def data_fingerprint(source: TrainingSource, usable: list[Path]) -> str:
    """A fingerprint of the training data's content (:func:`data_files`), the same for the
    same files wherever they lie."""
    return fingerprint(data_files(source, usable))

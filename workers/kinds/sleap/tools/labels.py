"""Checking SLEAP labels files before any training: readable, labelled, videos found.

Runs in job subprocesses only (it imports sleap-io). The checks raise :class:`ToolError`
with a message meant for the person who sent the job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Any

from workers.kinds.sleap.tools.errors import ToolError

if TYPE_CHECKING:
    import sleap_io as sio


@dataclass
class VideoStatus:
    """One video of a labels file: a short name, whether it reads, and how it was found."""

    name: str
    found: bool
    embedded: bool = False
    needed: bool = True
    moved: bool = False


@dataclass
class LabelsReport:
    """What a labels file holds, for the one-message summary."""

    name: str
    frames: int
    user_frames: int
    user_instances: int
    predicted_instances: int
    skeleton: str
    nodes: list[str]
    edges: int
    videos: list[VideoStatus] = field(default_factory=list)
    suggestions: int = 0
    fingerprint: str = ""

    def summary(self) -> str:
        """``labels.slp: 8 labeled frames, 8 instances; skeleton ...; videos ...``."""
        found = sum(v.found for v in self.videos)
        parts = [
            f"{self.name}: {self.frames} labeled frames ({self.user_frames} by a person), "
            f"{self.user_instances} instances"
            + (f" and {self.predicted_instances} predicted" if self.predicted_instances else ""),
            f"skeleton {self.skeleton!r}: {', '.join(self.nodes)} ({self.edges} edges)",
            f"videos: {found} of {len(self.videos)} found",
        ]
        notes = []
        if any(v.embedded for v in self.videos):
            notes.append("frames embedded in the file")
        moved = [v.name for v in self.videos if v.moved]
        if moved:
            notes.append("beside the labels: " + ", ".join(moved))
        missing = [v.name for v in self.videos if not v.found]
        if missing:
            notes.append("missing: " + ", ".join(missing))
        if notes:
            parts[-1] += f" ({'; '.join(notes)})"
        if self.suggestions:
            parts.append(f"{self.suggestions} suggested frames")
        return "; ".join(parts)


def load_labels(path: Path) -> sio.Labels:
    """Read a .slp file, or raise ToolError saying plainly why it cannot be read."""
    import sleap_io as sio

    if not path.is_file():
        raise ToolError(f"the labels file {path.name} does not exist")
    with path.open("rb") as handle:
        signature = handle.read(8)
    if signature != b"\x89HDF\r\n\x1a\n":
        raise ToolError(
            f"{path.name} is not a SLEAP labels file: a .slp file is HDF5, and this one is not "
            "(was it renamed, or cut short while copying?)"
        )
    try:
        return sio.load_slp(str(path))
    except Exception as exc:
        raise ToolError(f"{path.name} cannot be read as SLEAP labels ({exc})") from None


def _basename(stored: str) -> str:
    # Stored paths may come from Windows; PureWindowsPath splits on both separators.
    return PureWindowsPath(stored).name


def video_name(video: sio.Video) -> str:
    """A short name: the file name, or the first image's name and a count."""
    filename = video.filename
    if isinstance(filename, list):
        return f"{_basename(filename[0])} (+{len(filename) - 1} images)" if filename else "?"
    return _basename(str(filename))


def is_embedded(video: sio.Video) -> bool:
    """Whether the video's frames live inside the labels file."""
    backend = video.backend
    return backend is not None and bool(getattr(backend, "has_embedded_images", False))


def video_readable(video: sio.Video) -> bool:
    """Whether the first frame of the video can be decoded."""
    try:
        if not video.exists():
            return False
        return video[0] is not None
    except Exception:
        return False


def _beside(video: sio.Video, folder: Path) -> str | list[str] | None:
    """The same file name(s) in ``folder``, if they are all there."""
    filename = video.filename
    if isinstance(filename, list):
        names = [folder / _basename(f) for f in filename]
        return [str(p) for p in names] if names and all(p.is_file() for p in names) else None
    candidate = folder / _basename(str(filename))
    return str(candidate) if candidate.is_file() else None


def _needed_videos(labels: sio.Labels) -> set[int]:
    """Ids of the videos holding frames labelled by a person (what training reads)."""
    return {id(lf.video) for lf in labels.labeled_frames if getattr(lf, "has_user_instances", True)}


def _absolute(filename: str | list[str]) -> str | list[str]:
    if isinstance(filename, list):
        return [str(Path(f).resolve()) for f in filename]
    return str(Path(filename).resolve())


def _first(filename: str | list[str]) -> Path:
    return Path(filename[0] if isinstance(filename, list) else filename)


def check_videos(labels: sio.Labels, labels_path: Path) -> tuple[list[VideoStatus], bool]:
    """Find every video, looking beside the labels file for missing ones.

    Videos found on disk get absolute paths (so the labels work from any folder). Returns
    the statuses and whether any video path was set (then the labels need saving).
    """
    folder = labels_path.resolve().parent
    needed = _needed_videos(labels)
    statuses: list[VideoStatus] = []
    changed = False
    for video in labels.videos:
        status = VideoStatus(video_name(video), found=False, needed=id(video) in needed)
        status.embedded = is_embedded(video)
        statuses.append(status)
        if status.embedded:
            status.found = video_readable(video)
            continue
        target = _absolute(video.filename) if video_readable(video) else _beside(video, folder)
        if target is None:
            continue
        video.replace_filename(target, open=True)
        status.found = video_readable(video)
        status.moved = status.found and _first(target).parent == folder
        changed = changed or status.found
    return statuses, changed


def inspect_labels(path: Path, *, for_training: bool) -> tuple[sio.Labels, LabelsReport, bool]:
    """Load, check and summarise a labels file; raise ToolError when it cannot be used.

    Returns the labels (videos remapped where found beside the file), the report, and
    whether any video path changed (then the labels must be saved before use).
    """
    labels = load_labels(path)
    user_instances = sum(len(lf.user_instances) for lf in labels.labeled_frames)
    predicted = sum(len(lf.predicted_instances) for lf in labels.labeled_frames)
    skel = labels.skeletons[0] if labels.skeletons else None
    statuses, changed = check_videos(labels, path)
    report = LabelsReport(
        name=path.name,
        frames=len(labels.labeled_frames),
        user_frames=len(labels.user_labeled_frames),
        user_instances=user_instances,
        predicted_instances=predicted,
        skeleton=(skel.name or "skeleton") if skel is not None else "none",
        nodes=list(skel.node_names) if skel is not None else [],
        edges=len(skel.edges) if skel is not None else 0,
        videos=statuses,
        suggestions=len(labels.suggestions),
        fingerprint=fingerprint(labels) if for_training else "",
    )
    if for_training and user_instances == 0:
        raise ToolError(
            f"{path.name} has no instances labelled by a person, so there is nothing to train "
            f"on ({report.frames} labeled frames, {predicted} predicted instances)"
        )
    missing = [v.name for v in statuses if not v.found and (v.needed or not for_training)]
    if missing:
        raise ToolError(
            f"{path.name}: video not found: {', '.join(missing)}. Put the video files in the "
            "same folder as the labels file (colabot looks for them there), or export a "
            ".pkg.slp with the frames embedded"
        )
    return labels, report, changed


def _numeric_fields(points: Any) -> list[bytes]:
    """The bytes of each numeric field of a points array (names and other objects left out)."""
    import numpy as np

    array = np.asarray(points)
    names = array.dtype.names
    if names is None:
        return [array.tobytes()] if array.dtype != object else []
    return [
        np.ascontiguousarray(array[name]).tobytes()
        for name in names
        if array.dtype.fields is not None and array.dtype.fields[name][0].kind in "biuf"
    ]


def fingerprint(labels: sio.Labels) -> str:
    """A digest of what sleap-nn's config generator reads from labels, and no file path.

    Video shapes; skeletons (nodes, edges, symmetries); tracks; and per labeled frame, its
    video and frame index and each instance's type, skeleton, track, points (with their
    visibility) and scores. Equal for the same labels wherever their files lie.
    """
    digest = hashlib.sha256()

    def add(*parts: object) -> None:
        digest.update(repr(parts).encode())
        digest.update(b"\0")

    videos = {id(v): i for i, v in enumerate(labels.videos)}
    skeletons = {id(s): i for i, s in enumerate(labels.skeletons)}
    tracks = {id(t): i for i, t in enumerate(labels.tracks)}
    for video in labels.videos:
        try:
            shape = video.shape
        except Exception:
            shape = None
        add("video", tuple(shape) if shape is not None else None)
    for skel in labels.skeletons:
        add("skeleton", skel.name, list(skel.node_names), list(skel.edge_names))
        add("symmetries", sorted(sorted(pair) for pair in skel.symmetry_names))
    add("tracks", [track.name for track in labels.tracks])
    for lf in labels.labeled_frames:
        add("frame", videos.get(id(lf.video), -1), lf.frame_idx, len(lf.instances))
        for inst in lf.instances:
            add(
                type(inst).__name__,
                skeletons.get(id(inst.skeleton), -1),
                tracks.get(id(inst.track), -1) if inst.track is not None else None,
                getattr(inst, "score", None),
                getattr(inst, "tracking_score", None),
                inst.from_predicted is not None,
            )
            for chunk in _numeric_fields(inst.points):
                digest.update(chunk)
    return digest.hexdigest()


def save_remapped(labels: sio.Labels, dest: Path) -> Path:
    """Save labels whose video paths were changed, keeping embedded frames where they are."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    labels.save(str(dest), restore_original_videos=False)
    return dest


def check_labels(
    paths: list[Path], work: Path, *, for_training: bool
) -> tuple[list[Path], list[LabelsReport]]:
    """Check each labels file; save a copy where video paths had to be fixed."""
    usable: list[Path] = []
    reports: list[LabelsReport] = []
    for i, path in enumerate(paths):
        labels, report, changed = inspect_labels(path, for_training=for_training)
        reports.append(report)
        if changed:
            usable.append(save_remapped(labels, work / "labels" / str(i) / path.name))
        else:
            usable.append(path)
    return usable, reports

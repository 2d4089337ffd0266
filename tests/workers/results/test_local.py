"""The local results backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.errors import ResultsError
from workers.results.local import LocalResults


def test_publish_copies_files_and_reports_progress(tmp_path: Path) -> None:
    src = tmp_path / "model.zip"
    src.write_bytes(b"m" * 10_000_000)
    seen: list[tuple[str, int, int]] = []
    backend = LocalResults(tmp_path / "results")
    links = backend.publish(3, [(src, "model")], lambda n, s, t: seen.append((n, s, t)))
    copy = tmp_path / "results" / "job-3" / "model.zip"
    assert copy.read_bytes() == src.read_bytes()
    assert links[0].url == str(copy) and links[0].label == "model" and links[0].size == 10_000_000
    assert seen[-1] == ("model", 10_000_000, 10_000_000)
    assert [s for _, s, _ in seen] == sorted(s for _, s, _ in seen)
    assert not list((tmp_path / "results" / "job-3").glob(".*part"))


def test_only_the_newest_checkpoint_is_kept_and_comes_back(tmp_path: Path) -> None:
    backend = LocalResults(tmp_path / "results")
    first = tmp_path / "step-1.json"
    first.write_text("1")
    backend.sync_checkpoint(5, first)
    folder = tmp_path / "ckpt-dir"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w")
    location = backend.sync_checkpoint(5, folder)
    kept = list((tmp_path / "results" / "job-5" / "checkpoint").iterdir())
    assert [p.name for p in kept] == ["ckpt-dir"]
    restored = backend.fetch_checkpoint(5, location, tmp_path / "restored")
    assert (restored / "weights.bin").read_bytes() == b"w"


def test_snapshot_and_kept_inputs_round_trip(tmp_path: Path) -> None:
    backend = LocalResults(tmp_path / "results")
    assert backend.load_snapshot() is None
    backend.save_snapshot(b'{"x": 1}')
    assert backend.load_snapshot() == b'{"x": 1}'
    upload = tmp_path / "video.mp4"
    upload.write_bytes(b"v")
    location = backend.save_inputs(2, upload)
    assert backend.fetch_inputs(2, location, tmp_path / "in").read_bytes() == b"v"


def test_a_results_folder_that_is_not_writable_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ResultsError, match=r"results\.dir .*file/results is not writable"):
        LocalResults(blocker / "results").check()


def test_a_missing_checkpoint_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=r"saved checkpoint .* is missing"):
        LocalResults(tmp_path).fetch_checkpoint(1, "job-1/checkpoint/x", tmp_path / "r")


def test_a_checkpoint_folder_keeps_no_link_that_leads_out(tmp_path: Path) -> None:
    secret = tmp_path / "home" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("PRIVATE")
    folder = tmp_path / "ckpt-dir"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w")
    (folder / "stolen").symlink_to(secret)
    (folder / "same").symlink_to(folder / "weights.bin")
    backend = LocalResults(tmp_path / "results")
    location = backend.sync_checkpoint(6, folder)
    kept = tmp_path / "results" / "job-6" / "checkpoint" / "ckpt-dir"
    assert sorted(p.name for p in kept.iterdir()) == ["same", "weights.bin"]
    assert not any(p.is_symlink() for p in kept.iterdir())
    restored = backend.fetch_checkpoint(6, location, tmp_path / "restored")
    assert not (restored / "stolen").exists() and (restored / "same").read_bytes() == b"w"


@pytest.mark.parametrize("location", ["../../home/id_rsa", "/etc/passwd", "job-1/\nx"])
def test_a_snapshot_location_outside_the_results_folder_is_refused(
    tmp_path: Path, location: str
) -> None:
    backend = LocalResults(tmp_path / "results")
    with pytest.raises(ResultsError, match="is refused: "):
        backend.fetch_inputs(1, location, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()

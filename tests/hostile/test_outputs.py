"""Outputs stay inside the job's folder: a job that plants links to files of the bot's user
among its outputs gets none of them packed, published or sent; the files it pointed at are
untouched.

A spaCy project runs its own commands (code by design), so it is the job that plants them;
a result.json that reports a path elsewhere is the same attack through a kind's tools.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from bot.service import Colabot
from emulator import BotApiEmulator
from tests.helpers.chat import Person
from workers.inputs.archives import zip_folder
from workers.kinds.base import Output
from workers.outputs import package_outputs

SECRET = "the bot user's private notes\n"

PLANT_PY = """
import os
from pathlib import Path

bundle = Path("out/bundle")
bundle.mkdir(parents=True, exist_ok=True)
Path("out/kept.txt").write_text("kept")
(bundle / "weights.txt").write_text("weights")
os.symlink({secret!r}, "out/notes.txt")
os.symlink({secret!r}, "out/bundle/stolen.txt")
os.symlink({elsewhere!r}, "out/bundle/stolen-dir")
os.symlink({elsewhere!r}, "out/elsewhere")
print("planted", flush=True)
"""

PROJECT_YML = """title: plant
workflows:
  all: [plant]
commands:
  - name: plant
    script:
      - "python scripts/plant.py"
    outputs:
      - "out/notes.txt"
      - "out/bundle"
      - "out/kept.txt"
      - "out/elsewhere"
"""


def planting_project(folder: Path, secret: Path) -> Path:
    """A spaCy project whose one command plants links to ``secret`` among its outputs."""
    (folder / "scripts").mkdir(parents=True)
    code = PLANT_PY.format(secret=str(secret), elsewhere=str(secret.parent))
    (folder / "scripts" / "plant.py").write_text(code)
    (folder / "project.yml").write_text(PROJECT_YML)
    return folder


def bot_user_files(tmp_path: Path) -> Path:
    """A folder of the bot's user, outside every folder colabot works in."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text(SECRET)
    return home / "notes.txt"


async def test_links_a_job_plants_among_its_outputs_are_not_published(
    colabot: Colabot, person: Person, emu: BotApiEmulator, input_root: Path, tmp_path: Path
) -> None:
    secret = bot_user_files(tmp_path)
    project = planting_project(input_root / "plant", secret)
    await person.say(f"/train spacy {project}")
    finished = await person.next_message("#1 spacy train finished", timeout=180)
    assert "spaCy project: ran all (plant)" in (finished.text or "")
    assert "notes.txt was left out of the results" in (finished.text or "")

    results = tmp_path / "results"
    published = sorted(p.name for p in results.rglob("*") if p.is_file())
    assert "kept.txt" in published and "bundle.zip" in published
    assert "notes.txt" not in published and "elsewhere.zip" not in published
    everything = [*results.rglob("*"), *(emu.files_dir / "bot").rglob("*")]
    assert not any(p.is_symlink() for p in everything)
    for path in (p for p in everything if p.is_file()):
        assert SECRET.encode() not in path.read_bytes(), path
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                assert archive.namelist() == ["bundle/weights.txt"]
    assert colabot.engine is not None
    packed = colabot.engine.workdir(1) / "packed"
    assert not packed.exists() or not list(packed.glob("elsewhere*"))
    assert secret.read_text() == SECRET


def test_an_output_reported_outside_the_job_folder_is_left_out_with_a_note(
    tmp_path: Path,
) -> None:
    secret = bot_user_files(tmp_path)
    job = tmp_path / "jobs" / "7"
    (job / "outputs" / "model").mkdir(parents=True)
    (job / "outputs" / "model" / "weights.bin").write_bytes(b"w")
    (job / "outputs" / "model" / "stolen.txt").symlink_to(secret)
    (job / "outputs" / "link.txt").symlink_to(secret)
    (job / "outputs" / "inner.txt").symlink_to(job / "outputs" / "model" / "weights.bin")
    notes: list[str] = []
    packed = package_outputs(
        job,
        [
            Output(job / "outputs" / "model", "model", "model"),
            Output(job / "outputs" / "link.txt", "output", "link.txt"),
            Output(secret, "predictions", "predictions\nof the job"),  # as result.json says
            Output(job / "outputs" / "inner.txt", "output", "inner.txt"),
        ],
        notes.append,
    )
    assert [p.label for p in packed] == ["model", "inner.txt"]
    with zipfile.ZipFile(packed[0].path) as archive:
        assert archive.namelist() == ["model/weights.bin"]
    assert notes == [
        "link.txt was left out of the results: it leads outside the job's folder (a link, or "
        "a path the job reported), so it was not packed or published.",
        "predictions\\x0aof the job was left out of the results: it leads outside the job's "
        "folder (a link, or a path the job reported), so it was not packed or published.",
        "model/stolen.txt was left out of model: it is a link that leads outside that folder.",
    ]
    assert secret.read_text() == SECRET


def test_a_packed_folder_planted_as_a_link_is_not_written_through(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "outputs" / "model").mkdir(parents=True)
    (job / "outputs" / "model" / "w.bin").write_bytes(b"w")
    (job / "outputs" / "model.txt").write_text("a second output named model")
    victim = tmp_path / "victim"
    victim.mkdir()
    (job / "packed").symlink_to(victim)
    packed = package_outputs(job, [Output(job / "outputs" / "model", "model", "model")])
    assert packed[0].path == job / "packed" / "model.zip"
    assert not (job / "packed").is_symlink() and list(victim.iterdir()) == []


def test_packing_a_folder_does_not_follow_links_out(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "w.bin").write_bytes(b"w")
    (folder / "same.bin").symlink_to(folder / "sub" / "w.bin")
    (folder / "out.txt").symlink_to(bot_user_files(tmp_path))
    (folder / "out-dir").symlink_to(tmp_path / "home")
    (folder / "dangling").symlink_to(folder / "missing")
    skipped: list[Path] = []
    zip_folder(folder, tmp_path / "model.zip", skipped=skipped)
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        assert sorted(archive.namelist()) == ["model/same.bin", "model/sub/w.bin"]
    assert sorted(p.name for p in skipped) == ["out-dir", "out.txt"]

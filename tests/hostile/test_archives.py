"""Hostile zips: entries that fight over a name, names no filesystem takes, names with a line
break or a text-direction override in them, and the ones the checks already stop (zip-slip,
symlinks, bombs). Each is refused with the archive error and leaves no partial files behind."""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path

import pytest

from bot.service import Colabot
from emulator import BotApiEmulator
from tests.helpers.chat import USER, Person
from workers.errors import ArchiveError
from workers.inputs.archives import ExtractLimits, safe_extract


def hostile_zip(path: Path, entries: list[str], *, symlink: str = "") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in entries:
            archive.writestr(name, "" if name.endswith("/") else "data")
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize(
    ("entries", "symlink", "why"),
    [
        (["a", "a/b"], "", "entry 'a/b' is both a file and a folder"),
        (["d/b", "d"], "", "entry 'd' is both a file and a folder"),
        (["d/", "d"], "", "entry 'd' is both a file and a folder"),
        (
            ["n" * 300],
            "",
            "has a name no file system accepts (a part of it is longer than 255 bytes)",
        ),
        (["ok", "../../escape"], "", "entry '../../escape' points outside the archive folder"),
        (["ok", "a\\..\\..\\escape"], "", "points outside the archive folder"),
        (["/etc/cron.d/x"], "", "entry '/etc/cron.d/x' has an absolute path"),
        (["C:/Windows/x"], "", "entry 'C:/Windows/x' has an absolute path"),
        (["ok"], "link", "entry 'link' is a symbolic link"),
        (
            ["data/train.jsonl\nrm -rf ~"],
            "",
            "entry 'data/train.jsonl\\x0arm -rf ~' has a control character (such as a line "
            "break) in its name",
        ),
        (
            ["clip\u2028.mp4"],
            "",
            "entry 'clip\\u2028.mp4' has a control character (such as a line break) in its name",
        ),
        (
            ["gpj\u202eexe.mp4"],
            "",
            "entry 'gpj\\u202eexe.mp4' has a control character (such as a line break) in its name",
        ),
    ],
)
def test_a_hostile_zip_is_refused_and_leaves_nothing(
    tmp_path: Path, entries: list[str], symlink: str, why: str
) -> None:
    archive = hostile_zip(tmp_path / "hostile.zip", entries, symlink=symlink)
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match=re.escape(why)):
        safe_extract(archive, dest)
    assert not dest.exists()


def test_an_entry_naming_the_folder_itself_is_passed_over(tmp_path: Path) -> None:
    archive = hostile_zip(tmp_path / "dots.zip", ["./", "data/", "data/a.txt"])
    dest = safe_extract(archive, tmp_path / "out")
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "data",
        "data/a.txt",
    ]


def test_a_zip_bomb_is_refused_before_it_fills_the_disk(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", b"\0" * (20 * 1024 * 1024))
    with pytest.raises(ArchiveError, match="compressed suspiciously well"):
        safe_extract(archive, tmp_path / "out", ExtractLimits())
    with pytest.raises(ArchiveError, match="would unpack to more than 1 MB"):
        safe_extract(archive, tmp_path / "out", ExtractLimits(max_total_bytes=2**20, max_ratio=1e9))
    assert not (tmp_path / "out").exists()


async def test_a_hostile_zip_sent_in_the_chat_fails_its_job_with_the_reason(
    colabot: Colabot, person: Person, emu: BotApiEmulator, tmp_path: Path
) -> None:
    archive = hostile_zip(tmp_path / "project.zip", ["config.cfg", "config.cfg/x"])
    await emu.send_document(archive, caption="/train spacy max_steps=5", user_id=USER)
    failed = await person.next_message("#1 spacy train failed", timeout=120)
    assert "is both a file and a folder" in (failed.text or "")
    assert colabot.engine is not None
    assert not (colabot.engine.workdir(1) / "work" / "unpacked").exists()


async def test_a_zip_with_a_line_break_in_an_entry_name_fails_its_job_saying_so(
    colabot: Colabot, person: Person, emu: BotApiEmulator, tmp_path: Path
) -> None:
    archive = hostile_zip(tmp_path / "project.zip", ["config.cfg", "train.spacy\n#SBATCH -x"])
    await emu.send_document(archive, caption="/train spacy max_steps=5", user_id=USER)
    failed = await person.next_message("#1 spacy train failed", timeout=120)
    text = failed.text or ""
    assert (
        "entry 'train.spacy\\x0a#SBATCH -x' has a control character (such as a line break) "
        "in its name"
    ) in text
    assert "Traceback" not in text
    assert colabot.engine is not None
    work = colabot.engine.workdir(1) / "work"
    assert not any("\n" in p.name for p in work.rglob("*"))

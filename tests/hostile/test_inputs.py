"""Inputs named from the chat: internal markers, paths out of bounds, names no file can have.

Every refusal comes before anything runs, says exactly why, and creates no job.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.service import Colabot
from tests.helpers.chat import Person
from workers.errors import InputError
from workers.inputs.resolve import InputResolver
from workers.jobs import Action, JobSpec
from workers.kinds.sleap.tools.errors import ToolError
from workers.kinds.sleap.tools.package import PackageError, parse_jobs
from workers.kinds.sleap.tools.train_inputs import package_file


@pytest.mark.parametrize(
    "command",
    [
        "/train selftest upload:/etc/passwd steps=1",
        "/train selftest input=upload:/etc/passwd",
        "/train selftest UPLOAD:../../etc/passwd",
        "/infer selftest 1,upload:/etc/passwd",
    ],
)
async def test_a_typed_upload_marker_is_refused(
    colabot: Colabot, person: Person, command: str
) -> None:
    await person.say("/train selftest steps=1 delay=0")
    await person.next_message("finished")
    reply = await person.say(command)
    assert "upload: is not a way to name an input; send the file in the chat instead" in (
        reply.text or ""
    )
    assert colabot.engine is not None and [j.id for j in colabot.engine.jobs()] == [1]


async def test_a_nul_byte_or_an_endless_name_gets_a_clear_message(
    colabot: Colabot, person: Person, input_root: Path
) -> None:
    nul = await person.say(f"/train selftest {input_root}/a\x00b")
    assert "holds a NUL character" in (nul.text or "")
    long = await person.say(f"/train selftest {input_root}/{'x' * 300}")
    assert "is longer than 255 bytes" in (long.text or "")
    param = await person.say("/train selftest steps=1\x00")
    assert "holds a NUL character" in (param.text or "")
    assert "Something went wrong" not in (nul.text or "") + (long.text or "")
    assert colabot.engine is not None and colabot.engine.jobs() == []


@pytest.mark.parametrize("char", ["\u2028", "\u202e", "\x1b", "\x85"])
async def test_a_typed_path_with_a_control_character_is_refused(
    colabot: Colabot, person: Person, input_root: Path, char: str
) -> None:
    (input_root / f"clip{char}4pm.exe").write_bytes(b"x")
    reply = await person.say(f"/train selftest {input_root}/clip{char}4pm.exe steps=1")
    text = reply.text or ""
    assert "the path holds control characters" in text
    assert char not in text and "Something went wrong" not in text
    assert colabot.engine is not None and colabot.engine.jobs() == []


async def test_a_symlink_out_of_the_input_folder_is_refused(
    colabot: Colabot, person: Person, input_root: Path
) -> None:
    (input_root / "passwd").symlink_to("/etc/passwd")
    reply = await person.say("/train selftest passwd steps=1")
    assert "outside the allowed input folders" in (reply.text or "")
    assert colabot.engine is not None and colabot.engine.jobs() == []


async def test_numbers_have_upper_bounds(colabot: Colabot, person: Person) -> None:
    reply = await person.say("/train selftest steps=99999999999999999999")
    assert "params.steps: must be at most 1,000,000, got" in (reply.text or "")
    timeout = await person.say("/train selftest timeout=1e300")
    assert "params.timeout: must be at most 43,200" in (timeout.text or "")


async def test_resolved_paths_outside_the_allowed_folders_are_refused(tmp_path: Path) -> None:
    roots = tmp_path / "inputs"
    roots.mkdir()
    outside = tmp_path / "elsewhere" / "model"
    outside.mkdir(parents=True)
    # A job whose recorded outputs point outside colabot's folders (a tampered database).
    resolver = InputResolver(
        (roots,), lambda job_id, slot: [outside], colabot_roots=(tmp_path / "data",)
    )
    spec = JobSpec("selftest", Action.INFER, {"model": "job:1"}, {})
    with pytest.raises(InputError, match="outside the allowed folders"):
        await resolver.resolve(spec, tmp_path / "data" / "jobs" / "2", lambda p: None)


def test_a_training_package_cannot_point_outside_itself(tmp_path: Path) -> None:
    entry = {"cfg": "a.yaml", "run_path": "models/a", "train_labels": "l.pkg.slp"}
    inference = {"data_path": "../../../etc/passwd", "models": ["models/a"]}
    with pytest.raises(
        PackageError, match=re.escape("data_path '../../../etc/passwd' is not a path inside")
    ):
        parse_jobs({"training": [entry], "inference": [inference]})
    package = tmp_path / "package"
    package.mkdir()
    (package / "video.mp4").symlink_to("/etc/passwd")
    with pytest.raises(ToolError) as outside:
        package_file(package, "video.mp4", "pkg.zip")
    assert str(outside.value) == (
        "pkg.zip: jobs.yaml names video.mp4, which lies outside the package "
        "(it leads outside its folder through a symbolic link)"
    )
    (package / "inside.mp4").write_bytes(b"x")
    assert package_file(package, "inside.mp4", "pkg.zip") == package / "inside.mp4"


@pytest.mark.parametrize(
    ("data_path", "message"),
    [
        (
            "clip.mp4\n#SBATCH --wrap=id",
            "jobs.yaml: data_path 'clip.mp4\\x0a#SBATCH --wrap=id' is not a path inside the "
            "package: it holds control characters",
        ),
        (
            "clip\u2028.mp4",
            "jobs.yaml: data_path 'clip\\u2028.mp4' is not a path inside the package: "
            "it holds control characters",
        ),
        (
            "/etc/passwd",
            "jobs.yaml: data_path '/etc/passwd' is not a path inside the package: "
            "it is an absolute path",
        ),
        (
            "C:\\videos\\clip.mp4",
            "jobs.yaml: data_path 'C:\\videos\\clip.mp4' is not a path inside the package: "
            "it is an absolute path",
        ),
    ],
)
def test_a_training_package_names_only_plain_paths(data_path: str, message: str) -> None:
    entry = {"cfg": "a.yaml", "run_path": "models/a", "train_labels": "l.pkg.slp"}
    inference = {"data_path": data_path, "models": ["models/a"]}
    with pytest.raises(PackageError) as refused:
        parse_jobs({"training": [entry], "inference": [inference]})
    assert str(refused.value) == message


def test_a_file_a_package_names_with_a_line_break_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ToolError) as refused:
        package_file(tmp_path, "a.mp4\nb", "pkg.zip")
    assert str(refused.value) == (
        "pkg.zip: jobs.yaml names a.mp4\\x0ab, which lies outside the package "
        "(it holds control characters)"
    )

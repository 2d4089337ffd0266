"""File names and one-line text: safe and unique names, the name limit, control characters."""

from __future__ import annotations

import pytest

from workers.safety.names import (
    MAX_NAME_BYTES,
    has_control,
    is_control,
    is_plain_name,
    label,
    safe_name,
    shown,
    unique_name,
    word,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("results.zip", "results.zip"),
        ("../../etc/passwd", "passwd"),
        ("C:\\temp\\my file;rm -rf.zip", "my file_rm -rf.zip"),
        ("/etc/y", "y"),
        ("a\x00b\nc", "a_b_c"),
        ("  spaced  ", "spaced"),
        ("résumé.txt", "résumé.txt"),
        ("$(reboot)`x`.cfg", "_reboot_x_.cfg"),
        ("clip\u2028.mp4", "clip_.mp4"),
        ("gpj\u202eexe.txt", "gpj_exe.txt"),
    ],
)
def test_names_cannot_escape_their_folder(name: str, expected: str) -> None:
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", ["..", ".", "", None, "/", " . "])
def test_a_name_with_nothing_left_gets_the_default(name: str | None) -> None:
    assert safe_name(name) == "file"
    assert safe_name(name, "document") == "document"


def test_long_names_are_cut_keeping_the_suffix() -> None:
    assert MAX_NAME_BYTES == 255
    name = safe_name("é" * 300 + ".tar")
    assert len(name.encode()) <= MAX_NAME_BYTES and name.endswith(".tar")
    assert len(safe_name("x" * 400).encode()) == MAX_NAME_BYTES


def test_unique_names_count_up_and_ignore_case() -> None:
    used: set[str] = {"job.log"}
    names = [unique_name(n, used) for n in ("model.zip", "Model.zip", "model.zip", "JOB.log")]
    assert names == ["model.zip", "Model-2.zip", "model-3.zip", "JOB-2.log"]


@pytest.mark.parametrize(
    ("char", "control"),
    [
        ("\n", True),
        ("\r", True),
        ("\x00", True),
        ("\x1b", True),  # ESC: terminal escapes
        ("\x85", True),  # NEL, a C1 line break
        ("\u2028", True),  # LINE SEPARATOR
        ("\u2029", True),  # PARAGRAPH SEPARATOR
        ("\u202e", True),  # RIGHT-TO-LEFT OVERRIDE
        ("\u2066", True),  # LEFT-TO-RIGHT ISOLATE
        ("\u200f", True),  # RIGHT-TO-LEFT MARK
        ("\u200d", False),  # ZERO WIDTH JOINER: some scripts need it in names
        ("é", False),
        (" ", False),
        ("\t", True),
    ],
)
def test_control_characters(char: str, control: bool) -> None:
    assert is_control(char) is control
    assert has_control(f"a{char}b") is control


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        ("labels.slp", True),
        ("résumé.txt", True),
        ("", False),
        (".", False),
        ("..", False),
        ("a/b", False),
        ("a\\b", False),
        ("a\nb", False),
        ("a\u2028b", False),
        ("gpj\u202eexe.txt", False),
        ("x" * 255, True),
        ("x" * 256, False),
        ("é" * 128, False),  # 256 bytes
    ],
)
def test_plain_names(name: str, plain: bool) -> None:
    assert is_plain_name(name) is plain


def test_shown_escapes_every_control_character_on_one_line() -> None:
    assert shown("a\nb\x00c") == "a\\x0ab\\x00c"
    assert shown("x\u2028y\u202ez") == "x\\u2028y\\u202ez"
    assert shown("\x85") == "\\x85"
    assert shown("plain é") == "plain é"


def test_a_label_is_one_line_and_bounded() -> None:
    assert label("train\nrm -rf ~") == "train\\x0arm -rf ~"
    long = label("x" * 500)
    assert len(long) == 200 and long.endswith("…")
    assert label("a\u2028b", limit=10) == "a\\u2028b"


def test_a_word_is_one_ascii_word() -> None:
    assert word("predict clip.mp4\n#SBATCH --uid=0") == "predict-clip.mp4-SBATCH---uid-0"
    assert word("\n\n") == "step"
    assert word("vidéo") == "vid-o"

"""Safe and unique file names."""

from __future__ import annotations

import pytest

from workers.names import safe_name, unique_name


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
    ],
)
def test_names_cannot_escape_their_folder(name: str, expected: str) -> None:
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", ["..", ".", "", None, "/", " . "])
def test_a_name_with_nothing_left_gets_the_default(name: str | None) -> None:
    assert safe_name(name) == "file"
    assert safe_name(name, "document") == "document"


def test_long_names_are_cut_keeping_the_suffix() -> None:
    name = safe_name("é" * 300 + ".tar")
    assert len(name.encode()) <= 255 and name.endswith(".tar")
    assert len(safe_name("x" * 400).encode()) == 255


def test_unique_names_count_up_and_ignore_case() -> None:
    used: set[str] = {"job.log"}
    names = [unique_name(n, used) for n in ("model.zip", "Model.zip", "model.zip", "JOB.log")]
    assert names == ["model.zip", "Model-2.zip", "model-3.zip", "JOB-2.log"]

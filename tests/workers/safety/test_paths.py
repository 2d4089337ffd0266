"""Confinement: every way a name or a typed path is refused, and links that lead out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workers.errors import InputError
from workers.safety.paths import Refused, confine, inside, join_inside, relative_parts


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A folder with a file, a sub-folder, and links that stay in or lead out."""
    folder = tmp_path / "root"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a")
    (tmp_path / "secret.txt").write_text("secret")
    (folder / "out").symlink_to(tmp_path / "secret.txt")
    (folder / "out-dir").symlink_to(tmp_path)
    (folder / "in").symlink_to(folder / "sub" / "a.txt")
    return folder


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("/etc/passwd", "it is an absolute path"),
        ("\\etc\\passwd", "it is an absolute path"),
        ("C:/Windows/x", "it is an absolute path"),
        ("C:\\Windows\\x", "it is an absolute path"),
        ("../x", "it points outside its folder ('..')"),
        ("a/../../x", "it points outside its folder ('..')"),
        ("a\\..\\..\\x", "it points outside its folder ('..')"),
        ("a\x00b", "it holds control characters"),
        ("config.cfg\nrm -rf ~", "it holds control characters"),
        ("video\u2028.mp4", "it holds control characters"),
        ("gpj\u202eexe.mp4", "it holds control characters"),
        ("a/" + "x" * 256, "a part of it is longer than 255 bytes"),
        (".", "it names the folder itself"),
        ("./", "it names the folder itself"),
    ],
)
def test_every_refusal_of_a_relative_name(name: str, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        relative_parts(name)
    assert refused.value.reason == reason
    assert str(refused.value) == reason


def test_relative_names_are_split_into_their_parts() -> None:
    assert relative_parts("a/b/c.txt") == ("a", "b", "c.txt")
    assert relative_parts("./a//b/") == ("a", "b")
    assert relative_parts("models\\centroid") == ("models", "centroid")
    assert relative_parts("x" * 255) == ("x" * 255,)
    assert relative_parts("a..b/c..") == ("a..b", "c..")


def test_a_name_joined_inside_stays_inside(root: Path) -> None:
    assert join_inside(root, "sub/a.txt") == root / "sub" / "a.txt"
    assert join_inside(root, "in") == root / "in"
    assert join_inside(root, "sub/new.txt") == root / "sub" / "new.txt"  # need not exist


@pytest.mark.parametrize("name", ["out", "out-dir/secret.txt", "out-dir"])
def test_a_link_that_leads_out_is_refused(root: Path, name: str) -> None:
    with pytest.raises(Refused) as refused:
        join_inside(root, name)
    assert refused.value.reason == "it leads outside its folder through a symbolic link"


def test_join_inside_refuses_what_relative_parts_refuses(root: Path) -> None:
    with pytest.raises(Refused, match=re.escape("it points outside its folder ('..')")):
        join_inside(root, "../secret.txt")
    with pytest.raises(Refused, match="it holds control characters"):
        join_inside(root, "sub/a\n.txt")


def test_inside_follows_links_on_both_sides(root: Path, tmp_path: Path) -> None:
    assert inside(root / "sub" / "a.txt", [root])
    assert inside(root, [root])
    assert inside(root / "in", [root])
    assert not inside(root / "out", [root])
    assert not inside(root / "out-dir" / "root", [tmp_path / "elsewhere", root / "sub"])
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    assert inside(root / "sub", [alias])
    assert inside(alias / "sub", [root])
    assert not inside(tmp_path / "rootish", [root])  # a prefix is not a parent


def test_a_typed_path_resolves_inside_a_root(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / "deep").mkdir(parents=True)
    assert confine(str(root / "sub" / "a.txt"), [root]) == (root / "sub" / "a.txt").resolve()
    assert confine("sub/a.txt", [other, root]) == (root / "sub" / "a.txt").resolve()
    assert confine("deep", [other, root]) == (other / "deep").resolve()
    assert confine("in", [root]) == (root / "sub" / "a.txt").resolve()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{root}/../secret.txt", "paths may not contain '..'"),
        ("{root}/out", "this path is outside the allowed input folders"),
        ("out", "this path is outside the allowed input folders"),
        ("out-dir/secret.txt", "this path is outside the allowed input folders"),
        ("/etc/passwd", "this path is outside the allowed input folders"),
        ("{root}/missing.txt", "no such file or folder"),
        ("missing.txt", "no such file or folder in the allowed input folders"),
        ("{root}/" + "x" * 300, "a part of this path is longer than 255 bytes"),
        ("sub/a\x00.txt", "the path holds control characters"),
        ("sub/a\n.txt", "the path holds control characters"),
        ("sub/a\u2028.txt", "the path holds control characters"),
        ("sub/\u202etxt.exe", "the path holds control characters"),
    ],
)
def test_every_refusal_of_a_typed_path(root: Path, text: str, message: str) -> None:
    with pytest.raises(InputError) as refused:
        confine(text.format(root=root), [root])
    assert refused.value.reason.startswith(message)
    assert "\n" not in str(refused.value) and "\u2028" not in str(refused.value)


def test_no_roots_means_no_typed_paths(root: Path) -> None:
    with pytest.raises(InputError) as refused:
        confine(str(root / "sub"), [])
    assert refused.value.reason == "no input folders are allowed (worker.input_roots is empty)"


def test_a_path_that_cannot_be_read_is_explained(root: Path) -> None:
    loop = root / "loop"
    loop.symlink_to(loop)
    with pytest.raises(InputError) as refused:
        confine(str(loop / "x"), [root])
    assert refused.value.reason == "this path cannot be used: its links go round in a loop"


def test_a_loop_of_links_is_not_inside_anything(root: Path) -> None:
    loop = root / "loop"
    loop.symlink_to(loop)
    assert not inside(loop / "x", [root])
    with pytest.raises(Refused, match="it leads outside its folder through a symbolic link"):
        join_inside(root, "loop/x")

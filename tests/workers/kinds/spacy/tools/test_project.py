"""spaCy projects: workflows, assets, dependencies, overrides."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.workers.kinds.helpers import touch
from workers.kinds.spacy.tools.errors import ToolError
from workers.kinds.spacy.tools.project import (
    asset_problems,
    choose_workflow,
    declared_outputs,
    missing_dependencies,
    override_string,
)

PROJECT = {
    "workflows": {"prep": ["convert"], "all": ["convert", "train"]},
    "commands": [
        {"name": "convert", "deps": ["assets/raw.jsonl"], "outputs": ["corpus/train.spacy"]},
        {
            "name": "train",
            "deps": ["corpus/train.spacy", "configs/config.cfg"],
            "outputs": ["training/model-best"],
            "outputs_no_cache": ["training/log.txt"],
        },
        {"name": "evaluate", "deps": ["training/model-best"]},
    ],
}


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (None, ("all", ["convert", "train"])),
        ("prep", ("prep", ["convert"])),
        ("evaluate", ("evaluate", ["evaluate"])),
    ],
)
def test_choose_workflow(requested: str | None, expected: tuple[str, list[str]]) -> None:
    assert choose_workflow(PROJECT, requested) == expected


def test_first_workflow_without_all_and_refusals() -> None:
    project = {**PROJECT, "workflows": {"prep": ["convert"], "other": ["train"]}}
    assert choose_workflow(project, None) == ("prep", ["convert"])
    with pytest.raises(ToolError, match=r"workflow=nope: project\.yml has no such workflow"):
        choose_workflow(PROJECT, "nope")
    with pytest.raises(ToolError, match=r"no workflows; .*\(commands: convert, train, evaluate\)"):
        choose_workflow({**PROJECT, "workflows": {}}, None)
    with pytest.raises(ToolError, match="workflow all names unknown commands: ghost"):
        choose_workflow({**PROJECT, "workflows": {"all": ["ghost"]}}, None)


def test_missing_dependencies_and_declared_outputs(tmp_path: Path) -> None:
    touch(tmp_path, "assets/raw.jsonl")
    assert missing_dependencies(PROJECT, ["convert", "train"], tmp_path) == [
        "project command train needs configs/config.cfg, which is missing"
    ]
    assert declared_outputs(PROJECT, ["convert", "train"]) == [
        "corpus/train.spacy",
        "training/model-best",
        "training/log.txt",
    ]


def test_asset_problems(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "ok.txt").write_text("hello")
    (tmp_path / "assets" / "changed.txt").write_text("hello")
    assets: list[Mapping[str, Any]] = [
        {"dest": "assets/ok.txt", "checksum": "5d41402abc4b2a76b9719d911017c592"},
        {"dest": "assets/changed.txt", "checksum": "0" * 32},
        {"dest": "assets/web.zip", "url": "https://example.org/web.zip"},
        {"dest": "assets/repo", "git": {"repo": "https://github.com/x/y", "path": "data"}},
        {"dest": "assets/manual.txt"},
        {"dest": "assets/optional.zip", "url": "https://example.org/o.zip", "extra": True},
    ]
    errors, warnings = asset_problems(assets, tmp_path)
    assert warnings == ["asset assets/changed.txt does not match its checksum in project.yml"]
    assert errors == [
        "the asset assets/web.zip is missing and would need the internet "
        "(url: https://example.org/web.zip); put it at assets/web.zip in the project folder "
        "and try again",
        "the asset assets/repo is missing and would need the internet "
        "(git: https://github.com/x/y data); put it at assets/repo and try again",
        "the asset assets/manual.txt is missing; put it at assets/manual.txt and try again",
    ]


def test_override_strings_quote_values() -> None:
    assert override_string([("vars.gpu_id", "0"), ("vars.name", "a b")]) == (
        "--vars.gpu_id 0 --vars.name 'a b'"
    )
    assert override_string([]) == ""

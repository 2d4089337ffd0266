"""The prepare command: a request in, a plan out, or one line of refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.workers.kinds.conftest import SpacyCorpus
from workers.kinds.plans import REQUEST, write_json
from workers.kinds.spacy.plan import PLAN_FILE, Request, read_plan
from workers.kinds.spacy.tools import main


def _request(work: Path, **fields: Any) -> Path:
    """Write the request the kind would write; return the work folder."""
    request = Request(action="train", work=str(work), outputs=str(work.parent / "out"), **fields)
    write_json(work / REQUEST, request)
    return work


def test_prepare_writes_the_plan(tmp_path: Path, spacy_corpus: SpacyCorpus) -> None:
    work = _request(
        tmp_path / "work",
        gpu="cpu",
        config=str(spacy_corpus.root),
        max_steps=7,
        overrides=[["training.dropout", "0.2"]],
    )
    code = main(["prepare", str(work)])
    assert code == 0
    plan = read_plan(work)
    assert plan.mode == "config" and plan.config == str(spacy_corpus.config)
    assert plan.train == str(spacy_corpus.train) and plan.dev == str(spacy_corpus.dev)
    assert plan.overrides == [["training.dropout", "0.2"], ["training.max_steps", "7"]]
    assert plan.output == str(tmp_path / "out" / "training")
    assert (
        plan.gpu_id == -1 and plan.block_torch and plan.notes == ["training on the CPU (gpu=cpu)"]
    )


def test_prepare_refusals_are_one_line(
    tmp_path: Path, spacy_corpus: SpacyCorpus, capsys: pytest.CaptureFixture[str]
) -> None:
    work = _request(tmp_path / "work", config=str(spacy_corpus.config), workflow="all")
    assert main(["prepare", str(work)]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == (
        "colabot-spacy: error: workflow= is for spaCy projects, and this input has no project.yml"
    )
    assert not (work / PLAN_FILE).exists()


def test_a_missing_request_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["infer", str(tmp_path)]) == 2
    assert capsys.readouterr().out.strip().startswith("colabot-spacy: error: no request in")

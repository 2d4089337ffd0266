"""The prepare command: a request in, a plan out, or one line of refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.spacy_data import SpacyCorpus
from workers.kinds.plans import REQUEST, write_json
from workers.kinds.spacy.kind import train_argv
from workers.kinds.spacy.plan import PLAN_FILE, Request, read_plan
from workers.kinds.spacy.tools import main
from workers.kinds.spacy.tools.prepare import wandb_logger


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


RUN = {"mode": "offline", "project": "colabot", "entity": "lab", "name": "colabot-job4-spacy"}


def test_a_wandb_run_gets_spacys_wandb_logger_for_its_project() -> None:
    assert wandb_logger({"@loggers": "spacy.ConsoleLogger.v3"}, {}) == {}
    assert wandb_logger({"@loggers": "spacy.ConsoleLogger.v3"}, RUN) == {
        "@loggers": "spacy.WandbLogger.v5",
        "project_name": "colabot",
        "entity": "lab",
        "run_name": "colabot-job4-spacy",
        "remove_config_values": [],
    }


def test_a_configs_own_wandb_logger_is_kept_with_colabots_run_name() -> None:
    own = {
        "@loggers": "spacy.WandbLogger.v4",
        "project_name": "their-project",
        "remove_config_values": ["paths.train"],
        "model_log_interval": None,
    }
    assert wandb_logger(own, RUN) == {
        "@loggers": "spacy.WandbLogger.v4",
        "project_name": "their-project",
        "remove_config_values": ["paths.train"],
        "run_name": "colabot-job4-spacy",
    }


def test_the_plan_chains_the_wandb_logger_before_colabots(
    tmp_path: Path, spacy_corpus: SpacyCorpus
) -> None:
    work = _request(tmp_path / "work", gpu="cpu", config=str(spacy_corpus.root), wandb=RUN)
    assert main(["prepare", str(work)]) == 0
    plan = read_plan(work)
    assert plan.wandb_logger["@loggers"] == "spacy.WandbLogger.v5" and not plan.wandb_offline
    argv = train_argv("python", plan, tmp_path / "log.jsonl", tmp_path / "stop")
    logger = json.loads(argv[argv.index("--training.logger") + 1])
    assert logger["@loggers"] == "spacy.ChainLogger.v1"
    assert logger["logger1"]["run_name"] == "colabot-job4-spacy"
    assert logger["logger2"] == {
        "@loggers": "colabot.spacy_progress.v1",
        "log_path": str(tmp_path / "log.jsonl"),
        "stop_path": str(tmp_path / "stop"),
    }

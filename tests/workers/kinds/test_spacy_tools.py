"""The spaCy job programs' helpers: finding files, checking configs and data, projects,
devices and inference records."""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.workers.kinds.conftest import SpacyCorpus
from workers.kinds.spacy_config import check_config, unknown_override, write_resume_config
from workers.kinds.spacy_device import GpuProbe, choose_device, needs_torch
from workers.kinds.spacy_files import (
    check_corpus,
    find_config,
    find_corpus,
    find_pipeline,
    is_docbin_head,
)
from workers.kinds.spacy_infer import PredictionStats, TextRecord, text_records
from workers.kinds.spacy_project import (
    asset_problems,
    choose_workflow,
    declared_outputs,
    missing_dependencies,
    override_string,
)
from workers.kinds.spacy_protocol import ToolError, TrainPlan
from workers.kinds.spacy_tools import main

NO_CUPY = GpuProbe(False, problem="CuPy is not installed")
NO_GPU = GpuProbe(True, problem="CuPy sees no GPU")
ONE_GPU = GpuProbe(True, ("Tesla T4",))


def touch(root: Path, *names: str) -> None:
    """Create empty files (and their folders) under root."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


# ------------------------------------------------------------------------------ devices


@pytest.mark.parametrize(
    ("request_", "probe", "expected"),
    [
        ("auto", ONE_GPU, (0, "training on GPU 0 (Tesla T4)")),
        ("auto", NO_CUPY, (-1, "training on the CPU: CuPy is not installed")),
        ("auto", NO_GPU, (-1, "training on the CPU: CuPy sees no GPU")),
        ("cpu", ONE_GPU, (-1, "training on the CPU (gpu=cpu)")),
        ("0", ONE_GPU, (0, "training on GPU 0 (Tesla T4)")),
    ],
)
def test_choose_device(request_: str, probe: GpuProbe, expected: tuple[int, str]) -> None:
    assert choose_device(request_, lambda: probe, "training") == expected


@pytest.mark.parametrize(
    ("request_", "probe", "message"),
    [
        ("0", NO_CUPY, "gpu=0 asks for a GPU, but CuPy is not installed; or use gpu=cpu"),
        ("0", NO_GPU, "gpu=0 asks for GPU 0, but CuPy sees no GPU (CuPy sees no GPU)"),
        ("1", ONE_GPU, "gpu=1 asks for GPU 1, but CuPy sees 1 GPU(s)"),
    ],
)
def test_a_gpu_that_is_not_there_is_refused(request_: str, probe: GpuProbe, message: str) -> None:
    with pytest.raises(ToolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        choose_device(request_, lambda: probe, "training")


def test_cpu_never_probes() -> None:
    def probe() -> GpuProbe:
        raise AssertionError("probed")

    assert choose_device("cpu", probe, "x")[0] == -1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[system]\ngpu_allocator = null\n[components.ner.model]\n@architectures = "x"\n', False),
        ('[system]\ngpu_allocator = "pytorch"\n', True),
        ('[components.transformer]\nfactory = "transformer"\n', True),
        ('@architectures = "spacy.TorchBiLSTMEncoder.v1"\n', True),
    ],
)
def test_needs_torch(text: str, expected: bool) -> None:
    assert needs_torch(text) is expected


# ------------------------------------------------------------------------ finding files


def test_the_config_is_config_cfg_and_the_shallowest(tmp_path: Path) -> None:
    touch(tmp_path, "configs/base.cfg", "configs/config.cfg", "deep/er/config.cfg")
    touch(tmp_path, "training/model-best/config.cfg", "training/model-best/meta.json")
    assert find_config(tmp_path) == tmp_path / "configs" / "config.cfg"


def test_several_equally_good_configs_are_ambiguous(tmp_path: Path) -> None:
    touch(tmp_path, "a/config.cfg", "b/config.cfg")
    with pytest.raises(ToolError, match=r"several configs \(a/config.cfg, b/config.cfg\)"):
        find_config(tmp_path)


def test_no_config(tmp_path: Path) -> None:
    touch(tmp_path, "notes.txt")
    with pytest.raises(ToolError, match="there is no spaCy config"):
        find_config(tmp_path)


@pytest.mark.parametrize(
    ("files", "train", "dev"),
    [
        (["train.spacy", "dev.spacy"], "train.spacy", "dev.spacy"),
        (["corpus/train.spacy", "corpus/dev.spacy"], "corpus/train.spacy", "corpus/dev.spacy"),
        (["data/training.spacy", "data/valid.spacy"], "data/training.spacy", "data/valid.spacy"),
        (["ner_train.spacy", "ner_eval.spacy"], "ner_train.spacy", "ner_eval.spacy"),
        (["x/train.spacy", "train_big.spacy", "dev.spacy"], "x/train.spacy", "dev.spacy"),
        ([".hidden/train.spacy", "t/train.spacy", "dev.spacy"], "t/train.spacy", "dev.spacy"),
    ],
)
def test_data_is_found_by_conventional_names(
    tmp_path: Path, files: list[str], train: str, dev: str
) -> None:
    touch(tmp_path, *files)
    words = ("train",), ("dev", "valid", "eval")
    found_train = find_corpus(tmp_path, ("train.spacy", "training.spacy"), words[0], "train")
    found_dev = find_corpus(tmp_path, ("dev.spacy", "valid.spacy"), words[1], "dev")
    assert (found_train, found_dev) == (tmp_path / train, tmp_path / dev)


def test_ambiguous_or_missing_data_is_refused(tmp_path: Path) -> None:
    touch(tmp_path, "a/train.spacy", "b/train.spacy")
    with pytest.raises(ToolError, match=r"several train files \(a/train.spacy, b/train.spacy\)"):
        find_corpus(tmp_path, ("train.spacy",), ("train",), "train")
    with pytest.raises(ToolError, match="no dev data"):
        find_corpus(tmp_path, ("dev.spacy",), ("dev",), "dev")


def test_docbin_heads(spacy_corpus: SpacyCorpus) -> None:
    assert is_docbin_head(spacy_corpus.train.read_bytes()[:4096])
    assert not is_docbin_head(b"hello world")
    assert not is_docbin_head(zlib.compress(b'{"json": "is not msgpack"}'))
    assert not is_docbin_head(b"")


def test_corpus_checks(tmp_path: Path, spacy_corpus: SpacyCorpus) -> None:
    check_corpus(spacy_corpus.train, "train")
    (tmp_path / "empty.spacy").write_bytes(b"")
    with pytest.raises(ToolError, match=r"the train data empty\.spacy is empty"):
        check_corpus(tmp_path / "empty.spacy", "train")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ToolError, match=r"the dev folder folder has no \.spacy files"):
        check_corpus(tmp_path / "folder", "dev")
    (tmp_path / "data.jsonl").write_text("{}")
    check_corpus(tmp_path / "data.jsonl", "train")


def test_find_pipeline_prefers_model_best(tmp_path: Path) -> None:
    touch(tmp_path, "out/model-last/config.cfg", "out/model-last/meta.json")
    touch(tmp_path, "out/model-best/config.cfg", "out/model-best/meta.json")
    assert find_pipeline(tmp_path) == tmp_path / "out" / "model-best"
    assert find_pipeline(tmp_path / "out" / "model-last") == tmp_path / "out" / "model-last"
    with pytest.raises(ToolError, match="holds no trained spaCy pipeline"):
        touch(tmp_path, "empty/config.cfg")
        find_pipeline(tmp_path / "empty")


# ------------------------------------------------------------------------------ configs

CONFIG = {
    "paths": {"train": None, "dev": None},
    "training": {"dropout": 0.1, "batcher": {"size": {"start": 100}}},
}


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("training.dropout", None),
        ("training.batcher.size.start", None),
        ("training.batcher.size", None),
        (
            "training.dropuot",
            "unknown config key training.dropuot: [training] has no setting 'dropuot' "
            "(did you mean training.dropout?)",
        ),
        ("trainin.dropout", "unknown config key trainin.dropout: no [trainin] section"),
        ("training.dropout.rate", "unknown config key training.dropout.rate: [training.dropout]"),
    ],
)
def test_unknown_override_keys(key: str, problem: str | None) -> None:
    found = unknown_override(CONFIG, key)
    assert found == problem if problem is None else (found or "").startswith(problem)


def test_check_config_applies_overrides_and_checks_references(
    tmp_path: Path, spacy_corpus: SpacyCorpus
) -> None:
    config = check_config(
        spacy_corpus.config, [("training.dropout", "0.3")], spacy_corpus.train, spacy_corpus.dev
    )
    assert config["training"]["dropout"] == 0.3
    assert config["corpora"]["train"]["path"] == str(spacy_corpus.train)
    broken = tmp_path / "broken.cfg"
    broken.write_text(spacy_corpus.config.read_text().replace("${paths.dev}", "${paths.deev}"))
    with pytest.raises(ToolError, match=r"does not parse: .*interpolation key 'paths\.deev'"):
        check_config(broken, [], spacy_corpus.train, spacy_corpus.dev)
    broken.write_text(
        spacy_corpus.config.read_text().replace('dev_corpus = "corpora.dev"', 'dev_corpus = "x.y"')
    )
    with pytest.raises(ToolError, match=r"training.dev_corpus refers to \[x.y\]"):
        check_config(broken, [], spacy_corpus.train, spacy_corpus.dev)


def test_a_resume_config_sources_every_component(tmp_path: Path, spacy_model: Path) -> None:
    from confection import Config

    written = write_resume_config(spacy_model, tmp_path / "resume.cfg")
    config = Config().from_disk(written, interpolate=False)
    assert config["components"] == {
        "tok2vec": {"source": str(spacy_model), "component": "tok2vec"},
        "ner": {"source": str(spacy_model), "component": "ner"},
    }
    original = Config().from_disk(spacy_model / "config.cfg", interpolate=False)
    assert config["training"] == original["training"]


def test_prepare_writes_the_plan(tmp_path: Path, spacy_corpus: SpacyCorpus) -> None:
    plan_path = tmp_path / "plan.json"
    code = main(
        [
            "prepare",
            "--plan",
            str(plan_path),
            "--work",
            str(tmp_path / "work"),
            "--output",
            str(tmp_path / "out"),
            "--gpu",
            "cpu",
            "--config",
            str(spacy_corpus.root),
            "--max-steps",
            "7",
            "--override",
            "training.dropout=0.2",
        ]
    )
    assert code == 0
    plan = TrainPlan.from_dict(json.loads(plan_path.read_text()))
    assert plan.mode == "config" and plan.config == str(spacy_corpus.config)
    assert plan.train == str(spacy_corpus.train) and plan.dev == str(spacy_corpus.dev)
    assert plan.overrides == [["training.dropout", "0.2"], ["training.max_steps", "7"]]
    assert (
        plan.gpu_id == -1 and plan.block_torch and plan.notes == ["training on the CPU (gpu=cpu)"]
    )


def test_prepare_refusals_are_one_line(
    tmp_path: Path, spacy_corpus: SpacyCorpus, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["prepare", "--plan", str(tmp_path / "p.json"), "--work", str(tmp_path)]
    argv += ["--output", str(tmp_path / "o"), "--config", str(spacy_corpus.config)]
    assert main([*argv, "--workflow", "all"]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == (
        "colabot-spacy: error: workflow= is for spaCy projects, and this input has no project.yml"
    )
    assert not (tmp_path / "p.json").exists()


# ----------------------------------------------------------------------------- projects

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


# ---------------------------------------------------------------------------- inference


def test_text_records_from_txt_and_jsonl() -> None:
    assert list(text_records(["one\n", "\n", "  \n", "two\r\n"], False, "text")) == [
        TextRecord(1, "one"),
        TextRecord(4, "two"),
    ]
    lines = ['{"id": "a", "text": "x"}', "not json", '{"text": "y"}', '{"id": 5}', "[1]"]
    records = list(text_records(lines, True, "text"))
    assert [r.id for r in records] == ["a", 2, 3, 4, 5]
    assert [r.text for r in records] == ["x", "", "y", "", ""]
    assert records[1].error.startswith("line 2 is not JSON")
    assert records[3].error == "line 4 has no 'text' text"


def test_prediction_stats() -> None:
    stats = PredictionStats()
    stats.add({"id": 1, "error": "bad line"})
    for i, cats in enumerate(({"POS": 0.9, "NEG": 0.1}, {"POS": 0.2, "NEG": 0.8}, {})):
        stats.add({"id": i, "text": "t", "entities": [{"label": "GPE"}], "cats": cats})
    assert stats.to_dict() | {"sample": []} == {
        "docs": 3,
        "errors": 1,
        "entities": {"GPE": 3},
        "top_categories": {"POS": 1, "NEG": 1},
        "sample": [],
        "first_error": "1: bad line",
    }
    assert [row["id"] for row in stats.sample] == [0, 1, 2]

"""Finding the config, the data and the pipeline in folders and zips."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from tests.helpers.spacy_data import SpacyCorpus
from tests.workers.kinds.helpers import touch
from workers.kinds.spacy.tools.errors import ToolError
from workers.kinds.spacy.tools.files import (
    check_corpus,
    find_config,
    find_corpus,
    find_pipeline,
    is_docbin_head,
)


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

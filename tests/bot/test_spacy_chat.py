"""spaCy jobs end to end through the chat: train, watch, infer with the trained job."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from bot.emulator import BotApiEmulator
from bot.service import Colabot
from tests.bot.conftest import USER, Person
from tests.workers.kinds.conftest import SpacyCorpus, copy_spacy_corpus, write_spacy_corpus

JOB_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def chat_corpus(tmp_path_factory: pytest.TempPathFactory) -> SpacyCorpus:
    """The spaCy test corpus, written once for this module."""
    return write_spacy_corpus(tmp_path_factory.mktemp("spacy-chat"))


@pytest.fixture
def corpus(chat_corpus: SpacyCorpus, inputs_dir: Path) -> SpacyCorpus:
    """The corpus inside the chat's allowed input folder."""
    return copy_spacy_corpus(chat_corpus, inputs_dir / "ner")


async def test_train_then_infer_with_the_trained_job(
    colabot: Colabot, person: Person, emu: BotApiEmulator, corpus: SpacyCorpus
) -> None:
    status = await person.say(
        f"/train spacy {corpus.config} train={corpus.train} dev={corpus.dev} max_steps=20 gpu=cpu"
    )
    assert "#1 spacy train" in (status.text or "")
    device = await person.next_message("training on the CPU")
    assert ((device.message or {}).get("reply_to_message") or {}).get("message_id") == (
        status.message_id
    )
    done = await person.next_message("#1 spacy train finished", timeout=JOB_TIMEOUT)
    text = done.text or ""
    assert "trained on the CPU for 20 steps" in text and "model-best: ents_f " in text
    final = emu.message(USER, status.message_id or 0) or {}
    assert "succeeded" in final["text"] and "step 20 of 20" in final["text"]
    model = await person.next_message("model-best")
    saved = emu.local_path(USER, model.message_id or 0)
    assert saved is not None and zipfile.is_zipfile(saved)

    await person.say(f"/infer spacy 1 {corpus.texts_jsonl}")
    inferred = await person.next_message("#2 spacy infer finished", timeout=JOB_TIMEOUT)
    text = inferred.text or ""
    assert "spaCy inference: 3 docs → predictions.jsonl" in text
    assert "sample:" in text and "doc-0: Grace Lee loved the trip" in text
    predictions = await person.next_message("predictions.jsonl")
    saved = emu.local_path(USER, predictions.message_id or 0)
    assert saved is not None and saved.read_text().count('"id": "doc-') == 3


async def test_refusals_and_failures_are_explained(
    colabot: Colabot, person: Person, corpus: SpacyCorpus
) -> None:
    missing = await person.say(f"/train spacy {corpus.config}")
    assert "inputs.train: missing" in (missing.text or "")
    await person.say(
        f"/train spacy {corpus.config} train={corpus.train} dev={corpus.dev} training.dropuot=0.3"
    )
    failed = await person.next_message("#1 spacy train failed", timeout=JOB_TIMEOUT)
    assert "in step prepare" in (failed.text or "")
    assert "unknown config key training.dropuot" in (failed.text or "")
    assert "did you mean training.dropout?" in (failed.text or "")


async def test_help_on_spacy(colabot: Colabot, person: Person) -> None:
    reply = await person.say("/help spacy")
    text = reply.text or ""
    assert "/train spacy <config> [train] [dev] [gpu=auto]" in text
    assert "/infer spacy <model> <texts>" in text
    assert "spaCy cannot resume the optimizer state" in text

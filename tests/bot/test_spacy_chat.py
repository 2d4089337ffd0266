"""spaCy jobs end to end through the chat: train, watch, infer with the trained job."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.service import Colabot
from emulator import BotApiEmulator
from tests.helpers.chat import USER, Person
from tests.helpers.spacy_data import SpacyCorpus, copy_spacy_corpus, write_spacy_corpus
from tests.helpers.wandb_files import wandb_history
from tests.loopback.wandb_server import WandbServer
from workers.wandb.runs import WandbSettings, offline_runs

JOB_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def chat_corpus(tmp_path_factory: pytest.TempPathFactory) -> SpacyCorpus:
    """The spaCy test corpus, written once for this module."""
    return write_spacy_corpus(tmp_path_factory.mktemp("spacy-chat"))


@pytest.fixture
def corpus(chat_corpus: SpacyCorpus, input_root: Path) -> SpacyCorpus:
    """The corpus inside the chat's allowed input folder."""
    return copy_spacy_corpus(chat_corpus, input_root / "ner")


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


async def test_stop_early_from_the_status_button_and_plots_while_running_and_after(
    colabot: Colabot, person: Person, emu: BotApiEmulator, corpus: SpacyCorpus
) -> None:
    early = await person.say("/plot 1")
    assert "there is no job 1" in (early.text or "")
    status = await person.say(
        f"/train spacy {corpus.config} train={corpus.train} dev={corpus.dev} "
        "max_steps=100000 eval_frequency=10 gpu=cpu"
    )
    await person.next_edit("best", timeout=JOB_TIMEOUT)
    running = await person.say("/plot 1", timeout=60)
    assert running.kind == "photo"
    assert "#1 spacy train: loss so far (running)" in str((running.message or {}).get("caption"))
    picture = emu.local_path(USER, running.message_id or 0)
    assert picture is not None and picture.read_bytes().startswith(b"\x89PNG")

    await person.press(status, "Stop early")
    question = await person.next_message("early and keep its model?")
    await person.press(question, "Yes, stop early")
    await person.next_edit("Asked job #1 to stop early: train ends at its next evaluation")
    done = await person.next_message("#1 spacy train finished", timeout=JOB_TIMEOUT)
    assert "stopped early at step " in (done.text or "")
    assert "model-best: ents_f " in (done.text or "")

    after = await person.say("/plot 1", timeout=60)
    assert after.kind == "photo" and "loss (succeeded)" in str((after.message or {}).get("caption"))
    refused = await person.say("/stop 1")
    assert "job 1 cannot stop early: it is succeeded, not training" in (refused.text or "")
    assert "Stop early" not in str(emu.message(USER, status.message_id or 0))


REJECTED_KEY = "fedcba9876543210fedcba9876543210fedcba98"


async def test_a_key_wandb_rejects_gets_a_note_and_the_run_goes_on_offline(
    start_colabot: Callable[..., Any],
    chat_config: Config,
    person: Person,
    emu: BotApiEmulator,
    corpus: SpacyCorpus,
    wandb_server: WandbServer,
) -> None:
    wandb = WandbSettings(api_key=REJECTED_KEY, mode="online", base_url=wandb_server.base)
    colabot = await start_colabot(chat_config, wandb=wandb)
    await person.say(
        f"/train spacy {corpus.config} train={corpus.train} dev={corpus.dev} max_steps=20 gpu=cpu"
    )
    note = await person.next_message("W&B did not accept this run", timeout=JOB_TIMEOUT)
    assert "user is not logged in" in (note.text or "") and "logs offline" in (note.text or "")
    assert wandb_server.seen_keys == [REJECTED_KEY]
    done = await person.next_message("#1 spacy train finished", timeout=JOB_TIMEOUT)
    assert "W&B run kept offline with the results" in (done.text or "")
    assert "wandb sync wandb/offline-run-" in (done.text or "")
    assert colabot.engine is not None
    (run,) = offline_runs(colabot.engine.workdir(1) / "outputs")
    assert any("loss_ner" in row for row in wandb_history(run))
    log = (colabot.engine.workdir(1) / "job.log").read_text()
    assert REJECTED_KEY not in log
    chat = " ".join(str(e.message) for e in emu.events)
    assert REJECTED_KEY not in chat


async def test_wandb_bad_input_is_refused_before_any_training(
    start_colabot: Callable[..., Any], chat_config: Config, person: Person, corpus: SpacyCorpus
) -> None:
    colabot = await start_colabot(chat_config, wandb=WandbSettings(mode="online"))
    train = f"/train spacy {corpus.config} train={corpus.train} dev={corpus.dev} max_steps=20"
    refused = await person.say(train)
    assert "W&B mode online needs an API key" in (refused.text or "")
    refused = await person.say(train + " wandb=maybe")
    assert "params.wandb: must be yes or no, got 'maybe'" in (refused.text or "")
    assert colabot.engine is not None and colabot.engine.jobs() == []
    allowed = await person.say(train + " wandb=no")
    assert "#1 spacy train" in (allowed.text or "")

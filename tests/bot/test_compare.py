"""/compare through the real python-telegram-bot and the emulator, and the held-out scores a
finished training kept in /status and /results."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.service import Colabot
from emulator import BotApiEmulator
from tests.helpers.chat import USER, Person
from tests.helpers.spacy_data import SpacyCorpus, write_spacy_corpus
from workers.quality import ModelScores, Quality, Score

JOB_TIMEOUT = 90.0


async def finished(person: Person, command: str, job_id: int) -> None:
    """Send a command that starts a job and wait until that job's outcome arrives."""
    await person.say(command)  # answered by the job's status message
    outcome = await person.next_message(f"#{job_id} selftest", timeout=30)
    assert "finished" in (outcome.text or ""), outcome.text


async def test_two_trainings_compare_and_the_text_comes_without_a_picture(
    colabot: Colabot, person: Person
) -> None:
    await finished(person, "/train selftest steps=1 delay=0", 1)
    await finished(person, "/train selftest steps=2 delay=0", 2)

    reply = await person.say("/compare 1 #2")

    assert reply.kind == "message"
    assert (reply.text or "").splitlines() == [
        "#1 vs #2 (selftest training)",
        "#1 kept no held-out scores.",
        "#2 kept no held-out scores.",
        "differing parameters (#1 → #2): steps 1 → 2",
        "No loss picture: selftest jobs draw no loss",
    ]


async def test_what_cannot_be_compared_is_refused_saying_why(
    colabot: Colabot, person: Person
) -> None:
    await finished(person, "/train selftest steps=1 delay=0", 1)
    await finished(person, "/infer selftest 1 steps=1 delay=0", 2)
    await person.say("/train selftest steps=1000 delay=1")
    await person.next_edit("running", timeout=30)

    answers = {
        command: (await person.say(command)).text or ""
        for command in (
            "/compare 1 9",
            "/compare 1 3",
            "/compare 2 1",
            "/compare 1",
            "/compare 1 1",
        )
    }

    assert answers["/compare 1 9"] == "⚠️ there is no job 9"
    assert answers["/compare 1 3"] == (
        "⚠️ cannot compare job 1 with job 3: job 3 is running; compare it once it has finished"
    )
    assert answers["/compare 2 1"] == (
        "⚠️ cannot compare job 2 with job 1: job 2 is an inference, not a training: only "
        "trainings are compared"
    )
    assert answers["/compare 1"] == (
        "⚠️ /compare takes two job ids, got 1\nUsage: /compare <job id> <job id>"
    )
    assert answers["/compare 1 1"].startswith("⚠️ name two different jobs")


async def test_status_and_results_of_a_finished_training_show_its_summary_and_scores(
    colabot: Colabot, person: Person
) -> None:
    await finished(person, "/train selftest steps=1 delay=0", 1)
    assert colabot.store is not None
    kept = Quality(
        "d1",
        (
            ModelScores("single_instance", "val", (Score("mOKS", 0.712), Score("PCK@5", 0.5))),
            ModelScores("centroid", "val", note="not evaluated: no predicted instances"),
        ),
    )
    colabot.store.set_quality(1, "selftest", kept)

    status = (await person.say("/status 1")).text or ""
    results = (await person.say("/results 1")).text or ""

    for text in (status, results):
        assert "selftest train: 1 steps" in text
        assert "single_instance (val): mOKS 0.712 · PCK@5 0.500" in text
        assert "centroid (val): not evaluated: no predicted instances" in text


@pytest.fixture
def corpus(input_root: Path) -> SpacyCorpus:
    """The tiny spaCy corpus inside the chat's allowed input folder."""
    return write_spacy_corpus(input_root / "ner")


async def test_spacy_trainings_on_the_same_corpus_compare_with_both_loss_curves(
    colabot: Colabot, person: Person, emu: BotApiEmulator, corpus: SpacyCorpus
) -> None:
    train = f"/train spacy {corpus.config} train={corpus.train} dev={corpus.dev} gpu=cpu"
    await person.say(f"{train} max_steps=20")
    first = await person.next_message("#1 spacy train finished", timeout=JOB_TIMEOUT)
    assert "vs #" not in (first.text or "")
    await person.say(f"{train} max_steps=30")
    second = await person.next_message("#2 spacy train finished", timeout=JOB_TIMEOUT)
    said = (second.text or "").splitlines()
    assert [line for line in said if line.endswith(" vs #1")], said
    assert "differing parameters: max_steps 20 → 30" in said

    reply = await person.say("/compare 1 2")
    picture = await emu.wait_for(
        lambda e: e.kind == "photo" and "vs" in str((e.message or {}).get("caption")),
        chat_id=USER,
        timeout=60,
    )

    text = (reply.text or "").splitlines()
    assert text[0] == "#1 vs #2 (spacy training)"
    assert "differing parameters (#1 → #2): max_steps 20 → 30" in text
    assert "same training data" in text and not [t for t in text if "No loss picture" in t]
    scores = colabot.store.quality(2) if colabot.store is not None else None
    assert scores is not None and scores.models
    assert f"{scores.models[0].model} ({scores.models[0].split})" in text
    assert (picture.message or {}).get("caption") == "#1 vs #2 (spacy): loss"
    # Sent as its file, under its own name (not as bare bytes).
    assert picture.file_path is not None and picture.file_path.name.endswith(".png")
    assert "-compare-2-" in picture.file_path.name
    assert picture.file_path.read_bytes().startswith(b"\x89PNG")

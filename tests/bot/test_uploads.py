"""Files sent from a phone as job inputs, for every kind and every file type it takes.

Each file goes through the real chat: sent with the command as its caption, or answered by
a command replying to it. The jobs run for real (tiny spaCy and SLEAP training, inference).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.service import Colabot
from emulator import BotApiEmulator
from emulator.mode import ServerMode
from tests.helpers.chat import USER, Person
from tests.helpers.spacy_data import SpacyCorpus, copy_spacy_corpus

pytestmark = pytest.mark.timeout(900)

SPACY_TIMEOUT = 120.0
SLEAP_TIMEOUT = 600.0


def zip_of(dest: Path, files: list[Path]) -> Path:
    """A zip holding ``files`` at its top level."""
    with zipfile.ZipFile(dest, "w") as archive:
        for path in files:
            archive.write(path, path.name)
    return dest


async def send(emu: BotApiEmulator, path: Path, command: str, *, as_reply: bool) -> None:
    """Send ``path`` with ``command`` as its caption, or send it and then reply with it."""
    if not as_reply:
        await emu.send_document(path, caption=command, user_id=USER)
        return
    sent = await emu.send_document(path, user_id=USER)
    await emu.send_text(command, user_id=USER, reply_to_message_id=sent["message_id"])


# ----------------------------------------------------------------------------------- spaCy


@pytest.fixture
def corpus(spacy_corpus: SpacyCorpus, tmp_path: Path) -> SpacyCorpus:
    """The spaCy corpus on the phone's side (outside the input folders)."""
    return copy_spacy_corpus(spacy_corpus, tmp_path / "phone")


@pytest.mark.parametrize("as_reply", [False, True], ids=["caption", "reply"])
async def test_spacy_trains_from_a_zip_sent_in_the_chat(
    colabot: Colabot,
    person: Person,
    emu: BotApiEmulator,
    corpus: SpacyCorpus,
    tmp_path: Path,
    as_reply: bool,
) -> None:
    package = zip_of(tmp_path / "ner.zip", [corpus.config, corpus.train, corpus.dev])
    await send(emu, package, "/train spacy max_steps=10 gpu=cpu", as_reply=as_reply)
    await person.next_message("#1 spacy train")
    done = await person.next_message("#1 spacy train finished", timeout=SPACY_TIMEOUT)
    assert "trained on the CPU for 10 steps" in (done.text or "")
    assert colabot.engine is not None
    assert (colabot.engine.workdir(1) / "inputs" / "ner.zip").is_file()


async def test_spacy_takes_a_config_and_training_data_sent_as_files(
    colabot: Colabot, person: Person, emu: BotApiEmulator, corpus: SpacyCorpus, input_root: Path
) -> None:
    dev = shutil.copy(corpus.dev, input_root / "dev.spacy")
    train = shutil.copy(corpus.train, input_root / "train.spacy")
    await send(
        emu, corpus.config, f"/train spacy train={train} dev={dev} max_steps=10", as_reply=False
    )
    config_done = await person.next_message("#1 spacy train finished", timeout=SPACY_TIMEOUT)
    assert "for 10 steps" in (config_done.text or "")

    config = shutil.copy(corpus.config, input_root / "config.cfg")
    await send(emu, corpus.train, f"/train spacy {config} dev={dev} max_steps=10", as_reply=True)
    data_done = await person.next_message("#2 spacy train finished", timeout=SPACY_TIMEOUT)
    assert "for 10 steps" in (data_done.text or "")
    assert colabot.engine is not None
    assert (colabot.engine.workdir(2) / "inputs" / "train.spacy").is_file()


@pytest.mark.parametrize(
    ("name", "as_reply"),
    [("texts.txt", False), ("texts.jsonl", True), ("texts.spacy", False)],
)
async def test_spacy_runs_a_model_on_texts_sent_in_the_chat(
    colabot: Colabot,
    person: Person,
    emu: BotApiEmulator,
    corpus: SpacyCorpus,
    spacy_model: Path,
    input_root: Path,
    name: str,
    as_reply: bool,
) -> None:
    model = shutil.copytree(spacy_model, input_root / "model-best")
    await send(emu, corpus.root / name, f"/infer spacy {model}", as_reply=as_reply)
    done = await person.next_message("#1 spacy infer finished", timeout=SPACY_TIMEOUT)
    assert "spaCy inference: 3 docs → predictions.jsonl" in (done.text or "")
    predictions = await person.next_message("predictions.jsonl")
    saved = emu.local_path(USER, predictions.message_id or 0)
    assert saved is not None
    first = json.loads(saved.read_text().splitlines()[0])
    assert first["text"].startswith("Grace Lee")


# ----------------------------------------------------------------------------------- SLEAP


async def test_sleap_trains_on_labels_sent_in_the_chat_then_runs_on_a_sent_video(
    colabot: Colabot, person: Person, emu: BotApiEmulator, sleap_data: dict[str, Path]
) -> None:
    train = "/train sleap epochs=1 steps_per_epoch=1 device=cpu"
    await send(emu, sleap_data["pkg"], train, as_reply=False)
    trained = await person.next_message("#1 sleap train finished", timeout=SLEAP_TIMEOUT)
    assert "Trained 1 model" in (trained.text or "")

    await send(emu, sleap_data["video"], "/infer sleap 1 frames=0-3", as_reply=False)
    video = await person.next_message("#2 sleap infer finished", timeout=SLEAP_TIMEOUT)
    assert "Predicted 4 frames of new_video.mp4" in (video.text or "")

    await send(emu, sleap_data["pkg"], "/infer sleap 1 frames=0-1", as_reply=True)
    labels = await person.next_message("#3 sleap infer finished", timeout=SLEAP_TIMEOUT)
    assert "Predicted 2 frames of labels.pkg.slp" in (labels.text or "")


async def test_sleap_trains_a_training_package_sent_in_the_chat(
    colabot: Colabot, person: Person, emu: BotApiEmulator, sleap_data: dict[str, Path]
) -> None:
    await send(
        emu, sleap_data["package14"], "/train sleap epochs=1 steps_per_epoch=1", as_reply=True
    )
    done = await person.next_message("#1 sleap train finished", timeout=SLEAP_TIMEOUT)
    assert "Trained 1 model: single_instance" in (done.text or "")


async def test_sleap_explains_labels_sent_without_their_video(
    colabot: Colabot, person: Person, emu: BotApiEmulator, sleap_data: dict[str, Path]
) -> None:
    await send(emu, sleap_data["slp_mp4"], "/train sleap epochs=1", as_reply=False)
    failed = await person.next_message("#1 sleap train failed", timeout=SLEAP_TIMEOUT)
    text = failed.text or ""
    assert "in step prepare" in text and "video" in text.lower()
    assert colabot.engine is not None
    assert (colabot.engine.workdir(1) / "inputs" / "labels.slp").is_file()


# ------------------------------------------------------------------------ limits and links

MB = 1024 * 1024
LOCAL = ServerMode(self_hosted=True, local=True)


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder`` (none when it does not exist)."""
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


async def test_a_file_telegram_gives_no_size_for_is_cut_off_at_the_limit(
    start_colabot: Any, chat_config: Config, person: Person, emu: BotApiEmulator, tmp_path: Path
) -> None:
    telegram = dataclasses.replace(chat_config.telegram, max_download_mb=1)
    colabot = await start_colabot(dataclasses.replace(chat_config, telegram=telegram))
    # A size of 0 is what python-telegram-bot makes of a file_size Telegram left out.
    await emu.send_document(
        os.urandom(2 * MB), "big.bin", caption="/train selftest", user_id=USER, reported_size=0
    )
    reply = await person.next_message("big.bin")
    assert (
        "big.bin is more than 1 MB, but bots can only download files up to 1 MB from Telegram"
    ) in (reply.text or "")
    assert colabot.engine is not None and colabot.engine.jobs() == []
    assert files_under(tmp_path / "data" / "staging") == []


@pytest.mark.parametrize("emu_mode", [LOCAL], indirect=True)
async def test_a_link_in_a_local_servers_folder_is_not_followed(
    start_colabot: Any, chat_config: Config, person: Person, emu: BotApiEmulator, tmp_path: Path
) -> None:
    # Whoever can write the server's folder puts a link where the sent file will be.
    secret = tmp_path / "home" / "private.txt"
    secret.parent.mkdir()
    secret.write_text("the bot user's private notes")
    documents = tmp_path / "shared-volume" / emu.token / "documents"
    documents.mkdir(parents=True)
    for number in range(1, 10):  # the emulator numbers the files people send
        (documents / f"{number:04d}-notes.txt").symlink_to(secret)
    telegram = dataclasses.replace(
        chat_config.telegram, local_mode=True, local_files_dir=tmp_path / "shared-volume"
    )
    colabot = await start_colabot(dataclasses.replace(chat_config, telegram=telegram))
    await emu.send_document(b"abc", "notes.txt", caption="/train selftest", user_id=USER)
    reply = await person.next_message("notes.txt")
    assert "(or it is a link, which colabot does not follow)" in (reply.text or "")
    assert colabot.engine is not None and colabot.engine.jobs() == []
    data = tmp_path / "data"
    assert not any(b"private notes" in p.read_bytes() for p in files_under(data))
    assert secret.read_text() == "the bot user's private notes"

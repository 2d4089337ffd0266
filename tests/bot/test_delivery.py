"""Outbox delivery: at least once, in order per job, nothing lost or repeated across outages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.service import Colabot
from tests.emulator.faults import FaultyBotApi
from tests.emulator.helpers import CLIP, png_bytes
from tests.helpers.chat import USER, Person
from workers.events import EventType
from workers.jobs import Action, JobSpec, JobState
from workers.kinds.base import Output
from workers.outputs import files_for_chat, package_outputs


def job_messages(emu: FaultyBotApi, job_id: int) -> list[str]:
    """The texts of new messages (not edits) the chat received about one job."""
    return [
        e.text or ""
        for e in emu.events
        if e.kind == "message" and e.chat_id == USER and f"#{job_id} " in (e.text or "")
    ]


async def test_a_burst_of_5xx_and_429_loses_and_repeats_nothing(
    colabot: Colabot, person: Person, emu: FaultyBotApi
) -> None:
    emu.inject_failure("sendMessage", 502, times=3)
    emu.inject_failure("sendMessage", 429, retry_after=1, times=2)
    emu.inject_failure("editMessageText", 500, times=2)
    assert colabot.engine is not None
    first = colabot.engine.submit(
        JobSpec("selftest", Action.TRAIN, {}, {"steps": "2", "delay": "0"}), {"chat_id": USER}
    )
    second = colabot.engine.submit(
        JobSpec("selftest", Action.TRAIN, {}, {"fail": "yes", "delay": "0"}), {"chat_id": USER}
    )
    await person.next_message("#1 selftest train finished", timeout=40)
    await person.next_message("#2 selftest train failed", timeout=40)
    for job in (first, second):
        texts = job_messages(emu, job.id)
        assert len(texts) == 2, texts  # the status message and the outcome, once each
        assert "selftest train ·" in texts[0]
    assert "finished" in job_messages(emu, first.id)[1]
    assert "told to fail" in job_messages(emu, second.id)[1]
    failures = [c for c in emu.calls if c.status in (429, 500, 502)]
    assert len(failures) >= 5
    assert colabot.delivery is not None
    await asyncio.wait_for(colabot.delivery.drained(), 30)


async def test_events_wait_in_the_outbox_across_a_restart(
    start_colabot: Callable[..., Any], chat_config: Config, person: Person, emu: FaultyBotApi
) -> None:
    first: Colabot = await start_colabot(chat_config)
    assert first.engine is not None and first.store is not None
    emu.inject_failure("sendMessage", 502, times=1000)
    finished = asyncio.Event()
    first.engine.on_state(lambda j: finished.set() if j.state is JobState.SUCCEEDED else None)
    job = first.engine.submit(
        JobSpec("selftest", Action.TRAIN, {}, {"steps": "1", "delay": "0"}), {"chat_id": USER}
    )
    await asyncio.wait_for(finished.wait(), timeout=20)
    assert first.store.pending_events(), "the outage should have left events undelivered"
    await first.stop()
    emu.clear_failures()
    second: Colabot = await start_colabot(chat_config)
    await person.next_message(f"#{job.id} selftest train finished", timeout=30)
    assert len(job_messages(emu, job.id)) == 2
    assert second.store is not None and second.delivery is not None
    types = [e.type for e in second.store.events_for(job.id)]
    assert types[0] is EventType.QUEUED and EventType.SUCCEEDED in types
    await asyncio.wait_for(second.delivery.drained(), 30)


async def test_delivered_events_are_not_sent_again_after_a_restart(
    start_colabot: Callable[..., Any], chat_config: Config, person: Person, emu: FaultyBotApi
) -> None:
    first: Colabot = await start_colabot(chat_config)
    await person.say("/train selftest steps=1 delay=0")
    await person.next_message("finished")
    await first.stop()
    sent_before = len([e for e in emu.events if e.kind == "message"])
    await start_colabot(chat_config)
    await person.say("/jobs")
    sent_after = [e for e in emu.events if e.kind == "message"][sent_before:]
    about_job = [e.text or "" for e in sent_after if "#1" in (e.text or "")]
    assert len(about_job) == 1 and about_job[0].startswith("✅ #1 selftest train · succeeded")


async def test_an_album_of_twelve_goes_as_albums_of_at_most_ten_and_a_clip_as_a_video(
    colabot: Colabot, person: Person, emu: FaultyBotApi, tmp_path: Path
) -> None:
    assert colabot.engine is not None
    await person.say("/train selftest steps=1 delay=0")
    await person.next_message("#1 selftest train finished")
    folder = tmp_path / "made"
    folder.mkdir()
    outputs = []
    for i in range(12):
        (folder / f"frame_{i}.png").write_bytes(png_bytes(8 + i, 6))
        label = f"frame {i}"
        outputs.append(Output(folder / f"frame_{i}.png", "suggestion", label, True, album="next"))
    (folder / "preview.mp4").write_bytes(CLIP)
    outputs.append(Output(folder / "preview.mp4", "preview", "the clip", send_as_video=True))
    packed = package_outputs(tmp_path, outputs)
    for event in files_for_chat(packed, under_bytes=45 * 1024 * 1024):
        colabot.engine.post(1, event)

    pictures = [
        await emu.wait_for(lambda e: e.method == "sendMediaGroup", chat_id=USER, timeout=20)
        for _ in range(12)
    ]
    clip = await emu.wait_for(kind="video", chat_id=USER, timeout=20)

    assert all(e.kind == "photo" for e in pictures)
    sizes = [(e.message or {})["photo"][-1]["width"] for e in pictures]
    assert sizes == [8 + i for i in range(12)]
    groups = [(e.message or {}).get("media_group_id") for e in pictures]
    assert len(set(groups[:10])) == 1 and len(set(groups[10:])) == 1 and groups[0] != groups[10]
    assert [e.text for e in pictures][:2] == ["next · frame 0", "frame 1"]
    assert pictures[10].text == "frame 10"
    assert not [c for c in emu.calls if c.method == "sendPhoto"]
    assert clip.method == "sendVideo" and clip.text == "the clip"
    assert clip.file_path is not None and clip.file_path.read_bytes() == CLIP

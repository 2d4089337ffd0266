"""The SLEAP kind end to end through the chat: the built-in example, then inference with it.

Real sleap-nn training and inference on the CPU, driven by a person in the emulator: the
held-out scores and the training card, and on each video a clip of the predictions (a video
that plays in the chat), the frames to label next as an album, and the .pkg.slp with them.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from bot.service import Colabot
from emulator import BotApiEmulator
from tests.helpers.chat import USER, Person

pytestmark = pytest.mark.timeout(900)

# The example trains in under a minute on two idle cores; the margin is for a busy CI machine.
EXAMPLE_TIMEOUT = 600.0


async def test_the_example_trains_and_predicts_then_its_model_runs_on_a_video(
    colabot: Colabot, person: Person, emu: BotApiEmulator, input_root: Path
) -> None:
    await emu.send_text("/train sleap example", user_id=USER)
    status = await person.next_message("#1 sleap train", timeout=30)
    assert "/train" in str((status.message or {}).get("reply_to_message", {}).get("text", ""))
    checked = await person.next_message("Labels checked", timeout=60)
    assert "16 labeled frames" in (checked.text or "")
    assert "skeleton 'bug': head, thorax, tail" in (checked.text or "")
    # An epoch of 60 steps can pass between two paced edits: a later epoch shows step-level
    # progress (the first edit can come at step 1, before there is a rate), and by then a
    # whole epoch is in the log for /plot.
    step_level = re.compile(r"epoch ([2-9]) of 10 · step \d+ of 60 · [\d.]+ steps/s · train loss")
    live = await emu.wait_for(
        lambda e: e.kind == "edit" and bool(step_level.search(e.text or "")),
        chat_id=USER,
        timeout=120,
    )
    assert step_level.search(live.text or "") is not None
    running = await person.say("/plot 1", timeout=60)
    assert running.kind == "photo" and "loss so far (running)" in str(
        (running.message or {}).get("caption", "")
    )
    done = await person.next_message("finished", timeout=EXAMPLE_TIMEOUT)
    text = done.text or ""
    assert "Trained 1 model: single_instance: 10 epochs" in text
    # sleap-nn's own evaluation of the validation frames, as held-out scores.
    assert "\nsingle_instance (val): mOKS " in text and " · OKS mAP " in text
    assert "Predicted 16 frames of new_video.mp4: 16 instances" in text
    assert "Clip: frames 0-15 of new_video.mp4 (1.6 s), with the predictions drawn." in text
    assert "Frames to label next: 10 frames where the model is least sure (in the album)" in text
    card = await person.next_message("training card: loss curve and held-out scores")
    assert card.kind == "photo"
    saved = emu.local_path(USER, card.message_id or 0)
    assert saved is not None and saved.read_bytes().startswith(b"\x89PNG")
    await the_views(emu, person, "new_video.mp4", frames=16, pictures=10)
    finished = await person.say("/plot 1", timeout=60)
    picture = emu.local_path(USER, finished.message_id or 0)
    assert picture is not None and picture.read_bytes().startswith(b"\x89PNG")

    assert colabot.engine is not None
    video = colabot.engine.workdir(1) / "work" / "example" / "new_video.mp4"
    shutil.copy(video, input_root / "bugs.mp4")
    await emu.send_text("/infer sleap 1 bugs.mp4 frames=0-7", user_id=USER)
    await person.next_message("#2 sleap infer", timeout=30)
    found = await person.next_message("Video: bugs.mp4: 16 frames, 128x128", timeout=60)
    assert "Models: single_instance (single_instance)" in (found.text or "")
    done = await person.next_message("#2 sleap infer finished", timeout=120)
    text = done.text or ""
    assert "Predicted 8 frames of bugs.mp4: 8 instances" in text
    assert "Clip: frames 0-7 of bugs.mp4 (0.8 s), with the predictions drawn." in text
    assert "Frames to label next: 8 frames where the model is least sure (in the album)" in text
    csv = await person.next_message("bugs.mp4.predictions.csv")
    assert csv.kind == "document"
    rows = (emu.local_path(USER, csv.message_id or 0) or Path("/nonexistent")).read_text()
    assert len(rows.splitlines()) == 9 and "head.x" in rows.splitlines()[0]
    await the_views(emu, person, "bugs.mp4", frames=8, pictures=8)


async def the_views(
    emu: BotApiEmulator, person: Person, video: str, frames: int, pictures: int
) -> None:
    """What an inference on ``video`` shows in the chat: a clip of its first ``frames``
    predicted frames that plays there (sendVideo, enlarged to 480x480), the ``pictures``
    frames the model is least sure of as one album, and the .pkg.slp that holds them as
    labelling suggestions (a document)."""
    clip = await person.next_message(f"predictions on {video}, frames 0-{frames - 1}")
    assert clip.kind == "video" and clip.method == "sendVideo"
    assert ((clip.message or {}).get("video") or {}).get("file_name") == f"{video}.clip.mp4"
    saved = emu.local_path(USER, clip.message_id or 0)
    assert saved is not None
    assert await asyncio.to_thread(decoded, saved) == (frames, 480, 480)

    first = await person.next_message("frames to label next · frame ")
    group = (first.message or {}).get("media_group_id")
    assert first.kind == "photo" and first.method == "sendMediaGroup" and group
    album = [first]
    for _ in range(pictures - 1):
        album.append(
            await emu.wait_for(
                lambda e: e.kind == "photo" and (e.message or {}).get("media_group_id") == group,
                chat_id=USER,
                timeout=15,
            )
        )
    captions = [str((e.message or {}).get("caption", "")) for e in album]
    shown = [int(m.group(1)) for c in captions if (m := re.search(r"frame (\d+): ", c))]
    assert len(set(shown)) == pictures and all(0 <= f < frames for f in shown), captions
    assert all(" animal" in c for c in captions), captions
    picture = emu.local_path(USER, album[-1].message_id or 0)
    assert picture is not None and picture.read_bytes()[:2] == b"\xff\xd8"  # a JPEG

    suggestions = await person.next_message(f"{video}.label-next.pkg.slp")
    assert suggestions.kind == "document"
    saved = emu.local_path(USER, suggestions.message_id or 0)
    assert saved is not None and saved.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


def decoded(path: Path) -> tuple[int, int, int]:
    """(frames decoded, width, height) of a video file."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(video=0))
        found = (count, stream.width, stream.height)
    return found


async def test_help_and_refusals_before_any_job(colabot: Colabot, person: Person) -> None:
    help_text = (await person.say("/help sleap")).text or ""
    assert (
        "/train sleap &lt;input&gt; [config]" in help_text
        or "/train sleap <input> [config]" in (help_text)
    )
    assert "/train sleap example" in help_text
    refused = await person.say("/train sleap movie.mp4")
    assert "movie.mp4 is not SLEAP labels (.slp) or a package (.zip)" in (refused.text or "")
    reserved = await person.say("/train sleap example trainer_config.ckpt_dir=elsewhere")
    assert "checkpoints are always saved in the job's folder" in (reserved.text or "")
    frames = await person.say("/infer sleap 1 video.mp4 frames=1-3,5")
    assert "must be a range like 0-99 or a list like 1,5,9" in (frames.text or "")
    assert colabot.engine is not None and colabot.engine.jobs() == []

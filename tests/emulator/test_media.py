"""Videos and albums (``sendVideo``, ``sendMediaGroup``) as the real python-telegram-bot
sends them, with Telegram's limits: 2 to 10 items, 50 MB a file, 10 MB a photo, captions of
1024 characters."""

from __future__ import annotations

from pathlib import Path

import pytest
from telegram import Bot, InputMediaPhoto, InputMediaVideo
from telegram.error import BadRequest, NetworkError

from emulator.methods import ALBUM_TOO_SMALL
from tests.emulator.faults import FaultyBotApi
from tests.emulator.helpers import CLIP, USER_ID, png_bytes

MB = 1024 * 1024


def photos(count: int, caption: str = "") -> list[InputMediaPhoto]:
    """``count`` distinct PNG pictures for an album, the first with ``caption``."""
    return [
        InputMediaPhoto(
            png_bytes(8 + i, 6), filename=f"frame_{i}.png", caption=caption if i == 0 else None
        )
        for i in range(count)
    ]


async def test_a_video_is_stored_as_a_video_with_its_attributes(
    emulator: FaultyBotApi, bot: Bot, tmp_path: Path
) -> None:
    clip = tmp_path / "preview.mp4"
    clip.write_bytes(CLIP)
    sent = await bot.send_video(
        USER_ID,
        clip,
        caption="predictions on frames 0-299",
        width=512,
        height=384,
        duration=10,
        supports_streaming=True,
    )

    event = await emulator.wait_for(kind="video")
    assert event.method == "sendVideo" and event.text == "predictions on frames 0-299"
    assert event.file_path is not None and event.file_path.read_bytes() == CLIP
    assert event.file_path.name.endswith("-preview.mp4")
    video = sent.video
    assert video is not None and sent.document is None
    assert event.message is not None
    shown = event.message["video"]
    assert (shown["width"], shown["height"], shown["duration"]) == (512, 384, 10)
    assert (video.width, video.height) == (512, 384)
    assert (video.file_name, video.mime_type, video.file_size) == (
        "preview.mp4",
        "video/mp4",
        len(CLIP),
    )
    downloaded = await (await bot.get_file(video.file_id)).download_as_bytearray()
    assert bytes(downloaded) == CLIP
    again = await bot.send_video(USER_ID, video.file_id)
    assert again.video is not None and again.video.file_unique_id == video.file_unique_id
    with pytest.raises(BadRequest, match="use file of type video as document"):
        await bot.send_document(USER_ID, video.file_id)


async def test_a_video_over_50_mb_or_with_a_long_caption_is_refused(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    with pytest.raises(NetworkError, match="Request Entity Too Large"):
        await bot.send_video(USER_ID, CLIP + b"\x00" * (50 * MB), filename="big.mp4")
    with pytest.raises(BadRequest, match="Message caption is too long"):
        await bot.send_video(USER_ID, CLIP, filename="clip.mp4", caption="x" * 1025)
    with pytest.raises(BadRequest, match="File must be non-empty"):
        await bot.send_video(USER_ID, b"", filename="empty.mp4")
    assert not [e for e in emulator.events if e.kind == "video"]


async def test_an_album_arrives_as_one_message_per_item_sharing_a_group(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    media: list[InputMediaPhoto | InputMediaVideo] = [
        *photos(3, caption="frames to label next"),
        InputMediaVideo(CLIP, filename="clip.mp4", caption="the clip", width=64, height=48),
    ]
    sent = await bot.send_media_group(USER_ID, media)

    assert len(sent) == 4
    groups = {message.media_group_id for message in sent}
    assert len(groups) == 1 and None not in groups
    assert [m.caption for m in sent] == ["frames to label next", None, None, "the clip"]
    events = [await emulator.wait_for(lambda e: e.method == "sendMediaGroup") for _ in range(4)]
    assert [e.kind for e in events] == ["photo", "photo", "photo", "video"]
    for index, event in enumerate(events[:3]):
        assert event.file_path is not None
        assert event.file_path.read_bytes() == png_bytes(8 + index, 6)
        assert event.file_path.name.endswith(f"-frame_{index}.png")
    assert events[3].file_path is not None and events[3].file_path.read_bytes() == CLIP
    assert sent[0].photo[-1].width == 8 and sent[3].video is not None
    assert sent[3].video.width == 64
    # A second album is a new group.
    more = await bot.send_media_group(USER_ID, photos(2))
    assert {m.media_group_id for m in more}.isdisjoint(groups)


async def test_albums_of_one_or_more_than_ten_items_are_refused_and_nothing_is_sent(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    with pytest.raises(BadRequest, match="Too many messages to send as an album"):
        await bot.send_media_group(USER_ID, photos(11))
    with pytest.raises(BadRequest, match=ALBUM_TOO_SMALL.capitalize()):
        await bot.send_media_group(USER_ID, photos(1))
    with pytest.raises(BadRequest, match="Message caption is too long"):
        await bot.send_media_group(USER_ID, [*photos(2), *photos(1, caption="x" * 1025)])
    with pytest.raises(BadRequest, match="Image_process_failed"):
        await bot.send_media_group(
            USER_ID, [*photos(2), InputMediaPhoto(b"not a picture", filename="x.png")]
        )
    with pytest.raises(NetworkError, match="Request Entity Too Large"):
        big = InputMediaPhoto(png_bytes(8, 8) + b"\x00" * (10 * MB), filename="big.png")
        await bot.send_media_group(USER_ID, [*photos(1), big])
    assert emulator.messages(USER_ID) == []
    assert sorted(p.name for p in (emulator.store.root / "bot").iterdir()) == []


async def test_a_photo_sent_as_bare_bytes_is_named_by_its_content(
    emulator: FaultyBotApi, bot: Bot
) -> None:
    await bot.send_photo(USER_ID, png_bytes(8, 6))
    event = await emulator.wait_for(kind="photo")
    assert event.file_path is not None and event.file_path.name.endswith("-photo.png")
    await bot.send_photo(USER_ID, png_bytes(8, 6), filename="loss.png")
    named = await emulator.wait_for(kind="photo")
    assert named.file_path is not None and named.file_path.name.endswith("-loss.png")

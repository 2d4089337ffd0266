"""The application colabot builds: each update is answered as foreground work, which a
job's output steps aside for."""

from __future__ import annotations

from bot.app import ForegroundUpdates, build_application
from workers.waits import Foreground


async def test_an_update_is_processed_with_the_foreground_held() -> None:
    foreground = Foreground()
    seen: list[bool] = []

    async def handle() -> None:
        seen.append(foreground.busy)

    await ForegroundUpdates(2, foreground).do_process_update(object(), handle())
    assert seen == [True] and not foreground.busy


async def test_the_application_shares_the_foreground_it_is_given() -> None:
    foreground = Foreground()
    app = build_application("123:abc", "http://127.0.0.1:9", foreground=foreground)
    processor = app.update_processor
    assert isinstance(processor, ForegroundUpdates) and processor.foreground is foreground
    assert processor.max_concurrent_updates == 8

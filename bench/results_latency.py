"""Time from a job's process exiting to its result links appearing in the chat.

Runs colabot in this process against the Bot API emulator, with the local results backend
and with the Google Drive backend (real client, loopback Drive server), and prints the median
and maximum over N small selftest jobs.

    python -m bench.results_latency [--jobs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
from pathlib import Path

from bot.config import (
    Config,
    HeartbeatConfig,
    ResultsConfig,
    TelegramConfig,
    WorkerConfig,
)
from bot.service import Colabot
from emulator import DEFAULT_USER_ID, BotApiEmulator
from tests.loopback.drive_server import DriveServer
from workers.drive.settings import DriveSettings


async def measure(config: Config, emu: BotApiEmulator, jobs: int) -> list[float]:
    """Milliseconds from each job's exit to its "finished" message."""
    colabot = Colabot(config)
    await colabot.start()
    delays = []
    try:
        assert colabot.engine is not None
        for _ in range(jobs):
            await emu.send_text("/train selftest steps=1 delay=0", user_id=DEFAULT_USER_ID)
            event = await emu.wait_for(lambda e: "finished" in (e.text or ""), timeout=60)
            job_id = max(j.id for j in colabot.engine.jobs(1))
            exited = colabot.engine.timings[job_id].exited
            assert exited is not None
            delays.append((event.time - exited) * 1000)
    finally:
        await colabot.stop()
    return delays


async def main_async(jobs: int) -> None:
    """Print the figures."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        emu = BotApiEmulator(tmp / "telegram")
        await emu.start()
        emu.add_chat(DEFAULT_USER_ID)
        base = Config(
            telegram=TelegramConfig(
                token=emu.token, api_url=emu.url, allowed_users=(DEFAULT_USER_ID,)
            ),
            worker=WorkerConfig(data_dir=tmp / "data-local"),
            results=ResultsConfig(dir=tmp / "results"),
            heartbeat=HeartbeatConfig(interval_minutes=0),
        )
        local = await measure(base, emu, jobs)
        with DriveServer(tmp / "drive") as server:
            key = server.new_service_account(tmp / "sa.json")
            drive = dataclasses.replace(
                base,
                worker=WorkerConfig(data_dir=tmp / "data-drive"),
                results=ResultsConfig(backend="drive", dir=tmp / "results"),
                drive=DriveSettings(
                    service_account_file=key,
                    folder_id=server.add_folder("r"),
                    api_url=server.url,
                    share_anyone=True,
                ),
            )
            remote = await measure(drive, emu, jobs)
        await emu.stop()
    print(f"job exit -> result links in the chat, over {jobs} selftest jobs")
    for name, values in (("local folder", local), ("Google Drive (loopback)", remote)):
        print(f"{name:<24} median {statistics.median(values):7.1f} ms   max {max(values):7.1f} ms")


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10)
    asyncio.run(main_async(parser.parse_args().jobs))


if __name__ == "__main__":
    main()

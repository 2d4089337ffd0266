"""Download throughput of colabot's URL fetcher against curl, from one loopback server.

A separate process serves a file over http on 127.0.0.1; colabot's fetcher and curl download
it in turn (interleaved, median of N runs each). Prints both rates and the ratio
colabot/curl (target: at least 0.9).

    python -m bench.download_throughput [--mb 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from workers.inputs.fetch import Fetcher
from workers.inputs.netpolicy import FetchPolicy
from workers.inputs.sources import UrlSource


def serve(path: Path) -> None:
    """Serve one file (with Range support) until killed; print the port first."""
    app = web.Application()

    async def handler(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, chunk_size=1024 * 1024)

    app.router.add_get("/file.bin", handler)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


def timed_curl(url: str, out: Path) -> float:
    """Seconds for curl to download ``url``."""
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-o", str(out), url], check=True)
    return time.perf_counter() - started


def timed_fetch(url: str, cache: Path) -> float:
    """Seconds for colabot's fetcher to download ``url`` into an empty cache."""
    shutil.rmtree(cache, ignore_errors=True)
    fetcher = Fetcher(FetchPolicy(allow_private_addresses=True), cache)
    started = time.perf_counter()
    asyncio.run(fetcher.fetch(UrlSource(url), lambda progress: None))
    return time.perf_counter() - started


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if shutil.which("curl") is None:
        print("curl is not installed; nothing to compare with")
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "file.bin"
        with source.open("wb") as handle:
            for _ in range(args.mb):
                handle.write(os.urandom(1024 * 1024))
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.download_throughput", "--serve", str(source)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            url = f"http://127.0.0.1:{server.stdout.readline().strip()}/file.bin"
            ours, theirs = [], []
            for _ in range(args.runs):
                ours.append(timed_fetch(url, tmp / "cache"))
                theirs.append(timed_curl(url, tmp / "curl.bin"))
        finally:
            server.terminate()
            server.wait()
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    print(f"download of {args.mb} MB from a loopback server, median of {args.runs} runs each")
    print(f"colabot fetcher  {ours_s:6.2f} s  ({args.mb / ours_s:7.1f} MB/s)")
    print(f"curl             {theirs_s:6.2f} s  ({args.mb / theirs_s:7.1f} MB/s)")
    print(f"throughput ratio colabot/curl: {theirs_s / ours_s:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()

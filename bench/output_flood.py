"""A job printing a lot of output at full speed: engine memory and log completeness.

Runs one ``selftest`` job with ``flood_mb`` of output and prints the engine process's peak
RSS, the throughput, and whether the log file holds every byte. Target: RSS under 100 MB for
1 GB of output.

    python -m bench.output_flood [--mb 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

from workers.engine import Engine, EngineSettings
from workers.jobs import Action, JobSpec, JobState
from workers.kinds.registry import default_registry
from workers.kinds.selftest.plan import FLOOD_LINE
from workers.store.database import Store


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def flood(megabytes: float, data_dir: Path) -> tuple[float, int, float]:
    """Run the job; return (seconds, bytes of flood lines in the log, lines seen by the hook)."""
    store = Store(data_dir)
    engine = Engine(EngineSettings(data_dir=data_dir), store, default_registry())
    done = asyncio.Event()
    engine.on_state(lambda job: done.set() if job.state is JobState.SUCCEEDED else None)
    await engine.start()
    spec = JobSpec(
        "selftest", Action.TRAIN, {}, {"steps": "1", "delay": "0", "flood_mb": str(megabytes)}
    )
    started = time.perf_counter()
    job = engine.submit(spec)
    await asyncio.wait_for(done.wait(), timeout=3600)
    seconds = time.perf_counter() - started
    await engine.stop()
    store.close()
    flood_bytes = 0
    with engine.log_path(job.id).open("rb") as log:
        for line in log:
            if line == FLOOD_LINE:
                flood_bytes += len(line)
    return seconds, flood_bytes, peak_rss_mb()


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=1024.0)
    args = parser.parse_args()
    before = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        seconds, flood_bytes, peak = asyncio.run(flood(args.mb, Path(tmp)))
    expected = int(args.mb * 1024 * 1024) // len(FLOOD_LINE) * len(FLOOD_LINE)
    print(f"output flood of {args.mb:g} MB through one job (target: engine RSS < 100 MB)")
    print(f"engine peak RSS       {peak:8.1f} MB (at start {before:.1f} MB)")
    print(f"wall time             {seconds:8.1f} s  ({args.mb / seconds:.0f} MB/s)")
    print(f"log holds every byte  {flood_bytes == expected} ({flood_bytes} of {expected} bytes)")


if __name__ == "__main__":
    main()

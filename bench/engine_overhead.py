"""Engine overhead per job: submit -> process start, and process exit -> state recorded.

Runs N ``selftest`` jobs one after another (so queueing never counts) and prints the median,
90th percentile and maximum of each phase in milliseconds. Target: medians under 20 ms on a
2-core machine.

    python -m bench.engine_overhead [--jobs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from workers.engine import Engine, EngineSettings
from workers.jobs import Action, JobSpec, JobState
from workers.kinds.registry import default_registry
from workers.store.database import Store


def summarise(name: str, values_ms: list[float]) -> str:
    """One line: median, p90 and max."""
    ordered = sorted(values_ms)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return (
        f"{name:<28} median {statistics.median(ordered):7.2f} ms   "
        f"p90 {p90:7.2f} ms   max {ordered[-1]:7.2f} ms   (n={len(ordered)})"
    )


async def measure(jobs: int, data_dir: Path) -> tuple[list[float], list[float]]:
    """Run the jobs; return the two phase durations in ms."""
    store = Store(data_dir)
    engine = Engine(EngineSettings(data_dir=data_dir), store, default_registry())
    finished = asyncio.Event()
    engine.on_state(lambda job: finished.set() if job.state is JobState.SUCCEEDED else None)
    await engine.start()
    spec = JobSpec("selftest", Action.TRAIN, {}, {"steps": "1", "delay": "0"})
    to_start: list[float] = []
    to_record: list[float] = []
    try:
        for _ in range(jobs):
            finished.clear()
            job = engine.submit(spec)
            await asyncio.wait_for(finished.wait(), timeout=60)
            timing = engine.timings[job.id]
            assert timing.submitted and timing.spawned and timing.exited and timing.recorded
            to_start.append((timing.spawned - timing.submitted) * 1000)
            to_record.append((timing.recorded - timing.exited) * 1000)
    finally:
        await engine.stop()
        store.close()
    return to_start, to_record


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        to_start, to_record = asyncio.run(measure(args.jobs, Path(tmp)))
    print(f"engine overhead over {args.jobs} selftest jobs (target: medians < 20 ms)")
    print(summarise("submit -> process start", to_start))
    print(summarise("process exit -> recorded", to_record))


if __name__ == "__main__":
    main()

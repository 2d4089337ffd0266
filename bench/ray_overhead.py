"""What running steps on Ray costs, against running them on this machine.

Starts a private Ray head on 127.0.0.1 (token auth, one logical GPU), then runs the same tiny
spaCy training through the engine with the ``local`` executor and with the ``ray`` executor,
side by side in interleaved rounds. Prints, for both, submit → the first line the step
printed and submit → finished, and the wall-time ratio ray / local (target: at most 1.10).
Ray's own cost is per step (a job supervisor process for each Ray job), so the ratio falls
as training gets longer: ``--steps`` sets its length.

    python -m bench.ray_overhead [--rounds 3] [--steps 200]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
from pathlib import Path

from bench.executor_overhead import measure, report
from tests.clusters.ray_head import RayHead
from workers.executors.ray import RayExecutor
from workers.executors.settings import RaySettings


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    head = RayHead(num_cpus=2, num_gpus=1).start()
    try:
        settings = RaySettings(address=head.address, token=head.token)
        executor = RayExecutor(settings, secrets.token_hex(4), python=sys.executable)
        with tempfile.TemporaryDirectory() as tmp:
            runs = asyncio.run(measure(args.rounds, args.steps, Path(tmp), "ray", executor))
    finally:
        head.stop()
    report(runs, "ray", args.steps, target=1.10)


if __name__ == "__main__":
    main()

"""What running steps through Slurm costs, against running them on this machine.

Starts a private one-machine Slurm cluster (munged, slurmctld and slurmd on 127.0.0.1; needs
root and the slurm-wlm and munge packages), then runs the same tiny spaCy training through
the engine with the ``local`` executor and with the ``slurm`` executor, side by side in
interleaved rounds. Prints, for both, submit → the first line the step printed and submit →
finished, and the wall-time ratio slurm / local. ``--poll`` is ``slurm.poll_seconds``: it
bounds how soon colabot notices that a step ended (the default of 10 s costs up to 10 s a
step).

    python -m bench.slurm_overhead [--rounds 3] [--steps 200] [--poll 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
from pathlib import Path

from bench.executor_overhead import measure, report
from tests.clusters.slurm_cluster import SlurmCluster, missing_requirement
from workers.executors.settings import SlurmSettings
from workers.executors.slurm import SlurmExecutor


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--poll", type=float, default=10.0, help="slurm.poll_seconds")
    args = parser.parse_args()
    missing = missing_requirement()
    if missing is not None:
        raise SystemExit(f"cannot start a test Slurm cluster: {missing}")
    cluster = SlurmCluster().start()
    try:
        os.environ["SLURM_CONF"] = str(cluster.conf)
        settings = SlurmSettings(cpus_per_task=2, mem="500M", poll_seconds=args.poll)
        executor = SlurmExecutor(settings, secrets.token_hex(4), python=sys.executable)
        with tempfile.TemporaryDirectory() as tmp:
            runs = asyncio.run(measure(args.rounds, args.steps, Path(tmp), "slurm", executor))
    finally:
        cluster.stop()
    report(runs, "slurm", args.steps, target=None)
    print(f"slurm.poll_seconds = {args.poll:g}: colabot sees a step's end up to that late")


if __name__ == "__main__":
    main()

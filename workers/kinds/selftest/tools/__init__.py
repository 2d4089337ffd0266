"""The selftest kind's tool: ``python -m workers.kinds.selftest.tools run <work folder>`` runs
the job described in the folder's ``request.json``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workers.kinds.plans import REQUEST, load
from workers.kinds.selftest.plan import Request
from workers.kinds.selftest.tools.job import run


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="selftest", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["run"])
    parser.add_argument("work", type=Path)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    request = load(Request, args.work / REQUEST)
    if request is None:
        print(f"selftest: error: no {REQUEST} in {args.work}", flush=True)
        return 2
    return run(request)

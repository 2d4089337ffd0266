"""A step's secrets on a cluster: handed over in a private file, never in the job's
description.

What a cluster keeps of a job is read by more people than colabot's user: Ray's Jobs API
shows a job's ``runtime_env`` to anyone with the cluster's token (and its dashboard), and
Slurm keeps a batch job's environment in the controller's saved state. So the variables in
:data:`HANDED_OVER` (the W&B key of an online run) are written to a 0600 file in the job's
folder on the shared disk, and the step starts as::

    python -m workers.executors.handover FILE -- ARGV...

which reads the file, removes it, puts the variables in its environment and becomes ARGV
(``exec``: the same process, so a cluster's signals reach the step). It starts with the
step's environment (``PYTHONSAFEPATH``, colabot's source first on ``PYTHONPATH``), so a
working folder inside an input cannot shadow it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from workers.executors.base import Launch
from workers.safety.files import open_nofollow, private_dir, write_private

MODULE = "workers.executors.handover"
HANDED_OVER = frozenset({"WANDB_API_KEY"})
"""A step's variables that never go into a cluster's job description."""
SUFFIX = ".secrets"


def secret_part(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of a step's environment that go through the private file."""
    return {key: value for key, value in env.items() if key in HANDED_OVER and value}


def hand_over(launch: Launch, path: Path, python: str) -> Launch:
    """The launch as a cluster gets it: without its secret variables, which are written to
    ``path`` (a private file), and started through this module when it has any."""
    secret = secret_part(launch.env)
    if not secret:
        path.unlink(missing_ok=True)
        return launch
    private_dir(path.parent)
    write_private(path, json.dumps(secret).encode())
    env = {key: value for key, value in launch.env.items() if key not in HANDED_OVER}
    argv = (python, "-m", MODULE, str(path), "--", *launch.argv)
    return dataclasses.replace(launch, argv=argv, env=env)


def main(args: Sequence[str]) -> int:
    """Read and remove the file, then become the step (returns only when that fails)."""
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m workers.executors.handover FILE -- ARGV...", file=sys.stderr)
        return 2
    path, argv = Path(args[0]), list(args[2:])
    try:
        with open_nofollow(path) as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError) as exc:
        print(f"colabot: cannot read the step's private settings ({exc})", file=sys.stderr)
        return 2
    finally:
        path.unlink(missing_ok=True)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        print("colabot: the step's private settings are not a set of variables", file=sys.stderr)
        return 2
    os.environ.update(data)
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - the step's own argv, as a cluster runs it
    except OSError as exc:
        print(f"colabot: cannot start {argv[0]!r}: {exc.strerror or exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

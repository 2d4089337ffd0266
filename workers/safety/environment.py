"""The environment of every process colabot starts for a job: a step on any executor, a
cluster's probe, ``/plot`` and ``colabot check``'s helpers.

It is colabot's own environment without a secret (the chat's and the clouds' credentials,
W&B's variables, a Ray token), plus what makes a sent file unable to run code: Python never
puts the working folder (or a script's folder) first on ``sys.path`` (``PYTHONSAFEPATH``),
and colabot's own source comes first on ``PYTHONPATH``. A step's working folder can lie
inside an unpacked input, and ``python -m`` from there would otherwise import a ``workers/``,
``spacy/`` or ``torch.py`` the input planted beside its real files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import workers

# Variables a job must never see: chat and cloud credentials, and W&B's own (colabot sets
# the W&B variables of a run itself, the key only for an online run).
SECRET_PREFIXES = ("COLABOT_", "TELEGRAM_", "WANDB_")
SECRET_NAMES = frozenset({"GOOGLE_APPLICATION_CREDENTIALS", "RAY_AUTH_TOKEN"})

SOURCE_ROOT = str(Path(workers.__file__).resolve().parent.parent)
"""The folder colabot's packages are imported from."""


def is_secret_variable(name: str) -> bool:
    """Whether an environment variable of colabot's is kept from every job."""
    return name.startswith(SECRET_PREFIXES) or name in SECRET_NAMES


def step_environment(
    extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for a job's process: ``base`` (colabot's own by default) without
    secrets, made safe for Python, plus the step's own ``extra`` settings."""
    source = os.environ if base is None else base
    env = {key: value for key, value in source.items() if not is_secret_variable(key)}
    paths = [SOURCE_ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONSAFEPATH"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env

"""spaCy's command line, optionally without PyTorch: ``python -m workers.kinds.spacy.tools
spacy [--no-torch] train CONFIG ...`` runs ``python -m spacy train CONFIG ...``.

With ``--no-torch`` an ``import torch`` fails, so Thinc runs without it: the same results for
pipelines that use no PyTorch layers, seconds sooner and about 800 MB lighter.

And weasel's, for a spaCy project: ``python -m workers.kinds.spacy.tools weasel run COMMAND
DIR`` (:func:`run_weasel`).
"""

from __future__ import annotations

import os
import sys


def run_spacy(args: list[str]) -> None:
    """Run spaCy's CLI with the given arguments (it exits the process itself)."""
    args = list(args)
    if args[:1] == ["--no-torch"]:
        args.pop(0)
        sys.modules["torch"] = None  # type: ignore[assignment]
    sys.argv = ["spacy", *args]
    from spacy.cli._util import setup_cli

    from workers.kinds.spacy.tools.errors import StoppedEarly

    try:
        setup_cli()
    except StoppedEarly as stop:
        print(f"colabot-spacy: training {stop}; model-best and model-last are saved", flush=True)
        sys.exit(0)


def run_weasel(args: list[str]) -> None:
    """Run weasel's CLI (``run COMMAND DIR``) for a spaCy project (it exits the process).

    This process starts like every step, with ``PYTHONSAFEPATH``: the project folder it
    works in cannot shadow weasel, spaCy or colabot. The project's own commands are code by
    design and run as the project documents them: without ``PYTHONSAFEPATH``, so that
    ``python scripts/x.py`` finds the modules beside its script, as Python always lets it.
    """
    os.environ.pop("PYTHONSAFEPATH", None)
    sys.argv = ["weasel", *args]
    from weasel.cli.main import COMMAND, app  # type: ignore[import-untyped]

    app(prog_name=COMMAND)

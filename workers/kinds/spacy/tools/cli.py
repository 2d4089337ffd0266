"""spaCy's command line, optionally without PyTorch: ``python -m workers.kinds.spacy.tools
spacy [--no-torch] train CONFIG ...`` runs ``python -m spacy train CONFIG ...``.

With ``--no-torch`` an ``import torch`` fails, so Thinc runs without it: the same results for
pipelines that use no PyTorch layers, seconds sooner and about 800 MB lighter.
"""

from __future__ import annotations

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

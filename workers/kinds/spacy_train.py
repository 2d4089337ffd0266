"""spaCy's command line, optionally without PyTorch: ``python -m workers.kinds.spacy_train
[--no-torch] train CONFIG ...`` runs ``python -m spacy train CONFIG ...``.

With ``--no-torch`` an ``import torch`` fails, so Thinc runs without it: the same results for
pipelines that use no PyTorch layers, seconds sooner and about 800 MB lighter.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run spaCy's CLI with the given arguments (it exits the process itself)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--no-torch"]:
        args.pop(0)
        sys.modules["torch"] = None  # type: ignore[assignment]
    sys.argv = ["spacy", *args]
    from spacy.cli._util import setup_cli

    setup_cli()


if __name__ == "__main__":
    main()

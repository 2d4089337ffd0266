"""``python -m workers.kinds.spacy.tools <command> ...``."""

from __future__ import annotations

import contextlib
import sys

from workers.kinds.spacy.tools import main

with contextlib.suppress(BrokenPipeError):
    sys.exit(main())

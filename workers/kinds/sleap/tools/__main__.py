"""``python -m workers.kinds.sleap.tools <command> ...``."""

from __future__ import annotations

import contextlib
import sys

from workers.kinds.sleap.tools import main

with contextlib.suppress(BrokenPipeError):
    sys.exit(main())

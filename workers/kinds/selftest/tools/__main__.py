"""``python -m workers.kinds.selftest.tools <command> ...``."""

from __future__ import annotations

import contextlib
import sys

from workers.kinds.selftest.tools import main

with contextlib.suppress(BrokenPipeError):
    sys.exit(main())

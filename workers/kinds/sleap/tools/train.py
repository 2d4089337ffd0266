"""sleap-nn's command line, with its ZMQ training controller checking for a stop without
waiting: ``python -m workers.kinds.sleap.tools sleap-nn train CONFIG [key=value ...]``.

sleap-nn's controller (what a stop-early request reaches) polls its socket after every
training batch, waiting 10 ms each time nothing came; measured here that added 2 to 6 s per
200 steps, and a fast GPU batch takes little more than that. A poll that does not wait hears
the same requests, since they queue on the socket until read. Everything else is sleap-nn's
own: its command line, its callbacks, its training.

Runs in job subprocesses only (it imports sleap-nn, which imports torch).
"""

from __future__ import annotations

import sys
from typing import Any

POLL_MS = 0


def prompt_controller() -> None:
    """Make the training controller sleap-nn builds poll without waiting."""
    from sleap_nn.training import callbacks, model_trainer

    base: Any = callbacks.TrainingControllerZMQ

    class PromptController(base):  # type: ignore[misc]
        """sleap-nn's controller with a poll that does not wait."""

        def __init__(
            self, address: str = "tcp://127.0.0.1:9000", topic: str = "", poll_timeout: int = 0
        ) -> None:
            super().__init__(address=address, topic=topic, poll_timeout=POLL_MS)

    model_trainer.TrainingControllerZMQ = PromptController


def run_sleap_nn(args: list[str]) -> None:
    """Run sleap-nn's command line with ``args`` (it exits the process itself)."""
    if args[:1] == ["train"]:
        prompt_controller()
    from sleap_nn.cli import cli

    sys.argv = ["sleap-nn", *args]
    cli(prog_name="sleap-nn")

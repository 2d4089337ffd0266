"""The errors of the spacy kind's tools."""

from __future__ import annotations


class ToolError(Exception):
    """A request the program refuses, with the reason in words for the chat."""


class StoppedEarly(BaseException):
    """Training was asked to stop early and did, at an evaluation (models are saved).

    A BaseException, so that spaCy's training loop does not report it as a failure; it
    still saves model-last on its way out, as for any exception.
    """

    def __init__(self, step: int, epoch: int) -> None:
        super().__init__(f"stopped early at step {step} (epoch {epoch})")
        self.step = step
        self.epoch = epoch

"""The errors of the spacy kind's tools."""

from __future__ import annotations


class ToolError(Exception):
    """A request the program refuses, with the reason in words for the chat."""

"""The errors of the sleap kind's tools."""

from __future__ import annotations


class ToolError(Exception):
    """A refusal or failure with a message for the person (printed, then exit 2)."""

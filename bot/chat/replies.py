"""What a chat service answers besides text: a chart with its caption, and progress messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Photo:
    """A chart to send, with its caption (in the markup of whoever made it: the daily
    report's is plain text, a command's is its front end's)."""

    png: bytes
    caption: str


Progress = Callable[[str], Awaitable[object]]
"""Hears how far a slow command got, in plain text (the front end marks it up)."""

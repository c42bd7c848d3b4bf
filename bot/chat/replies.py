"""What a chat service answers besides text: a chart with its caption, and progress messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Photo:
    """A chart to send, with its caption (Telegram HTML)."""

    png: bytes
    caption: str


Progress = Callable[[str], Awaitable[object]]

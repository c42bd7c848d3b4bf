"""What a chat service answers besides text: a chart with its caption, and progress messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Photo:
    """A chart to send, with its caption (in the markup of whoever made it: the daily
    report's is plain text, a command's is its front end's)."""

    png: bytes
    caption: str


Progress = Callable[[str], Awaitable[object]]
"""Hears how far a slow command got, in plain text (the front end marks it up)."""


def in_tenths(progress: Progress, head: str) -> Callable[[int, int], Coroutine[Any, Any, None]]:
    """What hears each of ``total`` parts of a job finish: an edit of its progress message
    per 10% ("HEAD: 40%"), and at the end; never one per part."""
    shown = {"at": -1}

    async def on_part(done: int, total: int) -> None:
        percent = 100 * done // total
        if percent // 10 > shown["at"] // 10 or done == total:
            shown["at"] = percent
            await progress(f"{head}: {percent}%")

    return on_part

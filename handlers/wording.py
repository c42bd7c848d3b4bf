"""How the chat quotes a user's words back and says how long ago something was sent."""

from __future__ import annotations

import math

ECHO_LIMIT = 200  # characters of the user's input an error repeats


def ago(seconds: float) -> str:
    """How long ago, for a person: "3 min ago", "2 h ago"."""
    if not math.isfinite(seconds):
        return "at a time the bot could not check"
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s ago"
    return f"{minutes} min ago" if minutes < 120 else f"{minutes // 60} h ago"


def echo(text: str, most: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``most`` characters: an error quoting the user's input stays short."""
    return text if len(text) <= most else text[: most - 1] + "…"

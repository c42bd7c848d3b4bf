"""Candle timeframes ("1m", "4h", "1d") and the time arithmetic around them."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.core.errors import UserInputError

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^([1-9][0-9]*)([mhdw])$")


def timeframe_seconds(timeframe: str) -> int:
    """Length of one candle in seconds; raises UserInputError for anything else."""
    match = _PATTERN.match(timeframe)
    if not match:
        raise UserInputError(
            f"timeframe {timeframe!r} is not valid: expected a number and a unit m/h/d/w, "
            "like 1m, 15m, 1h, 4h, 1d"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def timeframe_delta(timeframe: str) -> timedelta:
    return timedelta(seconds=timeframe_seconds(timeframe))


def timeframe_name(seconds: int) -> str:
    """The shortest name for a candle length in seconds (3600 -> "1h")."""
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise UserInputError(f"{seconds} s is not a whole number of minutes")

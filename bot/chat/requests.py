"""The words of a chat command read as values: a pair, a whole number, a number.

Bad words raise UserInputError naming what was wrong. Shared by the chat services
(bot.chat.pair_desk, bot.chat.research_desk, bot.chat.sweep_desk).
"""

from __future__ import annotations

import re

from bot.core.errors import UserInputError

MAX_BACKTEST_DAYS = 365  # the most days of candles a /backtest or /sweep asks for

_PAIR = re.compile(r"^([A-Za-z0-9]{2,15})[/\-_:]?([A-Za-z0-9]{2,15})?$")
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "USD", "EUR", "BTC", "ETH", "BNB")


def normalise_pair(text: str, quote: str) -> str:
    """BTC/USDT, BTCUSDT, btc-usdt and btc_usdt all mean BTC/USDT."""
    match = _PAIR.match(text.strip())
    if not match:
        raise UserInputError(f"{text!r} is not a pair; write it like BTC/USDT or BTCUSDT")
    base, second = match.group(1).upper(), (match.group(2) or "").upper()
    if second:
        return f"{base}/{second}"
    for known in (quote, *_QUOTES):
        if base.endswith(known) and len(base) > len(known):
            return f"{base[: -len(known)]}/{known}"
    raise UserInputError(f"{text!r}: say which currency it is quoted in, like {base}/{quote}")


def whole_number(name: str, text: str, lowest: int, highest: int) -> int:
    """``text`` as a whole number within bounds, or a UserInputError naming ``name``."""
    try:
        value = int(text)
    except ValueError:
        raise UserInputError(f"{name} {text!r}: expected a whole number") from None
    if not lowest <= value <= highest:
        raise UserInputError(f"{name} {value} must be from {lowest} to {highest}")
    return value


def number(name: str, text: str) -> float:
    """``text`` as a number, or a UserInputError naming ``name``."""
    try:
        return float(text)
    except ValueError:
        raise UserInputError(f"{name}={text!r}: expected a number") from None

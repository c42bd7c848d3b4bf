"""Numbers written for a phone: prices and amounts, never with an exponent.

A leaf: chat replies and the dust desk's alerts both write amounts.
"""

from __future__ import annotations

import math


def price_text(value: float, decimals: int | None = None) -> str:
    """A price for a phone: in the market's ``decimals`` where known, else cents from 1 up
    and four significant digits below (0.00001234)."""
    if decimals is not None:
        return f"{value:,.{decimals}f}"
    if abs(value) >= 1 or value == 0:
        return f"{value:,.2f}"
    digits = 3 - math.floor(math.log10(abs(value)))
    return f"{value:.{digits}f}"


def amount_text(value: float) -> str:
    """An amount without an exponent: 1,234,567.8, 0.00012 (up to 8 decimals)."""
    text = f"{value:,.8f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"

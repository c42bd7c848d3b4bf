"""What the chat speaks for: the mode, the exchange, the quote, and how it quotes prices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.core.number_text import price_text
from bot.research.account_terms import AccountTerms


def unknown_precision(pair: str) -> int | None:
    """No market loaded (a replay): prices are shown by their size."""
    return None


@dataclass(frozen=True, slots=True)
class Venue:
    mode: str  # paper or live
    exchange: str
    quote: str
    terms: AccountTerms = AccountTerms()  # the account /backtest and /sweep simulate
    # decimals the exchange quotes a pair's price in, where its markets are loaded
    price_decimals: Callable[[str], int | None] = unknown_precision

    def price(self, pair: str, value: float) -> str:
        """``value`` as ``pair``'s price is quoted on this venue."""
        return price_text(value, self.price_decimals(pair))

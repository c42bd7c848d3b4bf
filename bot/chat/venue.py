"""What the chat speaks for: the mode, the exchange, the quote, and how it quotes prices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.core.errors import UserInputError
from bot.core.number_text import price_text
from bot.research.account_terms import NONE, Overrides, ResearchTerms
from bot.research.portfolio_inputs import PortfolioConfig


def unknown_precision(pair: str) -> int | None:
    """No market loaded (a replay): prices are shown by their size."""
    return None


@dataclass(frozen=True, slots=True)
class Venue:
    mode: str  # paper or live
    exchange: str
    quote: str
    # The terms /backtest and /sweep simulate for a pair, from the config and the engine
    # (bot.app.chat_root.chat_venue); None: no research from this chat.
    terms: Callable[[str, Overrides], ResearchTerms] | None = None
    # decimals the exchange quotes a pair's price in, where its markets are loaded
    price_decimals: Callable[[str], int | None] = unknown_precision
    # the configured pairs /backtest portfolio replays together (None: not from this chat)
    portfolio: PortfolioConfig | None = None

    def research_terms(self, pair: str, overrides: Overrides = NONE) -> ResearchTerms:
        """The terms a /backtest or /sweep of ``pair`` simulates now, ``overrides`` on top."""
        if self.terms is None:
            raise UserInputError("backtests and sweeps are not available here")
        return self.terms(pair, overrides)

    def price(self, pair: str, value: float) -> str:
        """``value`` as ``pair``'s price is quoted on this venue."""
        return price_text(value, self.price_decimals(pair))

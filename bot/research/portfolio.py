"""Portfolio backtests: every configured pair traded together by the kernel on one clock,
sharing the account's cash and its limits in the live engine's order (``kernel.py``).

The public surface is ``run_portfolio`` and the ``PortfolioResult`` it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bot.core.domain import Trade
from bot.portfolio.performance import Metrics
from bot.research.account_terms import NONE, Overrides, ResearchTerms, TermsConfig
from bot.research.backtest import TradeTable

# Why an entry signal was refused, in the engine's order of checks (guard.entry_block, then
# max open positions, then the budget under the minimum order).
VETO_REASONS = ("halt", "daily", "cooldown", "max_open", "min_order")


class _PairEntry(Protocol):
    @property
    def pair(self) -> str: ...
    @property
    def strategy(self) -> str: ...
    @property
    def timeframe(self) -> str: ...
    @property
    def params(self) -> Mapping[str, int | float]: ...
    @property
    def capital_share(self) -> float: ...


class PortfolioConfig(TermsConfig, Protocol):
    """The config a portfolio backtest reads (bot/app/config.py's Settings): the terms'
    sections and every [[pairs]] entry with its strategy."""

    @property
    def pairs(self) -> Sequence[_PairEntry]: ...


@dataclass(frozen=True, slots=True)
class PairResult:
    pair: str
    strategy: str
    terms: ResearchTerms  # this pair's (its capital share)
    table: TradeTable  # its trades; a row with reason "open" is still held at the end
    metrics: Metrics  # of its contribution (balance + contribution as its equity curve)
    contribution: NDArray[np.float64]  # per step: its sells - buys - fees + held * last close
    vetoes: dict[str, int]  # entry signals refused, by reason (VETO_REASONS)
    rejected_funds: int  # orders the account refused: cash set aside by others' limits
    sales_over_cap: int  # sales larger than the volume cap: sold whole here, in parts live


@dataclass(frozen=True, slots=True)
class PortfolioResult:
    terms: ResearchTerms  # the account's (capital share: 1, each pair's is in ``pairs``)
    close_ms: NDArray[np.int64]  # each step of the clock: a close time some pair acted on
    equity: NDArray[np.float64]  # the portfolio's at each step, after every pair's turn
    pairs: tuple[PairResult, ...]  # in config order
    metrics: Metrics  # of the portfolio's equity
    halted_at: datetime | None  # when the drawdown limit halted entries for good

    def trades(self) -> list[Trade]:
        """Every pair's trades, oldest entry first (open ones last marked, reason "open")."""
        trades = [trade for pair in self.pairs for trade in pair.table.trades()]
        return sorted(trades, key=lambda trade: (trade.entry_time, trade.pair))


def run_portfolio(
    config: PortfolioConfig,
    candles: Mapping[str, pd.DataFrame],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    overrides: Overrides = NONE,
) -> PortfolioResult:
    """Replay every pair of ``config.pairs`` together, as the demo replays them live.

    ``candles``: each configured pair's validated candles (``read_candle_file`` frames), all
    of the pairs' one timeframe. The clock is the union of their close times, cut to the window
    they share: the first step at the earliest first open + 2 candles (candle 0 is history, as
    in ``load_replay``/``assemble_replay``) or at the first close >= ``since``; the last at the
    earliest last close - 1 candle (``until`` cuts it earlier). Candles before the first step
    only warm the indicators up. The account's terms come from ``research_terms(config, pair,
    overrides)``. Raises UserInputError, with nothing run, for capital shares summing over 1,
    a pair with no candles in the window (or none given), and candles of different timeframes.
    """
    raise NotImplementedError("the portfolio kernel lands in the next commit")

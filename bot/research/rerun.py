"""A backtest receipt run again: the receipt's strategy, parameters and terms, on candles
proven to be the receipt's, and whether it made the same trades.

One path behind `pairpilot backtest --rerun` and /rerun; each reads the candles its own way.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bot.core.errors import DataError, UserInputError
from bot.research.account_terms import ResearchTerms
from bot.research.backtest import BacktestResult, run_backtest, setup_for
from bot.research.monte_carlo import MonteCarlo, resampled
from bot.research.receipts import (
    BACKTEST,
    MONTE_CARLO,
    Receipt,
    SeriesPrint,
    candle_hash,
    changes,
    rerun_verdict,
    result_summary,
    stored_terms,
)
from strategies import Strategy, StrategyConfigError, build_strategy


@dataclass(frozen=True, slots=True)
class Rerun:
    receipt: Receipt
    result: BacktestResult
    terms: ResearchTerms
    differences: tuple[str, ...]  # the result's figures that differ from the receipt's
    robustness: MonteCarlo | None = None  # drawn again as the receipt's were, if it has any

    @property
    def matched(self) -> bool:
        """The same trades, byte for byte (the trade hashes are equal), and the same figures."""
        return not self.differences

    def verdict(self) -> str:
        return rerun_verdict(self.receipt, self.differences)


def rerunnable(receipt: Receipt) -> None:
    """Refuses a receipt this rerun is not for (another kind's), before any candle is read."""
    if receipt.kind != BACKTEST:
        raise UserInputError(
            f"receipt {receipt.id} is a {receipt.kind}'s, not a single-pair backtest's"
        )


def window(series: SeriesPrint, candles: pd.DataFrame) -> pd.DataFrame | None:
    """The candles of ``series``' span out of a wider read; None when there are none."""
    stamps = candles["timestamp"]
    inside = candles[(stamps >= series.first_ms) & (stamps <= series.last_ms)]
    return inside.reset_index(drop=True) if len(inside) else None


def rerun_backtest(receipt: Receipt, candles: pd.DataFrame | None) -> Rerun:
    """Run ``receipt`` again on ``candles`` (None: they are gone). Refuses with DataError,
    running nothing, naming every change: pairpilot's version, the strategy's source, the
    candles (gone, or their hash differs)."""
    rerunnable(receipt)
    try:
        strategy: Strategy = build_strategy(receipt.strategy, receipt.params)
    except StrategyConfigError as error:
        raise DataError(f"receipt {receipt.id} cannot be rerun: {error}") from None
    terms = stored_terms(receipt)
    found = changes(receipt, strategy, [None if candles is None else candle_hash(candles)])
    if found or candles is None:
        raise DataError(
            f"receipt {receipt.id} cannot be rerun exactly: {'; '.join(found)}. Nothing was run."
        )
    series = receipt.only_series
    setup = setup_for(series.pair, series.timeframe, terms)
    result = run_backtest(candles, strategy, setup)
    now = result_summary(result)
    differences = [
        f"{key} {receipt.result.get(key)} now {value}"
        for key, value in now.items()
        if value != receipt.result.get(key)
    ]
    robustness = _robustness(receipt, result)
    if MONTE_CARLO in receipt.result and (
        robustness is None or robustness.as_dict() != receipt.result[MONTE_CARLO]
    ):
        differences.append("monte_carlo figures differ from the receipt's")
    return Rerun(receipt, result, terms, tuple(differences), robustness)


def _robustness(receipt: Receipt, result: BacktestResult) -> MonteCarlo | None:
    """The receipt's Monte Carlo drawn again on ``result``: its resamples, its seed (None: it
    has none, or the rerun closed too few trades for one)."""
    asked = receipt.result.get(MONTE_CARLO)
    if asked is None:
        return None
    try:
        return resampled(result, int(asked["resamples"]), int(asked["seed"]))
    except UserInputError:  # under two closed trades now: the trades already differ
        return None

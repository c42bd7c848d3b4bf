"""A portfolio receipt run again: the pairs the config lists (they must be the receipt's, in its
order: the kernel takes them in order), each with the receipt's strategy parameters and terms,
on candles proven to be the receipt's; and whether it made the same trades and equity.

A pair the config no longer lists, or lists with another strategy or timeframe, is refused by
name, as are changed or missing candles, a changed strategy source and changed backtest code.
One path behind `pairpilot backtest --rerun` and /rerun; each reads the candles its own way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from bot.core.domain import from_ms
from bot.core.errors import DataError
from bot.research.account_terms import NONE
from bot.research.portfolio import PortfolioResult, run_portfolio
from bot.research.portfolio_inputs import PortfolioConfig
from bot.research.portfolio_receipts import portfolio_summary
from bot.research.portfolio_sweep import Stated, Window, portfolio_sets, score_set
from bot.research.receipts import (
    Receipt,
    candle_hash,
    code_changes,
    rebuilt_terms,
    rerun_verdict,
    series_change,
    source_changed,
    source_hash,
)
from bot.research.sweep import PORTFOLIO as PORTFOLIO_ROWS
from bot.research.sweep_receipts import best_result, rows_hash
from bot.research.sweep_rerun import SweepRerun, differences, receipt_spec
from strategies import strategy_registry


@dataclass(frozen=True, slots=True)
class PortfolioRerun:
    receipt: Receipt
    result: PortfolioResult
    differences: tuple[str, ...]  # the figures and hashes that differ from the receipt's

    @property
    def matched(self) -> bool:
        return not self.differences

    def verdict(self) -> str:
        return rerun_verdict(self.receipt, self.differences)


def pair_changes(receipt: Receipt, config: PortfolioConfig) -> list[str]:
    """How the config's pairs and the strategies' code differ from the receipt's, by pair."""
    ran = {pair["pair"]: pair for pair in receipt.params["pairs"]}
    listed = {entry.pair: entry for entry in config.pairs}
    found = [
        f"{pair} is not in the config any more (the receipt ran it)"
        for pair in ran
        if pair not in listed
    ]
    found += [f"{pair} was added to the config since" for pair in listed if pair not in ran]
    if not found and list(ran) != list(listed):
        found.append(f"the config lists the pairs in another order ({', '.join(listed)})")
    for pair, was in ran.items():
        entry = listed.get(pair)
        if entry is not None and entry.strategy != was["strategy"]:
            found.append(f"{pair} runs {entry.strategy} in the config, {was['strategy']} then")
        if entry is not None and entry.timeframe != was["timeframe"]:
            found.append(f"{pair} trades {entry.timeframe} in the config, {was['timeframe']} then")
        strategy = strategy_registry().get(was["strategy"])
        if strategy is None:
            found.append(f"{pair}: strategy {was['strategy']} is gone")
        elif source_hash(strategy) != was["source_hash"]:
            found.append(f"{pair}: {source_changed(was['strategy'], strategy)}")
    return found


def rerun_portfolio(
    receipt: Receipt, config: PortfolioConfig, candles: Mapping[str, pd.DataFrame | None]
) -> PortfolioRerun:
    """Run portfolio ``receipt`` again on ``candles`` (a pair's None: they are gone). Refuses
    with DataError, running nothing, naming every change and the pair it is in."""
    frames, stated, window = _checked(receipt, config, candles)
    result = run_portfolio(
        config,
        frames,
        since=window[0],
        until=window[1],
        params=stated[0],
        stated=stated[1],
    )
    return PortfolioRerun(receipt, result, differences(receipt.result, portfolio_summary(result)))


def rerun_portfolio_sweep(
    receipt: Receipt, config: PortfolioConfig, candles: Mapping[str, pd.DataFrame | None]
) -> SweepRerun:
    """Run every set of portfolio sweep ``receipt`` again, in its order, as ``rerun_portfolio``
    runs one (refused the same way); matched when the rows hash as the sweep's did."""
    frames, stated, window = _checked(receipt, config, candles)
    spec = receipt_spec(receipt, {PORTFOLIO_ROWS: stated[1][None]})
    rows = [
        score_set(
            config, frames, spec, combo, window=window, overrides=NONE, limits=None, receipt=stated
        )
        for combo in portfolio_sets(spec, config, stated[0])[0]
    ]
    now = {**best_result(rows), "rows_hash": rows_hash(rows)}
    return SweepRerun(receipt, spec, rows, differences(receipt.result, now), [])


def _checked(
    receipt: Receipt, config: PortfolioConfig, candles: Mapping[str, pd.DataFrame | None]
) -> tuple[dict[str, pd.DataFrame], Stated, Window]:
    """The candles, the receipt's parameters and terms, and its window; DataError naming
    every change found, before anything runs."""
    found = code_changes(receipt) + pair_changes(receipt, config)
    frames = {}
    for series in receipt.series:
        frame = candles.get(series.pair)
        change = series_change(series, None if frame is None else candle_hash(frame))
        found += [change] if change else []
        if frame is not None:
            frames[series.pair] = frame
    if found:
        raise DataError(
            f"receipt {receipt.id} cannot be rerun exactly: {'; '.join(found)}. Nothing was run."
        )
    terms = {
        None: rebuilt_terms(receipt, receipt.terms["account"]),
        **{pair: rebuilt_terms(receipt, t) for pair, t in receipt.terms["by_pair"].items()},
    }
    params = {pair["pair"]: pair["params"] for pair in receipt.params["pairs"]}
    since, until = (receipt.params[key] for key in ("since", "until"))
    window = (None if since is None else from_ms(since), None if until is None else from_ms(until))
    return frames, (params, terms), window

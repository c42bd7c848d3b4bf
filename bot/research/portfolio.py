"""Portfolio backtests: every configured pair traded together by the kernel on one clock,
sharing the account's cash and its limits in the live engine's order (``kernel.py``).

The public surface is ``run_portfolio`` and the ``PortfolioResult`` it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bot.core.domain import RiskLimits, Trade, from_ms
from bot.portfolio.performance import Metrics, measure
from bot.research import kernel
from bot.research.account_terms import NONE, Overrides, ResearchTerms, research_terms
from bot.research.backtest import TradeTable
from bot.research.kernel_trades import Entries, Exits
from bot.research.portfolio_inputs import (
    PortfolioConfig,
    PortfolioInputs,
    portfolio_inputs,
)
from bot.risk.fills import bought_at, held_return, sold_at

# Why an entry signal was refused, in the engine's order of checks (guard.entry_block, then
# max open positions, then the budget under the minimum order): kernel_book's codes.
VETO_REASONS = ("halt", "daily", "cooldown", "max_open", "min_order")


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
    timeframe: str  # every pair's
    close_ms: NDArray[np.int64]  # each step of the clock: a close time some pair acted on
    equity: NDArray[np.float64]  # the portfolio's at each step, after every pair's turn
    pairs: tuple[PairResult, ...]  # in config order
    metrics: Metrics  # of the portfolio's equity
    halted_at: datetime | None  # when the drawdown limit halted entries for good

    def statement(self) -> list[str]:
        """The terms simulated, each pair's capital share in place of the account's."""
        return self.terms.statement({p.pair: p.terms.capital_share for p in self.pairs})

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
    limits: RiskLimits | None = None,
    params: Mapping[str, Mapping[str, int | float]] | None = None,
    stated: Mapping[str | None, ResearchTerms] | None = None,
) -> PortfolioResult:
    """Replay every pair of ``config.pairs`` together, as the demo replays them live.

    ``candles``: each configured pair's validated candles (``read_candle_file`` frames), all
    of the pairs' one timeframe. The clock is the union of their close times, cut to the window
    they share: the first step at the earliest first open + 2 candles (candle 0 is history, as
    in ``load_replay``/``assemble_replay``), or later at the close of the candle opening at
    ``since``; the last at the earliest last close - 1 candle, or earlier at ``until`` (candles
    opening before it). Candles before the first step only warm the indicators up; each pair's
    candle after the last step gives the next open its last signal fills at. The account's
    terms come from ``research_terms(config, pair, overrides, limits=limits)`` (``limits``: the
    ones the bot trades under where /risk changed the config's). Raises UserInputError, with
    nothing run, for capital shares summing over 1, a pair with no candles in the window (or
    none given), and candles of different timeframes. ``params``: a pair's strategy parameters
    in place of its configured ones (a portfolio sweep's set, ``portfolio_sweep``). ``stated``:
    the terms in place of the config's, the account's under None and each pair's under its name
    (a receipt's, ``portfolio_rerun``).
    """
    by_pair = {pair: terms for pair, terms in (stated or {}).items() if pair is not None}
    inputs = portfolio_inputs(
        config, candles, (since, until), overrides, limits, params, by_pair or None
    )
    c = inputs.columns
    curves, entries, exits, pair_of, tallies = kernel.run(
        c["open"],
        c["high"],
        c["low"],
        c["close"],
        c["volume"],
        c["codes"],
        c["atr"],
        c["scale"],
        c["day"],
        c["close_ms"],
        c["act_ms"],
        inputs.offsets,
        inputs.lengths,
        inputs.steps,
        inputs.params,
    )
    equity, contribution, _ = curves
    count, still_open, fees, vetoes, rejected, over_cap, halted_at = tallies
    steps = inputs.steps
    times = steps / 1000
    pairs = []
    for k, pair in enumerate(inputs.pairs):
        rows = np.flatnonzero(pair_of[:count] == k)
        table = _table(pair.pair, rows, entries, exits, bool(still_open[k]))
        start = pair.terms.balance * pair.terms.capital_share
        pairs.append(
            PairResult(
                pair=pair.pair,
                strategy=pair.strategy.name,
                terms=pair.terms,
                table=table,
                metrics=measure(
                    times=times,
                    equity=start + contribution[:, k],
                    trade_pnl=table.pnl,
                    trade_seconds=(table.exit_ms - table.entry_ms) / 1000,
                    fees=float(table.fee.sum()),
                    start_equity=start,
                    buy_and_hold_return=_held(inputs, k),
                ),
                contribution=contribution[:, k].copy(),
                vetoes=dict(zip(VETO_REASONS, vetoes[k].tolist(), strict=True)),
                rejected_funds=int(rejected[k]),
                sales_over_cap=int(over_cap[k]),
            )
        )
    terms = stated[None] if stated else research_terms(config, None, overrides, limits=limits)
    return PortfolioResult(
        terms=terms,
        timeframe=inputs.timeframe,
        close_ms=steps,
        equity=equity,
        pairs=tuple(pairs),
        metrics=measure(
            times=times,
            equity=equity,
            trade_pnl=np.concatenate([pair.table.pnl for pair in pairs]),
            trade_seconds=np.concatenate(
                [(pair.table.exit_ms - pair.table.entry_ms) / 1000 for pair in pairs]
            ),
            fees=float(fees),
            start_equity=terms.balance,
            buy_and_hold_return=sum(
                pair.terms.capital_share * pair.metrics.buy_and_hold_return for pair in pairs
            ),
        ),
        halted_at=from_ms(int(steps[halted_at])) if halted_at >= 0 else None,
    )


def _table(
    pair: str, rows: NDArray[np.int64], entries: Entries, exits: Exits, still_open: bool
) -> TradeTable:
    entry_ms, entry_price, amount, entry_fee = entries
    exit_ms, exit_price, exit_fee, reason, _ = exits
    amount = amount[rows]
    fee = entry_fee[rows] + exit_fee[rows]
    return TradeTable(
        pair=pair,
        entry_ms=entry_ms[rows],
        exit_ms=exit_ms[rows],
        entry_price=entry_price[rows],
        exit_price=exit_price[rows],
        amount=amount,
        fee=fee,
        pnl=amount * exit_price[rows] - amount * entry_price[rows] - fee,
        reason=reason[rows],
        still_open=still_open,
    )


def _held(inputs: PortfolioInputs, k: int) -> float:
    """Pair ``k`` held all in over the window: bought at the first open an entry could fill
    at, sold at its last close acted on, with the fee and slippage of each."""
    start, length = int(inputs.offsets[k]), int(inputs.lengths[k])
    close_ms = inputs.columns["close_ms"][start : start + length]
    last = start + max(0, int(np.searchsorted(close_ms, inputs.steps[-1], side="right")) - 1)
    terms = inputs.pairs[k].terms
    first = start + min(inputs.pairs[k].first_buy, length - 1)
    bought = bought_at(float(inputs.columns["open"][first]), terms.slippage)
    sold = sold_at(float(inputs.columns["close"][last]), terms.slippage)
    return float(held_return(bought, sold, terms.fee_rate))

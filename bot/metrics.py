"""Round trips from fills, and the numbers a trader judges a run by."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bot.domain import Fill, Side, Trade


def round_trips(fills: Iterable[Fill]) -> list[Trade]:
    """Closed trades per pair: a trade opens when a flat pair is bought, closes when flat again.

    Entry and exit prices are volume-weighted; PnL is net of every fee of the trade.
    """
    open_fills: dict[str, list[Fill]] = {}
    held: dict[str, float] = {}
    trades: list[Trade] = []
    for fill in sorted(fills, key=lambda f: f.time):
        legs = open_fills.setdefault(fill.pair, [])
        legs.append(fill)
        change = fill.amount if fill.side is Side.BUY else -fill.amount
        held[fill.pair] = held.get(fill.pair, 0.0) + change
        bought = sum(f.amount for f in legs if f.side is Side.BUY)
        if held[fill.pair] <= bought * 1e-9:
            trades.append(_trade(legs))
            open_fills[fill.pair] = []
            held[fill.pair] = 0.0
    return sorted(trades, key=lambda t: t.exit_time)


def _trade(legs: Sequence[Fill]) -> Trade:
    buys = [f for f in legs if f.side is Side.BUY]
    sells = [f for f in legs if f.side is Side.SELL]
    bought = sum(f.amount for f in buys)
    sold = sum(f.amount for f in sells)
    fee = sum(f.fee for f in legs)
    return Trade(
        pair=legs[0].pair,
        entry_time=buys[0].time,
        exit_time=sells[-1].time,
        entry_price=sum(f.notional for f in buys) / bought,
        exit_price=sum(f.notional for f in sells) / sold,
        amount=bought,
        pnl=sum(f.notional for f in sells) - sum(f.notional for f in buys) - fee,
        fee=fee,
    )


def max_drawdown(equity: Sequence[float] | np.ndarray) -> float:
    """Largest fall from a running peak, as a fraction of that peak (0.25 = 25%)."""
    values = np.asarray(equity, dtype=float)
    if values.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(values)
    return float(np.max((peaks - values) / peaks))


def drawdown_series(equity: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(equity, dtype=float)
    return (values - np.maximum.accumulate(values)) / np.maximum.accumulate(values)


@dataclass(frozen=True, slots=True)
class Summary:
    start_equity: float
    end_equity: float
    pnl: float
    total_return: float
    max_drawdown: float
    trades: int
    wins: int
    win_rate: float
    fees: float

    def as_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def summarize(
    start_equity: float, equity: Sequence[float], trades: Sequence[Trade], fees: float
) -> Summary:
    """Headline numbers; ``fees`` is every fee paid, open positions included."""
    end = float(equity[-1]) if len(equity) else start_equity
    wins = sum(1 for trade in trades if trade.pnl > 0)
    return Summary(
        start_equity=start_equity,
        end_equity=end,
        pnl=end - start_equity,
        total_return=end / start_equity - 1,
        max_drawdown=max_drawdown([start_equity, *equity]),
        trades=len(trades),
        wins=wins,
        win_rate=wins / len(trades) if trades else 0.0,
        fees=fees,
    )

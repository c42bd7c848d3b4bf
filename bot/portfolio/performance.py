"""Round trips from fills, and the numbers a trader judges a run by."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from bot.core.domain import Fill, Side, Trade


def round_trips(
    fills: Iterable[Fill],
    too_small: Callable[[str, float, float], str | None] | None = None,
    dust: Mapping[str, float] | None = None,
) -> list[Trade]:
    """Closed trades per pair: a trade opens when a flat pair is bought, closes when flat again.

    Entry and exit prices are volume-weighted; PnL is net of every fee of the trade. A sell
    while flat closes an earlier trade that is not among ``fills`` and is skipped.
    ``too_small``: the exchange's dust rule (``Exchange.too_small``); a sell that leaves only
    dust closes the trade too, and the dust is carried into the next one (sold with its exit).
    A later sale of no more than that dust (the engine sells an exit's rest at the next close,
    where it may be worth the exchange's minimum) is part of the trade that left it (which
    keeps the time it closed at: a daily report counts it once, on that day); a dust
    conversion (/dust) is not: it closes nothing, the dust valued at nothing.
    A rest sellable at its exit's price may be dust by the next close, and never sold: the
    trade ended at its last sale. A buy shows it (the engine buys only when flat or holding
    dust), as does a conversion; until then ``dust`` does (pair: the amount the engine
    declared dust, ``Engine.is_dust``).
    """
    open_fills: dict[str, list[Fill]] = {}
    closed: dict[str, list[Fill]] = {}  # the legs of each pair's last trade, while dust is left
    held: dict[str, float] = {}
    trades: list[Trade] = []

    def close(pair: str, legs: list[Fill], left: float) -> None:
        trades.append(_trade(legs))
        open_fills[pair] = []
        held[pair] = left
        if left:
            closed[pair] = legs

    for fill in sorted(fills, key=lambda f: f.time):
        legs = open_fills.setdefault(fill.pair, [])
        if _sold_in(legs) and (fill.side is Side.BUY or fill.is_conversion):
            close(fill.pair, legs, held[fill.pair])  # what was left of it was dust
            legs = open_fills[fill.pair]
        before = held.get(fill.pair, 0.0)
        change = fill.amount if fill.side is Side.BUY else -fill.amount
        held[fill.pair] = before + change
        if fill.side is Side.SELL and not legs:
            held[fill.pair] = max(0.0, held[fill.pair])
            last = closed.get(fill.pair)
            if last and not fill.is_conversion and fill.amount <= before * (1 + 1e-6):
                closed[fill.pair] = [*last, fill]
                index = -1 - _newer(trades, fill.pair)  # it keeps the time it closed at
                trades[index] = _trade(closed[fill.pair], trades[index].exit_time)
            continue
        closed.pop(fill.pair, None)
        legs.append(fill)
        bought = sum(f.amount for f in legs if f.side is Side.BUY)
        left = held[fill.pair]
        is_dust = (
            fill.side is Side.SELL
            and too_small is not None
            and too_small(fill.pair, left, fill.price) is not None
        )
        if left <= bought * 1e-9 or is_dust:
            close(fill.pair, legs, left if is_dust and left > bought * 1e-9 else 0.0)
    for pair, legs in open_fills.items():
        if _sold_in(legs) and _declared((dust or {}).get(pair), held[pair]):
            close(pair, legs, held[pair])
    return sorted(trades, key=lambda t: t.exit_time)


def _declared(dust: float | None, held: float) -> bool:
    return dust is not None and abs(held - dust) <= 1e-9 * max(1.0, dust)


def _sold_in(legs: Sequence[Fill]) -> bool:
    return any(f.side is Side.SELL for f in legs)


def _newer(trades: Sequence[Trade], pair: str) -> int:
    """How many trades of other pairs closed after ``pair``'s last one."""
    return next(i for i, trade in enumerate(reversed(trades)) if trade.pair == pair)


def _trade(legs: Sequence[Fill], exit_time: datetime | None = None) -> Trade:
    buys = [f for f in legs if f.side is Side.BUY]
    sells = [f for f in legs if f.side is Side.SELL]
    bought = sum(f.amount for f in buys)
    sold = sum(f.amount for f in sells)
    fee = sum(f.fee for f in legs)
    return Trade(
        pair=legs[0].pair,
        entry_time=buys[0].time,
        exit_time=exit_time or sells[-1].time,
        entry_price=sum(f.notional for f in buys) / bought,
        exit_price=sum(f.notional for f in sells) / sold,
        amount=bought,
        pnl=sum(f.notional for f in sells) - sum(f.notional for f in buys) - fee,
        fee=fee,
    )


def max_drawdown(equity: Sequence[float] | NDArray[np.float64]) -> float:
    """Largest fall from a running peak, as a fraction of that peak (0.25 = 25%)."""
    values = np.asarray(equity, dtype=float)
    if values.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(values)
    return float(np.max((peaks - values) / peaks))


def drawdown_series(equity: Sequence[float] | NDArray[np.float64]) -> NDArray[np.float64]:
    values = np.asarray(equity, dtype=float)
    drawdown: NDArray[np.float64] = (
        values - np.maximum.accumulate(values)
    ) / np.maximum.accumulate(values)
    return drawdown


YEAR_SECONDS = 365.25 * 86400
# Shorter spans are not annualised in reports: a week's -2.8% is not a CAGR of -78%.
MIN_ANNUALISED_DAYS = 90


@dataclass(frozen=True, slots=True)
class Metrics:
    """What a run of a strategy made, how it got there, and what holding would have made."""

    start_equity: float
    end_equity: float
    pnl: float
    total_return: float
    cagr: float
    max_drawdown: float
    max_drawdown_hours: float  # longest time below a previous peak
    sharpe: float
    sortino: float
    calmar: float
    trades: int
    wins: int
    win_rate: float
    profit_factor: float  # gross profit / gross loss; inf with no losing trade
    expectancy: float  # mean PnL per closed trade, quote currency
    avg_holding_hours: float
    exposure: float  # share of the period with a position open
    fees: float
    buy_and_hold_return: float
    span_days: float = 0.0  # days of data: the first candle's open to the last close

    @property
    def annualised(self) -> bool:
        """Whether the span is long enough for CAGR and Calmar to mean something."""
        return self.span_days >= MIN_ANNUALISED_DAYS

    def as_dict(self) -> dict[str, float | int | None]:
        """Plain values; infinities and NaNs become None so the dict is valid JSON."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in values.items()
        }


def profit_factor_text(m: Metrics) -> str:
    """The profit factor as a report says it: there is none without trades, nor without a
    losing one."""
    if not m.trades:
        return "no trades"
    return f"{m.profit_factor:.2f}" if math.isfinite(m.profit_factor) else "no losing trade"


def measure(
    *,
    times: NDArray[np.float64],
    equity: NDArray[np.float64],
    trade_pnl: NDArray[np.float64],
    trade_seconds: NDArray[np.float64],
    fees: float,
    start_equity: float,
    buy_and_hold_return: float,
) -> Metrics:
    """Metrics of an equity curve marked at ``times`` (epoch seconds) and its closed trades,
    given as each trade's PnL and holding time in seconds.

    Sharpe and Sortino are annualised from the per-step returns of the curve, risk-free 0.
    """
    values = np.concatenate(([start_equity], np.asarray(equity, dtype=float)))
    end = float(values[-1])
    span = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    years = span / YEAR_SECONDS
    total_return = end / start_equity - 1
    cagr = (end / start_equity) ** (1 / years) - 1 if years > 0 and end > 0 else math.nan
    drawdown = max_drawdown(values)
    returns = np.diff(values) / values[:-1]
    steps_per_year = YEAR_SECONDS / (span / (len(times) - 1)) if span > 0 else math.nan
    pnl = np.asarray(trade_pnl, dtype=float)
    count = len(pnl)
    gross_win, gross_loss = float(pnl[pnl > 0].sum()), float(-pnl[pnl <= 0].sum())
    wins = int((pnl > 0).sum())
    held = float(np.sum(trade_seconds))
    return Metrics(
        start_equity=start_equity,
        end_equity=end,
        pnl=end - start_equity,
        total_return=total_return,
        cagr=cagr,
        max_drawdown=drawdown,
        max_drawdown_hours=_longest_underwater(times, values[1:]) / 3600,
        sharpe=_ratio(returns.mean(), returns.std(), steps_per_year),
        sortino=_ratio(
            returns.mean(),
            math.sqrt(np.mean(np.minimum(returns, 0) ** 2)) if returns.size else 0.0,
            steps_per_year,
        ),
        calmar=cagr / drawdown if drawdown > 0 else math.nan,
        trades=count,
        wins=wins,
        win_rate=wins / count if count else 0.0,
        profit_factor=gross_win / gross_loss if gross_loss > 0 else math.inf,
        expectancy=float(pnl.sum()) / count if count else 0.0,
        avg_holding_hours=held / count / 3600 if count else 0.0,
        exposure=held / span if span > 0 else 0.0,
        fees=fees,
        buy_and_hold_return=buy_and_hold_return,
        # Days of data: close to close, plus the first candle (its open to its close).
        span_days=span * len(times) / (len(times) - 1) / 86400 if len(times) > 1 else 0.0,
    )


def _ratio(mean: float, deviation: float, steps_per_year: float) -> float:
    if not deviation or not math.isfinite(steps_per_year):
        return math.nan
    return float(mean / deviation * math.sqrt(steps_per_year))


def _longest_underwater(times: NDArray[np.float64], equity: NDArray[np.float64]) -> float:
    """Seconds of the longest stretch from a peak to its recovery (or to the end)."""
    if len(equity) < 2:
        return 0.0
    at_peak = equity >= np.maximum.accumulate(equity)
    last_peak = np.maximum.accumulate(np.where(at_peak, np.arange(len(equity)), 0))
    recovered = at_peak[1:] & ~at_peak[:-1]
    spans = times[1:][recovered] - times[last_peak[:-1][recovered]]
    ongoing = times[-1] - times[last_peak[-1]] if not at_peak[-1] else 0.0
    return float(max(spans.max(initial=0.0), ongoing))

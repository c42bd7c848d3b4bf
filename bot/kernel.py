"""The backtest kernel: the live engine's trading rules over float64 arrays, compiled by numba.

At the close of each candle i, in the same order as ``Engine.on_candles``:

1. A new (local) day starts the day's loss budget from the equity marked at this close.
2. An open position's protective exits are checked inside candle i (``rules.check_exit``).
3. Equity is marked at the close, the peak follows it, and ``rules.loss_gate`` halts entries:
   for good after the drawdown limit, for the rest of the day after the daily loss limit.
4. The signal acts at the next candle's open: an entry spends ``rules.entry_budget`` unless
   halted, cooling down after losses, or under the minimum order; an exit sells everything.
   The last candle's signal is never acted on. With an entry offset the entry is instead a
   limit buy at close * (1 - offset), good for candle i+1: filled at min(open, limit) if that
   candle's low reaches it (no slippage; booked at its close, after its protective checks),
   cancelled if not.

Buys fill at open * (1 + slippage), sells at price * (1 - slippage); the fee is a fraction of
each fill's notional. Every fill is stamped with the close of the candle being processed,
which is when the live engine learns of it. The parity tests hold this to the live engine,
trade for trade, on real data for every built-in strategy.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numba
import numpy as np

from bot.domain import RiskLimits
from bot.rules import (
    EXIT_REASONS,
    GATE_DAILY_LOSS,
    GATE_DRAWDOWN,
    SIGNAL,
    check_exit,
    entry_budget,
    initial_stop_distance,
    loss_gate,
    trade_lost,
    volatility_scales,
)

__all__ = ["EXIT_REASONS", "KernelCosts", "KernelExits", "KernelResult", "simulate", "warm_up"]

# Positions in the kernel's parameter vector.
(BALANCE, FEE, SLIPPAGE, SHARE, FRACTION, MIN_ORDER, MAX_POSITION, MAX_EXPOSURE, RISK_PER_TRADE,
 DAILY_LOSS, MAX_DRAWDOWN, COOLDOWN_LOSSES, COOLDOWN_CANDLES, MAX_OPEN, STOP_LOSS, TAKE_PROFIT,
 TRAILING, ATR_MULTIPLE, ENTRY_OFFSET) = range(19)  # fmt: skip


@dataclass(frozen=True, slots=True)
class KernelCosts:
    balance: float
    fee_rate: float
    slippage: float
    capital_share: float
    limits: RiskLimits


@dataclass(frozen=True, slots=True)
class KernelExits:
    stop_loss: float
    take_profit: float
    trailing_stop: float
    atr_stop: float
    entry_offset: float = 0.0  # limit entries this fraction under the signal's close


@dataclass(frozen=True, slots=True)
class KernelResult:
    equity: np.ndarray  # at each candle's close, after that close's actions
    stop_line: np.ndarray  # the protective stop in force during each candle, NaN when flat
    entry_index: np.ndarray  # the candle at whose close the entry filled
    exit_index: np.ndarray  # the candle at whose close the exit filled
    entry_price: np.ndarray
    exit_price: np.ndarray
    amount: np.ndarray
    entry_fee: np.ndarray
    exit_fee: np.ndarray
    exit_reason: np.ndarray
    ambiguous: np.ndarray  # the exit candle reached both the stop and the target
    fees: float  # every fee paid, the open position's entry included
    vetoes: int  # entry signals the risk rules refused
    halted_at: int  # the candle whose close tripped the drawdown halt, or -1


def simulate(
    candles: dict[str, np.ndarray],
    codes: np.ndarray,
    atr: np.ndarray,
    day: np.ndarray,
    costs: KernelCosts,
    exits: KernelExits,
) -> KernelResult:
    """Run the rules over one pair's candles (arrays ``open``, ``high``, ``low``, ``close``;
    ``day`` numbers each candle's close by local calendar day)."""
    limits = costs.limits
    params = np.array(
        [costs.balance, costs.fee_rate, costs.slippage, costs.capital_share,
         limits.position_fraction, limits.min_order_value, limits.max_position_fraction,
         limits.max_total_exposure, limits.risk_per_trade, limits.daily_loss_limit,
         limits.max_drawdown, limits.cooldown_losses, limits.cooldown_candles,
         limits.max_open_positions, exits.stop_loss, exits.take_profit, exits.trailing_stop,
         exits.atr_stop, exits.entry_offset],
        dtype=np.float64,
    )  # fmt: skip
    arrays = _simulate(
        *(_plain(candles[column], np.float64) for column in ("open", "high", "low", "close")),
        _plain(codes, np.int8), _plain(atr, np.float64),
        volatility_scales(_plain(candles["close"], np.float64), limits.volatility_short,
                          limits.volatility_long, limits.volatility_floor),
        _plain(day, np.int64), params,
    )  # fmt: skip
    count = int(arrays[-4])
    trades = [array[:count] for array in arrays[2:-4]]
    return KernelResult(
        arrays[0], arrays[1], *trades,
        fees=float(arrays[-3]), vetoes=int(arrays[-2]), halted_at=int(arrays[-1]),
    )  # fmt: skip


def warm_up() -> threading.Thread:
    """Load the compiled kernel on a thread (numba's first call costs ~0.25 s even when
    cached), so a caller can read its candles meanwhile. Join the thread before simulating."""
    tiny = {column: np.ones(4) for column in ("open", "high", "low", "close")}
    thread = threading.Thread(
        target=simulate,
        args=(tiny, np.zeros(4, np.int8), np.ones(4), np.zeros(4, np.int64),
              KernelCosts(1.0, 0.0, 0.0, 1.0, RiskLimits()), KernelExits(0.0, 0.0, 0.0, 0.0)),
        name="kernel-warm-up",
        daemon=True,
    )  # fmt: skip
    thread.start()
    return thread


def _plain(values: np.ndarray, dtype: type) -> np.ndarray:
    """C-contiguous and writable: one compiled (and cached) signature for every caller."""
    return np.require(values, dtype=dtype, requirements=["C", "W"])


@numba.njit(cache=True)
def _cooldown(lost, losses, cooldown_until, i, p):  # -> (losses, cooldown_until)
    if not lost:
        return 0, cooldown_until
    losses += 1
    if p[COOLDOWN_LOSSES] > 0.0 and losses >= p[COOLDOWN_LOSSES]:
        return 0, i + int(p[COOLDOWN_CANDLES])
    return losses, cooldown_until


@numba.njit(cache=True)
def _record_entry(i, count, budget, fill, fee_rate, entries):
    """Write trade ``count``'s entry spending ``budget`` (fee included); returns (held, fee)."""
    entry_index, entry_price, amount, entry_fee = entries
    held = budget / (fill * (1.0 + fee_rate))
    fee = held * fill * fee_rate
    entry_index[count] = i
    entry_price[count] = fill
    amount[count] = held
    entry_fee[count] = fee
    return held, fee


@numba.njit(cache=True)
def _record_exit(i, count, held, fill, fee_rate, reason, both, price_in, entry_fee, trades):
    """Write trade ``count``'s exit; returns (fee, whether the trade lost)."""
    exit_index, exit_price, exit_fee, exit_reason, ambiguous = trades
    fee = held * fill * fee_rate
    exit_index[count] = i
    exit_price[count] = fill
    exit_fee[count] = fee
    exit_reason[count] = reason
    ambiguous[count] = both
    return fee, trade_lost(held, price_in, fill, entry_fee[count] + fee)


@numba.njit(cache=True)
def _simulate(open_, high, low, close, codes, atr, scale, day, p):  # noqa: C901, PLR0915
    n = close.shape[0]
    equity = np.empty(n)
    stop_line = np.full(n, np.nan)
    # One entry at most per candle (a signal, or a limit filled in it) and every trade has
    # one: a trade can close on the candle after it opened, and the next open on that close.
    size = n + 1
    entry_index = np.zeros(size, np.int64)
    exit_index = np.zeros(size, np.int64)
    entry_price = np.zeros(size)
    exit_price = np.zeros(size)
    amount = np.zeros(size)
    entry_fee = np.zeros(size)
    exit_fee = np.zeros(size)
    exit_reason = np.zeros(size, np.int8)
    ambiguous = np.zeros(size, np.bool_)
    trades = (exit_index, exit_price, exit_fee, exit_reason, ambiguous)
    entries = (entry_index, entry_price, amount, entry_fee)
    fee_rate, slippage = p[FEE], p[SLIPPAGE]
    cash = p[BALANCE]
    held = 0.0
    price_in = 0.0
    peak_price = 0.0
    atr_distance = 0.0
    count = 0
    fees = 0.0
    vetoes = 0
    equity_peak = p[BALANCE]
    today = -(2**62)
    day_start = p[BALANCE]
    daily_halt_day = -(2**62)
    halted_at = -1
    losses = 0
    cooldown_until = -1
    limit_price = 0.0  # a limit entry resting through the next candle (0: none)
    limit_budget = 0.0
    limit_atr = 0.0
    for i in range(n):
        if day[i] != today:
            today = day[i]
            day_start = cash + held * close[i]
        if held > 0.0:
            stop, trigger, reason, both = check_exit(
                price_in, peak_price, atr_distance, p[STOP_LOSS], p[TAKE_PROFIT], p[TRAILING],
                open_[i], high[i], low[i],
            )  # fmt: skip
            if stop > -math.inf:
                stop_line[i] = stop
            if not math.isnan(trigger):
                fill = trigger * (1.0 - slippage)
                fee, lost = _record_exit(i, count, held, fill, fee_rate, reason, both, price_in,
                                         entry_fee, trades)  # fmt: skip
                cash = cash + held * fill - fee
                fees += fee
                losses, cooldown_until = _cooldown(lost, losses, cooldown_until, i, p)
                count += 1
                held = 0.0
            else:
                peak_price = max(peak_price, high[i])
        if limit_price > 0.0:  # filled if this candle reached it; cancelled at its close if not
            if low[i] <= limit_price:
                fill = min(open_[i], limit_price)
                held, fee = _record_entry(i, count, limit_budget, fill, fee_rate, entries)
                cash = cash - held * fill - fee
                fees += fee
                price_in = fill
                peak_price = fill
                atr_distance = limit_atr
            limit_price = 0.0
        marked = cash + held * close[i]
        equity_peak = max(equity_peak, marked)
        gate = loss_gate(marked, equity_peak, day_start, p[DAILY_LOSS], p[MAX_DRAWDOWN])
        if gate == GATE_DRAWDOWN and halted_at < 0:
            halted_at = i
        elif gate == GATE_DAILY_LOSS:
            daily_halt_day = today
        if i < n - 1:
            code = codes[i]
            if code == 1 and held == 0.0:
                budget = 0.0
                distance_atr = 0.0
                if not (halted_at >= 0 or daily_halt_day == today or i <= cooldown_until
                        or p[MAX_OPEN] < 1.0):  # fmt: skip
                    if p[ATR_MULTIPLE] > 0.0 and not math.isnan(atr[i]):
                        distance_atr = p[ATR_MULTIPLE] * atr[i]
                    budget = entry_budget(
                        marked, cash, 0.0, p[SHARE], p[FRACTION], p[MAX_POSITION],
                        p[MAX_EXPOSURE], p[RISK_PER_TRADE],
                        initial_stop_distance(close[i], p[STOP_LOSS], distance_atr, p[TRAILING]),
                        scale[i],
                    )  # fmt: skip
                if budget >= p[MIN_ORDER] and budget > 0.0 and p[ENTRY_OFFSET] > 0.0:
                    limit_price = close[i] * (1.0 - p[ENTRY_OFFSET])
                    limit_budget = budget
                    limit_atr = distance_atr
                elif budget >= p[MIN_ORDER] and budget > 0.0:
                    fill = open_[i + 1] * (1.0 + slippage)
                    held, fee = _record_entry(i, count, budget, fill, fee_rate, entries)
                    cash = cash - held * fill - fee
                    fees += fee
                    price_in = fill
                    peak_price = fill
                    atr_distance = distance_atr
                else:
                    vetoes += 1
            elif code == -1 and held > 0.0:
                fill = open_[i + 1] * (1.0 - slippage)
                fee, lost = _record_exit(i, count, held, fill, fee_rate, SIGNAL, False, price_in,
                                         entry_fee, trades)  # fmt: skip
                cash = cash + held * fill - fee
                fees += fee
                losses, cooldown_until = _cooldown(lost, losses, cooldown_until, i, p)
                count += 1
                held = 0.0
        equity[i] = cash + held * close[i]
    return (
        equity, stop_line, entry_index, exit_index, entry_price, exit_price, amount,
        entry_fee, exit_fee, exit_reason, ambiguous, count, fees, vetoes, halted_at,
    )  # fmt: skip

"""The backtest kernel: the live engine's trading rules over float64 arrays, compiled by numba.

What it must do the same way as ``Engine`` (the parity tests hold it to that, trade for trade,
on real data for every built-in strategy), at the close of each candle i:

1. While a position is open, its protective exits are checked against candle i's range. The
   stop is the highest of the stop-loss, ATR and trailing levels; the trailing level uses the
   peak high *before* candle i (the order of highs and lows inside a candle is unknown). A low
   at or under the stop sells at min(open, stop); else a high at or over the target sells at
   max(open, target). A candle that reaches both is resolved as the stop, and counted.
2. The strategy's signal on candle i acts at the next candle's open: an entry spends
   min(equity * share * fraction, cash) if that is at least the minimum order value; an exit
   sells the whole position. The last candle's signal is never acted on.

Buys fill at open * (1 + slippage), sells at price * (1 - slippage); the fee is a fraction of
each fill's notional, paid in the quote currency. Every fill is stamped with the close time
of the candle being processed, which is when the live engine learns of it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numba
import numpy as np

SIGNAL, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, ATR_STOP = 0, 1, 2, 3, 4
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop", "atr_stop")


@dataclass(frozen=True, slots=True)
class KernelCosts:
    balance: float
    fee_rate: float
    slippage: float
    capital_share: float
    position_fraction: float
    min_order_value: float


@dataclass(frozen=True, slots=True)
class KernelExits:
    stop_loss: float
    take_profit: float
    trailing_stop: float
    atr_stop: float


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


def simulate(
    candles: dict[str, np.ndarray],
    codes: np.ndarray,
    atr: np.ndarray,
    costs: KernelCosts,
    exits: KernelExits,
) -> KernelResult:
    """Run the rules over one pair's candles (arrays ``open``, ``high``, ``low``, ``close``)."""
    scalars = (
        costs.balance, costs.fee_rate, costs.slippage, costs.capital_share,
        costs.position_fraction, costs.min_order_value,
        exits.stop_loss, exits.take_profit, exits.trailing_stop, exits.atr_stop,
    )  # fmt: skip
    arrays = _simulate(
        *(_plain(candles[column], np.float64) for column in ("open", "high", "low", "close")),
        _plain(codes, np.int8),
        _plain(atr, np.float64),
        *(float(value) for value in scalars),  # one compiled signature, never an int variant
    )
    count = int(arrays[-2])
    trades = [array[:count] for array in arrays[2:-2]]
    return KernelResult(arrays[0], arrays[1], *trades, fees=float(arrays[-1]))


def warm_up() -> threading.Thread:
    """Load the compiled kernel on a thread (numba's first call costs ~0.25 s even when
    cached), so a caller can read its candles meanwhile. Join the thread before simulating."""
    tiny = {column: np.ones(4) for column in ("open", "high", "low", "close")}
    thread = threading.Thread(
        target=simulate,
        args=(
            tiny,
            np.zeros(4, np.int8),
            np.ones(4),
            KernelCosts(1.0, 0.0, 0.0, 1.0, 1.0, 0.0),
            KernelExits(0.0, 0.0, 0.0, 0.0),
        ),
        name="kernel-warm-up",
        daemon=True,
    )
    thread.start()
    return thread


def _plain(values: np.ndarray, dtype: type) -> np.ndarray:
    """C-contiguous and writable: one compiled (and cached) signature for every caller."""
    return np.require(values, dtype=dtype, requirements=["C", "W"])


@numba.njit(cache=True)
def check_exit(
    entry_price: float, peak: float, atr_distance: float, stop_loss: float, take_profit: float,
    trailing_stop: float, open_: float, high: float, low: float,
) -> tuple[float, float, int, bool]:  # fmt: skip
    """The protective exit of one candle: (stop in force, trigger price or NaN, reason, both hit).

    The live engine and the kernel both call this, so their exits cannot drift apart.
    """
    stop = -math.inf
    reason = STOP_LOSS
    if stop_loss > 0.0:
        stop = entry_price * (1.0 - stop_loss)
    if atr_distance > 0.0 and entry_price - atr_distance > stop:
        stop = entry_price - atr_distance
        reason = ATR_STOP
    if trailing_stop > 0.0 and peak * (1.0 - trailing_stop) > stop:
        stop = peak * (1.0 - trailing_stop)
        reason = TRAILING_STOP
    target = entry_price * (1.0 + take_profit) if take_profit > 0.0 else math.inf
    if low <= stop:
        return stop, min(open_, stop), reason, high >= target
    if high >= target:
        return stop, max(open_, target), TAKE_PROFIT, False
    return stop, math.nan, reason, False


@numba.njit(cache=True)
def _simulate(  # noqa: C901 - one tight loop is the point
    open_, high, low, close, codes, atr, balance, fee_rate, slippage, share, fraction,
    min_order, stop_loss, take_profit, trailing, atr_multiple,
):  # fmt: skip
    n = close.shape[0]
    equity = np.empty(n)
    stop_line = np.full(n, np.nan)
    size = n // 2 + 2
    entry_index = np.zeros(size, np.int64)
    exit_index = np.zeros(size, np.int64)
    entry_price = np.zeros(size)
    exit_price = np.zeros(size)
    amount = np.zeros(size)
    entry_fee = np.zeros(size)
    exit_fee = np.zeros(size)
    exit_reason = np.zeros(size, np.int8)
    ambiguous = np.zeros(size, np.bool_)
    cash = balance
    held = 0.0
    price_in = 0.0
    peak = 0.0
    atr_distance = 0.0
    count = 0
    fees = 0.0
    for i in range(n):
        if held > 0.0:
            stop, trigger, reason, both = check_exit(
                price_in, peak, atr_distance, stop_loss, take_profit, trailing,
                open_[i], high[i], low[i],
            )  # fmt: skip
            if stop > -math.inf:
                stop_line[i] = stop
            if not math.isnan(trigger):
                fill = trigger * (1.0 - slippage)
                fee = held * fill * fee_rate
                cash = cash + held * fill - fee
                fees += fee
                exit_index[count] = i
                exit_price[count] = fill
                exit_fee[count] = fee
                exit_reason[count] = reason
                ambiguous[count] = both
                count += 1
                held = 0.0
            else:
                peak = max(peak, high[i])
        if i < n - 1:
            code = codes[i]
            if code == 1 and held == 0.0:
                budget = min((cash + held * close[i]) * share * fraction, cash)
                if budget >= min_order:
                    fill = open_[i + 1] * (1.0 + slippage)
                    held = budget / (fill * (1.0 + fee_rate))
                    fee = held * fill * fee_rate
                    cash = cash - held * fill - fee
                    fees += fee
                    price_in = fill
                    peak = fill
                    atr_distance = atr_multiple * atr[i] if atr_multiple > 0.0 else 0.0
                    if math.isnan(atr_distance):
                        atr_distance = 0.0
                    entry_index[count] = i
                    entry_price[count] = fill
                    amount[count] = held
                    entry_fee[count] = fee
            elif code == -1 and held > 0.0:
                fill = open_[i + 1] * (1.0 - slippage)
                fee = held * fill * fee_rate
                cash = cash + held * fill - fee
                fees += fee
                exit_index[count] = i
                exit_price[count] = fill
                exit_fee[count] = fee
                exit_reason[count] = SIGNAL
                count += 1
                held = 0.0
        equity[i] = cash + held * close[i]
    return (
        equity, stop_line, entry_index, exit_index, entry_price, exit_price, amount,
        entry_fee, exit_fee, exit_reason, ambiguous, count, fees,
    )  # fmt: skip

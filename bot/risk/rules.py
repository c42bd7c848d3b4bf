"""The trading rules both the live engine and the backtest kernel apply, compiled once.

Keeping one copy of each rule is what makes live/backtest parity hold by construction: the
engine calls these from Python per candle, the kernel from its compiled loop.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from bot.core.compiled import compiled

SIGNAL, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, ATR_STOP = 0, 1, 2, 3, 4
# A stop resting on the exchange is raised (cancelled, placed again) only once its level has
# risen this much: a trailing stop there lags the exact level by up to this.
TRAIL_STEP = 0.005
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop", "atr_stop")

GATE_OPEN, GATE_DAILY_LOSS, GATE_DRAWDOWN = 0, 1, 2


@compiled
def stop_level(
    entry_price: float, peak: float, atr_distance: float, stop_loss: float, trailing_stop: float
) -> tuple[float, int]:
    """The protective stop in force, -inf when none, and which rule set it: the highest of the
    stop-loss, ATR and trailing levels."""
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
    return stop, reason


@compiled
def check_exit(
    entry_price: float,
    peak: float,
    atr_distance: float,
    stop_loss: float,
    take_profit: float,
    trailing_stop: float,
    open_: float,
    high: float,
    low: float,
) -> tuple[float, float, int, bool]:
    """The protective exit of one candle: (stop in force, trigger price or NaN, reason, both hit).

    The stop is ``stop_level``'s; the trailing level uses the peak before this candle. A low at
    or under the stop sells at min(open, stop); else a high at or over the target sells at
    max(open, target). Reaching both counts as the stop.
    """
    stop, reason = stop_level(entry_price, peak, atr_distance, stop_loss, trailing_stop)
    target = entry_price * (1.0 + take_profit) if take_profit > 0.0 else math.inf
    if low <= stop:
        return stop, min(open_, stop), reason, high >= target
    if high >= target:
        return stop, max(open_, target), TAKE_PROFIT, False
    return stop, math.nan, reason, False


@compiled
def entry_budget(
    equity: float,
    cash: float,
    exposure: float,
    share: float,
    fraction: float,
    max_position: float,
    max_exposure: float,
    risk_per_trade: float,
    stop_distance: float,
    scale: float,
) -> float:
    """What an entry may spend, in the quote currency, fee included.

    The run's share of equity times the entry fraction and the volatility scale, capped by the
    free cash, the per-asset cap, the room left under the total-exposure cap, and, when risking
    a fixed share of equity per trade, by that risk over the stop's distance (a fraction of the
    price).
    """
    budget = min(equity * share * fraction * scale, cash)
    budget = min(budget, equity * max_position)
    budget = min(budget, equity * max_exposure - exposure)
    if risk_per_trade > 0.0 and stop_distance > 0.0:
        budget = min(budget, equity * risk_per_trade / stop_distance)
    return max(budget, 0.0)


@compiled
def _realised_volatility(close: NDArray[np.float64], end: int, window: int) -> float:
    """Sample standard deviation of the ``window`` log returns ending at candle ``end``."""
    mean = 0.0
    for k in range(end - window + 1, end + 1):
        mean += math.log(close[k] / close[k - 1])
    mean /= window
    total = 0.0
    for k in range(end - window + 1, end + 1):
        deviation = math.log(close[k] / close[k - 1]) - mean
        total += deviation * deviation
    return math.sqrt(total / (window - 1))


@compiled
def volatility_scale(
    close: NDArray[np.float64], end: int, short: int, long: int, floor: float
) -> float:
    """The entry budget's multiplier at candle ``end``: longer-run over recent realised
    volatility, within [floor, 1]. Turbulent markets shrink entries; calm ones never enlarge
    them. 1 when off (``short`` < 2) or before ``long`` candles of history."""
    if short < 2 or long <= short or end < long:
        return 1.0
    recent = _realised_volatility(close, end, short)
    if recent <= 0.0:
        return 1.0
    return min(1.0, max(floor, _realised_volatility(close, end, long) / recent))


@compiled
def volatility_scales(
    close: NDArray[np.float64], short: int, long: int, floor: float
) -> NDArray[np.float64]:
    """``volatility_scale`` at every candle."""
    scales = np.ones(close.shape[0])
    if short >= 2 and long > short:
        for end in range(long, close.shape[0]):
            scales[end] = volatility_scale(close, end, short, long, floor)
    return scales


@compiled
def loss_gate(
    equity: float, peak: float, day_start: float, daily_loss_limit: float, max_drawdown: float
) -> int:
    """Which loss limit, if any, equity has broken: the drawdown halt outranks the daily one."""
    if max_drawdown > 0.0 and equity < peak * (1.0 - max_drawdown):
        return GATE_DRAWDOWN
    if daily_loss_limit > 0.0 and equity < day_start * (1.0 - daily_loss_limit):
        return GATE_DAILY_LOSS
    return GATE_OPEN


@compiled
def initial_stop_distance(
    price: float, stop_loss: float, atr_distance: float, trailing_stop: float
) -> float:
    """How far below ``price`` (as a fraction) the first protective stop sits; 0 when none."""
    distance = math.inf
    if stop_loss > 0.0:
        distance = stop_loss
    if atr_distance > 0.0:
        distance = min(distance, atr_distance / price)
    if trailing_stop > 0.0:
        distance = min(distance, trailing_stop)
    return 0.0 if distance == math.inf else distance


@compiled
def trade_lost(amount: float, entry_price: float, exit_price: float, fees: float) -> bool:
    """A closed trade that made nothing or less, fees included: it counts toward a cooldown."""
    return amount * exit_price - amount * entry_price - fees <= 0.0

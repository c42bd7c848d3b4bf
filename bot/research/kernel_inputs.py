"""The backtest kernel's inputs: the account's costs, the exit rules and the clock, typed, and
the parameter vector they are packed into for the compiled code (which slot holds what).

The compiled functions read the slots by these names; numba freezes them when it compiles, and
its cache does not see this file change: after changing a slot, clear the cache
(``bot/core/compiled.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bot.core.domain import RiskLimits

# Positions in the kernel's parameter vector.
(
    BALANCE,
    FEE,
    SLIPPAGE,
    SHARE,
    FRACTION,
    MIN_ORDER,
    MAX_POSITION,
    MAX_EXPOSURE,
    RISK_PER_TRADE,
    DAILY_LOSS,
    MAX_DRAWDOWN,
    COOLDOWN_LOSSES,
    COOLDOWN_MS,
    MAX_OPEN,
    STOP_LOSS,
    TAKE_PROFIT,
    TRAILING,
    ATR_MULTIPLE,
    ENTRY_OFFSET,
    RESTING,
    FEE_IN_COIN,
    VOLUME_SHARE,
) = range(22)
PARAMETERS = VOLUME_SHARE + 1


@dataclass(frozen=True, slots=True)
class KernelCosts:
    balance: float
    fee_rate: float
    slippage: float
    capital_share: float
    limits: RiskLimits
    # A buy's fee is taken from the coins bought (Binance's default, OKX, Bybit): a market
    # entry spends its budget on coins and holds them net of the fee. Off: the fee is paid in
    # the quote on top of the coins, within the budget (the paper account).
    fee_in_coin: bool = False
    # An order fills at most this share of its fill candle's volume (each order on its own);
    # a buy's rest expires (the paper account's ``max_volume_share``). 0: no cap.
    volume_share: float = 0.0


@dataclass(frozen=True, slots=True)
class KernelExits:
    stop_loss: float
    take_profit: float
    trailing_stop: float
    atr_stop: float
    entry_offset: float = 0.0  # limit entries this fraction under the signal's close
    # The venue holds stop orders (live places them there): a stop fills at its level inside
    # the candle (min(open, stop), with slippage), not at the next open.
    resting_stops: bool = False


@dataclass(frozen=True, slots=True)
class KernelClock:
    """When things happen, in epoch ms: each candle's close, when the engine acts on it (the
    next candle's open, later than the close after a gap in the data), the local calendar
    day of each close, and a candle's length (cooldowns last that many times the length)."""

    close_ms: NDArray[np.int64]
    act_ms: NDArray[np.int64]
    day: NDArray[np.int64]
    step_ms: int


def pack(costs: KernelCosts, exits: KernelExits, clock: KernelClock) -> NDArray[np.float64]:
    """The parameter vector the compiled kernel reads."""
    limits = costs.limits
    values = {
        BALANCE: costs.balance,
        FEE: costs.fee_rate,
        SLIPPAGE: costs.slippage,
        SHARE: costs.capital_share,
        FRACTION: limits.position_fraction,
        MIN_ORDER: limits.min_order_value,
        MAX_POSITION: limits.max_position_fraction,
        MAX_EXPOSURE: limits.max_total_exposure,
        RISK_PER_TRADE: limits.risk_per_trade,
        DAILY_LOSS: limits.daily_loss_limit,
        MAX_DRAWDOWN: limits.max_drawdown,
        COOLDOWN_LOSSES: limits.cooldown_losses,
        COOLDOWN_MS: limits.cooldown_candles * clock.step_ms,
        MAX_OPEN: limits.max_open_positions,
        STOP_LOSS: exits.stop_loss,
        TAKE_PROFIT: exits.take_profit,
        TRAILING: exits.trailing_stop,
        ATR_MULTIPLE: exits.atr_stop,
        ENTRY_OFFSET: exits.entry_offset,
        RESTING: float(exits.resting_stops),
        FEE_IN_COIN: float(costs.fee_in_coin),
        VOLUME_SHARE: costs.volume_share,
    }
    return np.array([values[position] for position in range(PARAMETERS)], dtype=np.float64)

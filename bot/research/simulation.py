"""The backtest kernel as Python calls it: one pair's candles and signals in, as the arrays the
compiled kernel (``kernel.run``) is compiled for, its trades out as a typed ``KernelResult``;
and loading the compiled kernel ahead of the first backtest (``warm_up``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.core.domain import RiskLimits
from bot.research import kernel
from bot.research.kernel_inputs import KernelClock, KernelCosts, KernelExits, pack
from bot.risk.rules import volatility_scales


@dataclass(frozen=True, slots=True)
class KernelResult:
    equity: NDArray[np.float64]  # at each candle's close, after that close's actions
    stop_line: NDArray[np.float64]  # the protective stop in force during each candle, NaN when flat
    entry_ms: NDArray[np.int64]  # when the entry filled (ms): when the engine acted on its candle
    exit_ms: NDArray[np.int64]
    entry_price: NDArray[np.float64]
    exit_price: NDArray[np.float64]
    amount: NDArray[np.float64]
    entry_fee: NDArray[np.float64]
    exit_fee: NDArray[np.float64]
    exit_reason: NDArray[np.int8]
    ambiguous: NDArray[np.bool_]  # the exit candle reached both the stop and the target
    still_open: bool  # the last trade is the position held at the end, marked to market
    fees: float  # every fee paid, the open position's entry included
    vetoes: int  # entry signals the risk rules refused
    halted_at: int  # the candle whose close tripped the drawdown halt, or -1


def simulate(
    candles: dict[str, NDArray[np.float64]],
    codes: NDArray[np.integer[Any]],
    atr: NDArray[np.floating[Any]],
    clock: KernelClock,
    costs: KernelCosts,
    exits: KernelExits,
) -> KernelResult:
    """Run the rules over one pair's candles (arrays ``open``, ``high``, ``low``, ``close``,
    and ``volume``: without it, every candle is taken to have some)."""
    limits = costs.limits
    open_, high, low, close = (
        _plain(candles[column], np.float64) for column in ("open", "high", "low", "close")
    )
    close_ms = _plain(clock.close_ms, np.int64)
    (
        (equity, _, stop_line),
        (entry_ms, entry_price, amount, entry_fee),
        (exit_ms, exit_price, exit_fee, reason, ambiguous),
        _,
        (count, still_open, fees, vetoes, _, _, halted_at),
    ) = kernel.run(
        open_,
        high,
        low,
        close,
        _plain(  # unknown volume fills everything, as on paper
            candles["volume"] if "volume" in candles else np.full(len(codes), np.inf),
            np.float64,
        ),
        _plain(codes, np.int8),
        _plain(atr, np.float64),
        volatility_scales(
            close,
            limits.volatility_short,
            limits.volatility_long,
            limits.volatility_floor,
        ),
        _plain(clock.day, np.int64),
        close_ms,
        _plain(clock.act_ms, np.int64),
        np.zeros(1, np.int64),
        np.full(1, len(close), np.int64),
        close_ms,  # the clock: every candle's close
        pack(costs, exits, clock)[np.newaxis, :],
    )
    count = int(count)
    return KernelResult(
        equity=equity,
        stop_line=stop_line,
        entry_ms=entry_ms[:count],
        exit_ms=exit_ms[:count],
        entry_price=entry_price[:count],
        exit_price=exit_price[:count],
        amount=amount[:count],
        entry_fee=entry_fee[:count],
        exit_fee=exit_fee[:count],
        exit_reason=reason[:count],
        ambiguous=ambiguous[:count],
        still_open=bool(still_open[0]),
        fees=float(fees),
        vetoes=int(vetoes.sum()),
        halted_at=int(halted_at),
    )


def warm_up() -> threading.Thread:
    """Load the compiled kernel on a thread (numba's first call is slow even when cached:
    bench/RESULTS.md), so a caller can read its candles meanwhile. Join the thread before
    simulating."""
    tiny = {column: np.ones(4) for column in ("open", "high", "low", "close", "volume")}
    stamps = np.arange(4, dtype=np.int64)
    thread = threading.Thread(
        target=simulate,
        args=(
            tiny,
            np.zeros(4, np.int8),
            np.ones(4),
            KernelClock(stamps, stamps, stamps, 1),
            KernelCosts(1.0, 0.0, 0.0, 1.0, RiskLimits()),
            KernelExits(0.0, 0.0, 0.0, 0.0),
        ),
        name="kernel-warm-up",
        daemon=True,
    )
    thread.start()
    return thread


def _plain(values: NDArray[Any], dtype: type[np.generic]) -> NDArray[Any]:
    """C-contiguous and writable: one compiled (and cached) signature for every caller."""
    return np.require(values, dtype=dtype, requirements=["C", "W"])

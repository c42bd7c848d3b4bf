"""Backtests: a strategy's signals over a candle series, traded by the numba kernel.

The kernel applies the live engine's rules (risk sizing, next-open fills, fee and slippage,
protective exits); the parity tests run the live service on the same candles and require the
same trades.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bot.domain import RiskLimits, Trade, from_ms
from bot.errors import DataError
from bot.kernel import EXIT_REASONS, KernelCosts, KernelExits, KernelResult, simulate
from bot.metrics import Metrics, measure
from bot.timeframes import timeframe_seconds
from strategies import Strategy


@dataclass(frozen=True, slots=True)
class BacktestSetup:
    pair: str
    timeframe: str
    balance: float = 1000.0
    fee_rate: float = 0.001
    slippage: float = 0.0
    limits: RiskLimits = RiskLimits()


@dataclass(frozen=True, slots=True)
class BacktestResult:
    setup: BacktestSetup
    strategy: Strategy
    candles: pd.DataFrame
    close_ms: np.ndarray  # each candle's close time, ms
    equity: np.ndarray  # marked at each candle's close
    stop_line: np.ndarray  # protective stop in force during each candle, NaN when none
    trades: list[Trade]
    ambiguous_exits: int  # candles that reached both stop and target: resolved as the stop
    metrics: Metrics


def run_backtest(candles: pd.DataFrame, strategy: Strategy, setup: BacktestSetup) -> BacktestResult:
    """Trade ``strategy`` over validated ``candles``; nothing is written anywhere."""
    if len(candles) < strategy.warmup + 1:
        raise DataError(
            f"{strategy.name} needs at least {strategy.warmup + 1} candles "
            f"(warmup {strategy.warmup} plus one to trade on); the series has {len(candles)}"
        )
    policy = strategy.exit_policy
    atr = strategy.atr(candles) if policy.atr_stop else pd.Series(np.nan, index=candles.index)
    result = simulate(
        {
            column: candles[column].to_numpy(dtype=np.float64)
            for column in ("open", "high", "low", "close")
        },
        strategy.signals(candles).to_numpy(),
        atr.to_numpy(dtype=np.float64),
        KernelCosts(
            setup.balance,
            setup.fee_rate,
            setup.slippage,
            1.0,
            setup.limits.position_fraction,
            setup.limits.min_order_value,
        ),
        KernelExits(policy.stop_loss, policy.take_profit, policy.trailing_stop, policy.atr_stop),
    )
    close_ms = candles["timestamp"].to_numpy() + timeframe_seconds(setup.timeframe) * 1000
    trades = _trades(result, close_ms, setup.pair)
    closes = candles["close"].to_numpy()
    return BacktestResult(
        setup=setup,
        strategy=strategy,
        candles=candles,
        close_ms=close_ms,
        equity=result.equity,
        stop_line=result.stop_line,
        trades=trades,
        ambiguous_exits=int(result.ambiguous.sum()),
        metrics=measure(
            times=close_ms / 1000,
            equity=result.equity,
            trades=trades,
            fees=result.fees,
            start_equity=setup.balance,
            buy_and_hold_return=float(closes[-1] / closes[0] - 1),
        ),
    )


def _trades(result: KernelResult, close_ms: np.ndarray, pair: str) -> list[Trade]:
    trades = []
    for k in range(len(result.exit_index)):
        amount = float(result.amount[k])
        entry, exit_ = float(result.entry_price[k]), float(result.exit_price[k])
        fee = float(result.entry_fee[k] + result.exit_fee[k])
        trades.append(
            Trade(
                pair=pair,
                entry_time=from_ms(int(close_ms[result.entry_index[k]])),
                exit_time=from_ms(int(close_ms[result.exit_index[k]])),
                entry_price=entry,
                exit_price=exit_,
                amount=amount,
                pnl=amount * exit_ - amount * entry - fee,
                fee=fee,
                exit_reason=EXIT_REASONS[int(result.exit_reason[k])],
            )
        )
    return trades

"""Backtests drive the live engine, paper exchange and portfolio over a candle series.

Only three parts differ from the service: the clock is a FakeClock set to each candle's close,
the exchange's price feed replays the series (so a market order fills at the next candle's
open), and the strategy's signal series is computed once rather than per candle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from bot.app import PaperAccount, build_paper_engine
from bot.candles import ReplaySource
from bot.clock import FakeClock
from bot.domain import Action, Fill, RiskLimits, Signal, Trade, from_ms
from bot.engine import action_for
from bot.errors import DataError
from bot.metrics import Summary, round_trips, summarize
from bot.timeframes import timeframe_seconds
from storage.db import open_database
from storage.fills import SqliteFillRepository
from storage.pair_runs import SqlitePairRunRepository
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
    strategy: str
    params: dict[str, int | float]
    times: list[datetime]  # candle close times
    equity: np.ndarray  # marked at each candle's close
    fills: list[Fill]
    trades: list[Trade]
    summary: Summary


async def run_backtest(
    candles: pd.DataFrame, strategy: Strategy, setup: BacktestSetup
) -> BacktestResult:
    """Run ``strategy`` over validated ``candles``; nothing is written outside memory."""
    if len(candles) < strategy.warmup + 1:
        raise DataError(
            f"{strategy.name} needs at least {strategy.warmup + 1} candles "
            f"(warmup {strategy.warmup} plus one to trade on); the series has {len(candles)}"
        )
    step_ms = timeframe_seconds(setup.timeframe) * 1000
    stamps = candles["timestamp"].to_numpy()
    closes = candles["close"].to_numpy(dtype=float)
    codes = strategy.signals(candles).to_numpy()
    clock = FakeClock(from_ms(int(stamps[0])))
    source = ReplaySource({setup.pair: candles}, {setup.pair: setup.timeframe})
    account = PaperAccount(setup.balance, setup.pair.split("/")[1], setup.fee_rate, setup.slippage)
    async with open_database(":memory:") as db:
        engine = await build_paper_engine(
            db, clock=clock, feed=source, account=account, limits=setup.limits
        )
        run = await SqlitePairRunRepository(db).add(
            pair=setup.pair,
            strategy=strategy.name,
            timeframe=setup.timeframe,
            params=strategy.params,
            capital_share=1.0,
            now=clock.now(),
        )
        equity = np.empty(len(candles))
        last = len(candles) - 1  # the last candle has no next open to fill at
        for index in range(len(candles)):
            clock.set(from_ms(int(stamps[index]) + step_ms))
            prices = {setup.pair: float(closes[index])}
            action = action_for(int(codes[index]))
            if action is not Action.HOLD and index < last:
                signal = Signal(
                    setup.pair,
                    from_ms(int(stamps[index])),
                    action,
                    float(closes[index]),
                    strategy.name,
                )
                await engine.on_signal(run, signal, prices)
            equity[index] = engine.portfolio.equity(prices)
        fills = await SqliteFillRepository(db).all()
    trades = round_trips(fills)
    return BacktestResult(
        setup=setup,
        strategy=strategy.name,
        params=dict(strategy.params),
        times=[from_ms(int(stamp) + step_ms) for stamp in stamps],
        equity=equity,
        fills=fills,
        trades=trades,
        summary=summarize(setup.balance, list(equity), trades, sum(f.fee for f in fills)),
    )

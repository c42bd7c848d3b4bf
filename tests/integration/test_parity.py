"""Parity: the backtester makes the same trades as the live engine in paper mode.

The live side is the real service: TradingService ticking the Engine through a ReplayDriver on
the test clock, the paper exchange and a real SQLite database, handed only closed candles and
a bounded history window, exactly as under `pairpilot run`. The backtest side is the kernel.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from bot.app import PaperAccount, build_paper_engine
from bot.backtest import BacktestSetup, run_backtest
from bot.candles import ReplaySource
from bot.clock import FakeClock
from bot.domain import RiskLimits, Trade
from bot.metrics import round_trips
from bot.replay import ReplayDriver
from bot.service import TradingService
from storage.db import open_database
from storage.equity import SqliteEquityRepository
from storage.fills import SqliteFillRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import SqliteStateRepository
from strategies import REGISTRY, build_strategy

PAIR = "BTC/USDT"
FEE, SLIPPAGE = 0.001, 0.0005
EXITS = {
    "signals only": {},
    "with every exit": {
        "stop_loss": 0.03,
        "take_profit": 0.04,
        "trailing_stop": 0.02,
        "atr_stop": 3.0,
    },
}


async def live_trades(candles: pd.DataFrame, name: str, params: dict[str, float]) -> list[Trade]:
    source = ReplaySource({PAIR: candles}, {PAIR: "1h"})
    clock = FakeClock(source.first_open(PAIR))
    async with open_database(":memory:") as db:
        engine = await build_paper_engine(
            db,
            clock=clock,
            feed=source,
            account=PaperAccount(1000.0, "USDT", FEE, SLIPPAGE),
            limits=RiskLimits(),
        )
        run = await SqlitePairRunRepository(db).add(
            pair=PAIR,
            strategy=name,
            timeframe="1h",
            params=params,
            capital_share=1.0,
            now=clock.now(),
        )
        service = TradingService(
            engine=engine, source=source, equity=SqliteEquityRepository(db), clock=clock, runs=[run]
        )
        driver = ReplayDriver(
            clock=clock,
            service=service,
            state=SqliteStateRepository(db),
            step=timedelta(hours=1),
            end=source.last_close(PAIR) - timedelta(hours=1),
        )
        while not driver.finished.is_set():
            await driver.step()
        return round_trips(await SqliteFillRepository(db).all())


def same_trade(live: Trade, backtest: Trade) -> bool:
    return (live.pair, live.entry_time, live.exit_time) == (
        backtest.pair,
        backtest.entry_time,
        backtest.exit_time,
    ) and all(
        getattr(live, field) == pytest.approx(getattr(backtest, field), rel=1e-9, abs=1e-9)
        for field in ("entry_price", "exit_price", "amount", "pnl", "fee")
    )


@pytest.mark.parametrize("exits", list(EXITS), ids=list(EXITS))
@pytest.mark.parametrize("name", sorted(REGISTRY))
async def test_backtest_trades_equal_the_live_engines(
    name: str, exits: str, btc_candles: pd.DataFrame
) -> None:
    params = EXITS[exits]
    strategy = build_strategy(name, params)
    backtest = run_backtest(
        btc_candles,
        strategy,
        BacktestSetup(pair=PAIR, timeframe="1h", balance=1000.0, fee_rate=FEE, slippage=SLIPPAGE),
    )
    backtest_trades = backtest.table.trades()
    live = await live_trades(btc_candles, name, params)
    assert len(backtest_trades) >= 5
    if params:
        assert {t.exit_reason for t in backtest_trades} - {"signal"}, "no protective exit fired"
    assert len(live) == len(backtest_trades)
    mismatches = [
        (a, b) for a, b in zip(live, backtest_trades, strict=True) if not same_trade(a, b)
    ]
    assert not mismatches, mismatches[:2]

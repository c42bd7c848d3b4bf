"""One pair through the live engine beside the backtest kernel (docs/parity.md): the real
service, TradingService ticking the Engine through a ReplayDriver on the test clock, the paper
exchange and a real SQLite database, handed only closed candles and a bounded history window,
exactly as under `pairpilot run`. tests/integration/test_parity.py (the built-ins),
test_user_parity.py (a user's strategy), test_portfolio_parity.py and the fuzz cases use it."""

from __future__ import annotations

import pandas as pd
import pytest

from bot.app.bootstrap import PaperAccount, build_paper_engine, strategy_faults
from bot.core.clock import FakeClock
from bot.core.domain import RiskLimits, Trade
from bot.core.timeframes import timeframe_delta
from bot.market.candle_files import ReplaySource
from bot.portfolio.performance import round_trips
from bot.research.backtest import BacktestSetup, run_backtest
from bot.trading.replay import ReplayDriver
from bot.trading.service import TradingService
from storage.db import open_database
from storage.equity import SqliteEquityRepository
from storage.fills import SqliteFillRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import SqliteStateRepository
from strategies import Strategy

PAIR = "BTC/USDT"
FEE, SLIPPAGE = 0.001, 0.0005


async def live_trades(
    candles: pd.DataFrame,
    name: str,
    params: dict[str, float],
    limits: RiskLimits,
    timeframe: str = "1h",
    others: dict[str, tuple[pd.DataFrame, str]] | None = None,
    volume_share: float = 0.0,
    rests_stops: bool = False,
) -> tuple[list[Trade], int]:
    """The live engine's trades on ``candles``; ``others``: more pairs in the replay (candles
    and timeframe), not traded; ``volume_share``: the paper account's cap (0: none);
    ``rests_stops``: the account rests stops as a venue that holds them does."""
    step = timeframe_delta(timeframe)
    others = others or {}
    frames = {PAIR: candles, **{pair: frame for pair, (frame, _) in others.items()}}
    timeframes = {PAIR: timeframe, **{pair: tf for pair, (_, tf) in others.items()}}
    source = ReplaySource(frames, timeframes)
    clock = FakeClock(source.first_open(PAIR))
    async with open_database(":memory:") as db:
        engine = await build_paper_engine(
            db,
            clock=clock,
            feed=source,
            account=PaperAccount(1000.0, "USDT", FEE, SLIPPAGE, volume_share, rests_stops),
            limits=limits,
        )
        run = await SqlitePairRunRepository(db).add(
            pair=PAIR,
            strategy=name,
            timeframe=timeframe,
            params=params,
            capital_share=1.0,
            now=clock.now(),
        )
        service = TradingService(
            engine=engine,
            source=source,
            equity=SqliteEquityRepository(db),
            clock=clock,
            runs=[run],
            faults=strategy_faults(db, clock),
        )
        driver = ReplayDriver(
            clock=clock,
            service=service,
            state=SqliteStateRepository(db),
            step=step,
            end=source.last_close(PAIR) - step,
            source=source,
        )
        while not driver.finished.is_set():
            await driver.step()
        vetoes = await db.fetch_one("SELECT count(*) FROM vetoes")
        return round_trips(await SqliteFillRepository(db).all()), int(vetoes[0]) if vetoes else 0


def same_trade(live: Trade, backtest: Trade) -> bool:
    return (live.pair, live.entry_time, live.exit_time) == (
        backtest.pair,
        backtest.entry_time,
        backtest.exit_time,
    ) and all(
        getattr(live, field) == pytest.approx(getattr(backtest, field), rel=1e-9, abs=1e-9)
        for field in ("entry_price", "exit_price", "amount", "pnl", "fee")
    )


async def backtest_equals_live(
    candles: pd.DataFrame,
    strategy: Strategy,
    params: dict[str, float],
    limits: RiskLimits,
) -> list[Trade]:
    """The backtest of ``strategy`` (built with ``params``) on one pair, 1h, 1000 USDT, and
    the live engine's replay of its registered name with ``params``: the same trades (at least
    3), trade for trade (``same_trade``), and the same vetoes. The backtest's closed trades."""
    backtest = run_backtest(
        candles,
        strategy,
        BacktestSetup(
            pair=PAIR,
            timeframe="1h",
            balance=1000.0,
            fee_rate=FEE,
            slippage=SLIPPAGE,
            limits=limits,
        ),
    )
    expected = backtest.table.trades()[: backtest.table.closed]
    live, live_vetoes = await live_trades(candles, strategy.name, params, limits)
    assert len(expected) >= 3
    assert len(live) == len(expected)
    mismatches = [(a, b) for a, b in zip(live, expected, strict=True) if not same_trade(a, b)]
    assert not mismatches, mismatches[:2]
    assert live_vetoes == backtest.vetoes
    return expected

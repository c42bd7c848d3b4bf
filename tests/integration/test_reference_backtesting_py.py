"""Our backtester against an independent one, backtesting.py, on real candles.

EMA 12/26 crossover, long only, 0.1% fee, all-in sizing, entries and exits at the next open:
the same trades (count, entry and exit times) and the same final return within 1e-6 relative.
backtesting.py trades whole units, so it runs as a FractionalBacktest with a unit of 1e-10
BTC; its sizing then differs from ours by under 1e-10 BTC per trade.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pandas_ta as ta
import pytest
from backtesting import Strategy as ReferenceStrategy
from backtesting.lib import FractionalBacktest

from bot.core.domain import RiskLimits, to_ms
from bot.market.candle_files import read_candle_file
from bot.research.backtest import BacktestSetup, run_backtest
from strategies import build_strategy

FEE = 0.001
ALL_IN = 0.9999  # backtesting.py's default share for size=None would be the same
# backtesting.py has no risk rules: size all-in, with no caps, halts or minimum order.
ALL_IN_LIMITS = RiskLimits(
    position_fraction=ALL_IN,
    min_order_value=0.0,
    max_position_fraction=1.0,
    daily_loss_limit=0.0,
    max_drawdown=0.0,
)


class EmaCrossReference(ReferenceStrategy):
    """EMA(12)/EMA(26) crossover written against backtesting.py's own API."""

    fast = 12
    slow = 26

    def init(self) -> None:
        close = pd.Series(self.data.Close)
        self.spread = self.I(
            lambda: (ta.ema(close, length=self.fast) - ta.ema(close, length=self.slow)).to_numpy(),
            name="spread",
            overlay=False,
        )

    def next(self) -> None:
        now, before = self.spread[-1], self.spread[-2]
        if now > 0 and before <= 0 and not self.position:
            self.buy(size=ALL_IN)
        elif now < 0 and before >= 0 and self.position:
            self.position.close()


def reference_run(candles: pd.DataFrame) -> pd.Series:
    data = pd.DataFrame(
        {
            "Open": candles["open"].to_numpy(),
            "High": candles["high"].to_numpy(),
            "Low": candles["low"].to_numpy(),
            "Close": candles["close"].to_numpy(),
            "Volume": candles["volume"].to_numpy(),
        },
        index=pd.to_datetime(candles["timestamp"].to_numpy(), unit="ms", utc=True),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = FractionalBacktest(
            data,
            EmaCrossReference,
            cash=1000.0,
            commission=FEE,
            fractional_unit=1e-10,
            finalize_trades=False,
        )
        return backtest.run()


def compare(candles: pd.DataFrame) -> None:
    ours = run_backtest(
        candles,
        build_strategy("ema_cross"),
        BacktestSetup(
            pair="BTC/USDT",
            timeframe="1h",
            balance=1000.0,
            fee_rate=FEE,
            slippage=0.0,
            limits=RiskLimits(
                position_fraction=ALL_IN,
                min_order_value=0.0,
                max_position_fraction=1.0,
                daily_loss_limit=0.0,
                max_drawdown=0.0,
            ),
        ),
    )
    reference = reference_run(candles)
    trades = reference["_trades"]
    assert len(trades) > 20
    assert len(ours.table.trades()) == len(trades)
    reference_entries = [to_ms(t.to_pydatetime()) for t in trades["EntryTime"]]
    reference_exits = [to_ms(t.to_pydatetime()) for t in trades["ExitTime"]]
    assert [to_ms(t.entry_time) for t in ours.table.trades()] == reference_entries
    assert [to_ms(t.exit_time) for t in ours.table.trades()] == reference_exits
    np.testing.assert_allclose(
        [t.entry_price for t in ours.table.trades()], trades["EntryPrice"], rtol=1e-12
    )
    np.testing.assert_allclose([t.amount for t in ours.table.trades()], trades["Size"], rtol=1e-6)
    reference_return = reference["Equity Final [$]"] / 1000.0 - 1
    assert ours.metrics.end_equity == pytest.approx(reference["Equity Final [$]"], rel=1e-6)
    assert ours.metrics.total_return == pytest.approx(reference_return, rel=1e-6)


def test_matches_backtesting_py_on_the_bundled_sample(btc_candles: pd.DataFrame) -> None:
    compare(btc_candles)


def test_matches_backtesting_py_on_21_months_of_real_btc(shared_data: Path) -> None:
    candles = read_candle_file(shared_data / "BTC_USDT-1h.csv.gz")
    since = to_ms(pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime())
    recent = candles[candles["timestamp"] >= since].reset_index(drop=True)  # no gaps after this
    assert (np.diff(recent["timestamp"]) == 3_600_000).all()
    compare(recent)

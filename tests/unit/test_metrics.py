from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import Fill, Side
from bot.metrics import max_drawdown, round_trips, summarize

T0 = datetime(2025, 7, 1, tzinfo=UTC)


def fill(pair: str, side: Side, amount: float, price: float, hours: int) -> Fill:
    return Fill(
        f"c{hours}",
        pair,
        side,
        amount,
        price,
        amount * price * 0.001,
        T0 + timedelta(hours=hours),
        f"t{hours}",
    )


def test_round_trips_pair_entries_with_exits_per_pair() -> None:
    fills = [
        fill("BTC/USDT", Side.BUY, 1.0, 100.0, 0),
        fill("ETH/USDT", Side.BUY, 10.0, 10.0, 1),
        fill("BTC/USDT", Side.SELL, 1.0, 110.0, 2),
        fill("ETH/USDT", Side.SELL, 10.0, 9.0, 3),
        fill("BTC/USDT", Side.BUY, 1.0, 120.0, 4),  # still open: not a trade
    ]
    trades = round_trips(fills)
    assert [(t.pair, t.exit_time) for t in trades] == [
        ("BTC/USDT", T0 + timedelta(hours=2)),
        ("ETH/USDT", T0 + timedelta(hours=3)),
    ]
    btc = trades[0]
    assert btc.entry_price == 100.0
    assert btc.exit_price == 110.0
    assert btc.fee == pytest.approx(0.1 + 0.11)
    assert btc.pnl == pytest.approx(10.0 - 0.21)
    assert trades[1].pnl == pytest.approx(-10.0 - 0.1 - 0.09)


def test_max_drawdown_is_the_largest_fall_from_a_peak() -> None:
    assert max_drawdown([100, 120, 90, 130, 117]) == pytest.approx(0.25)
    assert max_drawdown([100, 101, 102]) == 0.0
    assert max_drawdown([]) == 0.0


def test_summary_counts_wins_and_return() -> None:
    trades = round_trips(
        [fill("BTC/USDT", Side.BUY, 1.0, 100.0, 0), fill("BTC/USDT", Side.SELL, 1.0, 110.0, 1)]
    )
    summary = summarize(1000.0, [1000.0, 1050.0, 1009.79], trades, fees=0.21)
    assert summary.trades == 1
    assert summary.wins == 1
    assert summary.total_return == pytest.approx(0.00979)
    assert summary.max_drawdown == pytest.approx((1050 - 1009.79) / 1050)

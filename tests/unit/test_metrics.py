from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.core.domain import Fill, Side
from bot.portfolio.performance import max_drawdown, measure, round_trips

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


def test_a_sell_while_flat_belongs_to_an_earlier_trade_and_is_skipped() -> None:
    fills = [
        fill("BTC/USDT", Side.SELL, 1.0, 100.0, 0),  # closed a trade that opened before
        fill("BTC/USDT", Side.BUY, 2.0, 101.0, 0),
        fill("BTC/USDT", Side.SELL, 2.0, 105.0, 3),
    ]
    (trade,) = round_trips(fills)
    assert (trade.amount, trade.entry_price, trade.exit_price) == (2.0, 101.0, 105.0)


def _dust(pair: str, amount: float, price: float) -> str | None:
    return "under the minimum" if amount * price < 5.0 else None


def test_a_later_sale_of_the_dust_a_trade_left_belongs_to_that_trade() -> None:
    """A split exit floored short leaves 0.01 (dust at its price: the trade closes); at the
    next close the engine sells that rest (worth more than the minimum there). Its proceeds
    and fee belong to the trade, not to no trade, and no new trade opens."""
    fills = [
        fill("BTC/USDT", Side.BUY, 1.0, 100.0, 0),
        fill("BTC/USDT", Side.SELL, 0.99, 110.0, 2),
        fill("BTC/USDT", Side.SELL, 0.01, 600.0, 3),  # the rest, now worth 6
    ]
    (trade,) = round_trips(fills, _dust)
    assert trade.exit_time == T0 + timedelta(hours=2)  # when it closed: one daily report has it
    assert trade.exit_price == pytest.approx((0.99 * 110.0 + 0.01 * 600.0) / 1.0)
    assert trade.pnl == pytest.approx(0.99 * 110 + 6.0 - 100.0 - sum(f.fee for f in fills))


def test_a_sale_beyond_a_trades_dust_and_a_conversion_are_not_added_to_it() -> None:
    sold = fill("BTC/USDT", Side.SELL, 0.99, 110.0, 2)
    conversion = Fill(
        "dust-77-BTC",
        "BTC/USDT",
        Side.SELL,
        0.01,
        110.0,
        1.1,
        T0 + timedelta(hours=5),
        "dust-77-BTC",
    )
    bought = fill("BTC/USDT", Side.BUY, 1.0, 100.0, 0)
    (trade,) = round_trips([bought, sold, conversion], _dust)
    assert trade.exit_time == sold.time  # a conversion closes no trade and joins none
    beyond = fill("BTC/USDT", Side.SELL, 0.5, 120.0, 4)  # more than the dust: not this trade's
    (trade,) = round_trips([bought, sold, beyond], _dust)
    assert trade.exit_time == sold.time


def test_a_rest_the_engine_left_as_dust_closes_the_trade_at_its_last_sale() -> None:
    """The exit leaves 0.05, sellable at its price (so the sale alone closes nothing); by the
    next close it is dust and the engine never sells it. The engine buys again only when flat
    or holding dust, and /dust converts only dust: either one shows the trade ended at its last
    sale. Until then the engine's own word (``dust``: the amount it declared) closes it."""
    bought = fill("BTC/USDT", Side.BUY, 1.0, 100.0, 0)
    sold = fill("BTC/USDT", Side.SELL, 0.95, 110.0, 2)  # 0.05 left, worth 5.5: not dust there
    again = fill("BTC/USDT", Side.BUY, 1.0, 90.0, 9)
    last = fill("BTC/USDT", Side.SELL, 1.05, 99.0, 12)
    first, second = round_trips([bought, sold, again, last], _dust)
    assert (first.exit_time, first.amount, first.exit_price) == (sold.time, 1.0, 110.0)
    assert (second.entry_time, second.exit_time) == (again.time, last.time)
    conversion = Fill(
        "dust-9-BTC", "BTC/USDT", Side.SELL, 0.05, 80.0, 4.0, T0 + timedelta(hours=20), "dust-9-BTC"
    )
    (trade,) = round_trips([bought, sold, conversion], _dust)
    assert (trade.exit_time, trade.exit_price) == (sold.time, 110.0)
    assert round_trips([bought, sold], _dust) == []  # the rest may still be sold
    (trade,) = round_trips([bought, sold], _dust, dust={"BTC/USDT": 0.05})
    assert trade.exit_time == sold.time
    assert round_trips([bought, sold], _dust, dust={"BTC/USDT": 0.02}) == []  # not that rest


def test_max_drawdown_is_the_largest_fall_from_a_peak() -> None:
    assert max_drawdown([100, 120, 90, 130, 117]) == pytest.approx(0.25)
    assert max_drawdown([100, 101, 102]) == 0.0
    assert max_drawdown([]) == 0.0


def test_metrics_of_a_known_curve() -> None:
    trades = round_trips(
        [
            fill("BTC/USDT", Side.BUY, 1.0, 100.0, 0),
            fill("BTC/USDT", Side.SELL, 1.0, 110.0, 12),
            fill("BTC/USDT", Side.BUY, 1.0, 110.0, 24),
            fill("BTC/USDT", Side.SELL, 1.0, 99.0, 36),
        ]
    )
    day = 86400.0
    times = np.array([0, 1, 2, 3, 4]) * day
    equity = np.array([1000.0, 1050.0, 1009.79, 1020.0, 1100.0])
    metrics = measure(
        times=times,
        equity=equity,
        trade_pnl=np.array([trade.pnl for trade in trades]),
        trade_seconds=np.array([trade.holding_seconds for trade in trades]),
        fees=0.42,
        start_equity=1000.0,
        buy_and_hold_return=0.05,
    )
    assert metrics.trades == 2
    assert metrics.wins == 1
    assert metrics.win_rate == 0.5
    assert metrics.total_return == pytest.approx(0.1)
    assert metrics.cagr == pytest.approx(1.1 ** (365.25 / 4) - 1)
    assert metrics.max_drawdown == pytest.approx((1050 - 1009.79) / 1050)
    assert metrics.max_drawdown_hours == pytest.approx(72.0)  # day 1 peak, recovered on day 4
    assert metrics.profit_factor == pytest.approx(trades[0].pnl / -trades[1].pnl)
    assert metrics.expectancy == pytest.approx((trades[0].pnl + trades[1].pnl) / 2)
    assert metrics.avg_holding_hours == 12.0
    assert metrics.exposure == pytest.approx(24 / 96)
    returns = np.diff(np.concatenate(([1000.0], equity))) / np.concatenate(([1000.0], equity))[:-1]
    assert metrics.sharpe == pytest.approx(returns.mean() / returns.std() * np.sqrt(365.25))
    downside = np.sqrt(np.mean(np.minimum(returns, 0) ** 2))
    assert metrics.sortino == pytest.approx(returns.mean() / downside * np.sqrt(365.25))
    assert metrics.calmar == pytest.approx(metrics.cagr / metrics.max_drawdown)
    assert metrics.buy_and_hold_return == 0.05


def test_metrics_without_losses_or_trades_stay_valid_json() -> None:
    metrics = measure(
        times=np.array([0.0, 3600.0]),
        equity=np.array([1000.0, 1000.0]),
        trade_pnl=np.array([]),
        trade_seconds=np.array([]),
        fees=0.0,
        start_equity=1000.0,
        buy_and_hold_return=0.0,
    )
    document = metrics.as_dict()
    assert document["profit_factor"] is None
    assert document["sharpe"] is None
    assert document["trades"] == 0

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.core.domain import Action, Fill, PairRun, RiskLimits, RunState, Side, Signal
from bot.core.errors import InsufficientFunds, RiskRejected
from bot.exchange.venues import PROFILES
from bot.portfolio.books import Portfolio
from bot.risk.rules import (
    GATE_DAILY_LOSS,
    GATE_DRAWDOWN,
    GATE_OPEN,
    entry_budget,
    initial_stop_distance,
    loss_gate,
    volatility_scale,
    volatility_scales,
)
from bot.risk.sizing import client_order_id, size_entry, size_exit

T0 = datetime(2025, 7, 1, tzinfo=UTC)


def make_run(share: float = 0.5) -> PairRun:
    return PairRun(7, "BTC/USDT", "ema_cross", "1h", {}, share, RunState.RUNNING, T0, T0)


def enter_signal(price: float = 100.0) -> Signal:
    return Signal("BTC/USDT", T0, Action.ENTER, price, "ema_cross")


def fill(side: Side, amount: float, price: float, fee: float, hours: int = 0) -> Fill:
    return Fill(
        "c1", "BTC/USDT", side, amount, price, fee, T0 + timedelta(hours=hours), f"t{hours}"
    )


def test_client_order_id_is_deterministic_per_run_candle_and_side() -> None:
    assert client_order_id(7, T0, Side.BUY) == client_order_id(7, T0, Side.BUY)
    assert client_order_id(7, T0, Side.BUY) != client_order_id(7, T0, Side.SELL)
    assert client_order_id(7, T0, Side.BUY) != client_order_id(8, T0, Side.BUY)
    assert client_order_id(7, T0, Side.BUY) != client_order_id(7, T0 + timedelta(hours=1), Side.BUY)


def budget(**overrides: float) -> float:
    values = {
        "equity": 1000.0,
        "cash": 1000.0,
        "exposure": 0.0,
        "share": 0.5,
        "fraction": 0.99,
        "max_position": 1.0,
        "max_exposure": 1.0,
        "risk_per_trade": 0.0,
        "stop_distance": 0.0,
        "scale": 1.0,
        **overrides,
    }
    return entry_budget(*values.values())


def test_entry_budget_is_a_fraction_of_the_runs_share_of_equity() -> None:
    assert budget() == pytest.approx(495.0)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"cash": 300.0}, 300.0),  # no more than the free cash
        ({"scale": 0.5}, 247.5),  # shrunk in a turbulent market
        ({"scale": 0.5, "cash": 200.0}, 200.0),  # before the caps
        ({"max_position": 0.2}, 200.0),  # the per-asset cap
        ({"exposure": 900.0}, 100.0),  # the room left under total exposure
        ({"exposure": 1200.0}, 0.0),  # no room at all
        ({"risk_per_trade": 0.01, "stop_distance": 0.05}, 200.0),  # 1% risk, stop 5% away
        ({"risk_per_trade": 0.01, "stop_distance": 0.0}, 495.0),  # no stop: fraction sizing
    ],
)
def test_entry_budget_caps(overrides: dict[str, float], expected: float) -> None:
    assert budget(**overrides) == pytest.approx(expected)


def test_initial_stop_distance_is_the_tightest_stop() -> None:
    assert initial_stop_distance(100.0, 0.05, 0.0, 0.0) == pytest.approx(0.05)
    assert initial_stop_distance(100.0, 0.05, 3.0, 0.0) == pytest.approx(0.03)
    assert initial_stop_distance(100.0, 0.05, 3.0, 0.02) == pytest.approx(0.02)
    assert initial_stop_distance(100.0, 0.0, 0.0, 0.0) == 0.0


def test_loss_gate_halts_on_drawdown_before_the_daily_limit() -> None:
    assert loss_gate(900.0, 1000.0, 1000.0, 0.05, 0.15) == GATE_DAILY_LOSS
    assert loss_gate(840.0, 1000.0, 1000.0, 0.05, 0.15) == GATE_DRAWDOWN
    assert loss_gate(960.0, 1000.0, 1000.0, 0.05, 0.15) == GATE_OPEN
    assert loss_gate(100.0, 1000.0, 1000.0, 0.0, 0.0) == GATE_OPEN  # both off


def test_an_entry_under_the_minimum_order_is_refused() -> None:
    with pytest.raises(InsufficientFunds, match="under the minimum order of 10.00"):
        size_entry(
            enter_signal(),
            run=make_run(),
            budget=5.0,
            limits=RiskLimits(),
            fee_rate=0.001,
            slippage=0.0,
            now=T0,
        )
    intent = size_entry(
        enter_signal(100.0),
        run=make_run(),
        budget=200.0,
        limits=RiskLimits(),
        fee_rate=0.001,
        slippage=0.0005,
        now=T0,
    )
    assert intent.quote_amount == 200.0
    assert intent.amount == pytest.approx(200.0 / (100.0 * 1.0005 * 1.001))
    assert intent.client_order_id == client_order_id(7, T0, Side.BUY)


def test_exit_sells_the_whole_position_and_refuses_when_flat() -> None:
    portfolio = Portfolio(1000.0)
    portfolio.accept(portfolio.book(fill(Side.BUY, 2.0, 100.0, 0.2)))
    position = portfolio.position("BTC/USDT")
    assert position is not None
    exit_signal = Signal("BTC/USDT", T0, Action.EXIT, 110.0)
    assert size_exit(exit_signal, run=make_run(), position=position, now=T0).amount == 2.0
    flat = Portfolio(1000.0)
    flat.accept(flat.book(fill(Side.BUY, 1.0, 100.0, 0.0)))
    flat.accept(flat.book(fill(Side.SELL, 1.0, 100.0, 0.0, hours=1)))
    assert flat.position("BTC/USDT") is None
    with pytest.raises(RiskRejected):
        size_exit(
            exit_signal,
            run=make_run(),
            position=position.__class__("BTC/USDT", 0.0, 0.0, 0.0, 0.0, None, T0),
            now=T0,
        )


def test_booking_keeps_equity_equal_to_start_plus_pnl() -> None:
    portfolio = Portfolio(1000.0)
    portfolio.accept(portfolio.book(fill(Side.BUY, 2.0, 100.0, 0.2)))
    position = portfolio.position("BTC/USDT")
    assert position is not None
    assert portfolio.cash == pytest.approx(1000.0 - 200.0 - 0.2)
    assert position.average_price == 100.0
    assert position.realised_pnl == pytest.approx(-0.2)
    assert position.unrealised_pnl(110.0) == pytest.approx(20.0)
    assert portfolio.equity({"BTC/USDT": 110.0}) == pytest.approx(1000.0 - 0.2 + 20.0)
    portfolio.accept(portfolio.book(fill(Side.SELL, 2.0, 110.0, 0.22, hours=3)))
    assert portfolio.position("BTC/USDT") is None
    assert portfolio.cash == pytest.approx(1000.0 + 20.0 - 0.2 - 0.22)
    assert portfolio.realised_pnl() == pytest.approx(20.0 - 0.42)


def test_book_previews_without_changing_anything() -> None:
    portfolio = Portfolio(1000.0)
    portfolio.book(fill(Side.BUY, 2.0, 100.0, 0.2))
    assert portfolio.cash == 1000.0
    assert portfolio.position("BTC/USDT") is None


def test_selling_more_than_held_is_an_error() -> None:
    portfolio = Portfolio(1000.0)
    portfolio.accept(portfolio.book(fill(Side.BUY, 1.0, 100.0, 0.0)))
    with pytest.raises(ValueError, match="exceeds"):
        portfolio.book(fill(Side.SELL, 1.5, 100.0, 0.0, hours=1))


def closes_with_returns(returns: list[float]) -> np.ndarray:
    return np.ascontiguousarray(100.0 * np.exp(np.cumsum([0.0, *returns])))


def test_volatility_scale_shrinks_entries_when_recent_moves_are_wilder() -> None:
    calm = [0.001, -0.001] * 50
    wild = [0.004, -0.004] * 5
    closes = closes_with_returns(calm + wild)
    end = len(closes) - 1
    scale = volatility_scale(closes, end, 10, 100, 0.1)
    recent = np.std(np.diff(np.log(closes))[-10:], ddof=1)
    longer = np.std(np.diff(np.log(closes))[-100:], ddof=1)
    assert scale == pytest.approx(longer / recent)
    assert 0.1 < scale < 0.6
    assert volatility_scale(closes, end, 10, 100, 0.8) == 0.8  # the floor
    assert volatility_scale(closes_with_returns(wild * 10 + calm[:10]), 110, 10, 100, 0.1) == 1.0
    assert volatility_scale(closes, end, 0, 0, 0.25) == 1.0  # off
    assert volatility_scale(closes, 50, 10, 100, 0.25) == 1.0  # not enough history yet
    assert volatility_scales(closes, 10, 100, 0.1)[end] == scale


def test_client_order_ids_fit_every_profiled_venue_for_any_run_and_purpose() -> None:
    for run_id in (1, 10, 123_456_789):
        purposes = ("", "stop", "restop", "trail", "rest", "stop_loss", "take_profit")
        for purpose in (*purposes, "trailing_stop_exit", "restorepp123456789x1782309600000s"):
            coid = client_order_id(run_id, T0, Side.SELL, purpose)
            assert re.fullmatch(r"[A-Za-z0-9]{1,32}", coid), coid
            for profile in PROFILES.values():
                profile.wire_id(coid)  # raises when the venue would refuse it
    long_a = client_order_id(123_456_789, T0, Side.SELL, "trailing_stop_exit")
    long_b = client_order_id(123_456_789, T0, Side.SELL, "trailing_stop_entry")
    assert long_a != long_b

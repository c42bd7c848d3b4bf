"""Resting orders on the venues whose create replies carry no status (Bybit, Kraken), through
ccxt's real classes against each venue's fake: a stop-loss rests, is listed under our id,
cancelled and booked when it fires; a limit buy rests and is booked when the price comes down.
What differs is said per venue: Bybit's stop is a TP/SL order a plain read does not list,
Kraken's a plain order."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from bot.core.domain import OrderStatus
from bot.exchange.ccxt_exchange import CcxtExchange
from tests.doubles.fake_exchange import FakeBinance
from tests.integration.test_venue_orders import _as_order, buy, stop
from tests.rigs.builders import wall_ms
from tests.rigs.live_rig import VENUES, venue_client

PLAIN_READ_LISTS_STOPS = {"bybit": False, "kraken": True}


@pytest.fixture(params=sorted(PLAIN_READ_LISTS_STOPS))
async def venue(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[str, FakeBinance, CcxtExchange]]:
    fake = VENUES[request.param].fake(now_ms=wall_ms(), prices={"BTCUSDT": 100_000.0})
    async with venue_client(request.param, fake) as (_, exchange):
        yield request.param, fake, exchange


async def test_a_stop_rests_is_listed_cancelled_and_booked_when_it_fires(
    venue: tuple[str, FakeBinance, CcxtExchange],
) -> None:
    name, fake, exchange = venue
    await exchange.create_market_order(buy(500.0))
    held = fake.balances["BTC"]
    placed = await exchange.place_stop(stop(0.0049, 95_000.0))
    assert placed.status is OrderStatus.OPEN
    assert fake.locked["BTC"] == pytest.approx(0.0049)  # the stop holds its coins
    plain = await exchange.client.fetch_open_orders("BTC/USDT")
    assert len(plain) == PLAIN_READ_LISTS_STOPS[name]  # Bybit: a TP/SL order, not listed
    listed = await exchange.open_orders(["BTC/USDT"])
    assert [(o.client_order_id, o.price) for o in listed] == [("pp1x2sstop", 95_000.0)]
    cancelled = await exchange.cancel_order(
        _as_order(stop(0.0049, 95_000.0), placed.exchange_order_id)
    )
    assert cancelled is not None
    assert cancelled.status is OrderStatus.CANCELED  # Bybit: Deactivated
    assert fake.balances["BTC"] == pytest.approx(held)
    again = await exchange.place_stop(stop(0.0049, 95_000.0, "pp1x3sstop"))
    fake.prices["BTCUSDT"] = 94_000.0  # the price crosses the trigger: it sells at market
    report = await exchange.lookup(
        _as_order(stop(0.0049, 95_000.0, "pp1x3sstop"), again.exchange_order_id)
    )
    assert report is not None
    assert report.status is OrderStatus.FILLED
    assert sum(fill.amount for fill in report.fills) == pytest.approx(0.0049)
    assert {fill.fee_asset for fill in report.fills} == {"USDT"}  # a sell pays in the quote


async def test_a_limit_buy_rests_in_plain_reads_and_is_booked_once_the_price_comes_down(
    venue: tuple[str, FakeBinance, CcxtExchange],
) -> None:
    _, fake, exchange = venue
    intent = dataclasses.replace(buy(500.0), limit_price=98_000.0)
    placed = await exchange.create_limit_order(intent)
    assert placed.status is OrderStatus.OPEN
    listed = await exchange.open_orders(["BTC/USDT"])
    assert [(o.client_order_id, o.price) for o in listed] == [("pp1x1b", 98_000.0)]
    fake.prices["BTCUSDT"] = 97_000.0
    report = await exchange.lookup(_as_order(intent, placed.exchange_order_id))
    assert report is not None
    assert report.status is OrderStatus.FILLED
    assert report.average_price == 98_000.0
    assert fake.locked["USDT"] == pytest.approx(0.0)

"""What reaches the wire, recorded: ccxt's real classes, their HTTP replaced by a recorder that
answers each venue's empty reply. Bybit, Coinbase and Kraken each have a model too
(tests/doubles/fake_bybit.py, fake_coinbase.py, fake_kraken.py, and their test_venue_*.py); the
checks here stand beside them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.core.domain import Order, OrderIntent, OrderStatus, Side
from bot.core.errors import ConfigError
from bot.exchange.ccxt_exchange import CcxtExchange
from tests.integration.test_venue_orders import NOW

MARKET = {
    "id": "BTCUSDT",
    "symbol": "BTC/USDT",
    "base": "BTC",
    "quote": "USDT",
    "baseId": "BTC",
    "quoteId": "USDT",
    "spot": True,
    "type": "spot",
    "active": True,
    "taker": 0.001,
    "precision": {"amount": 0.00001, "price": 0.01},
    "limits": {"amount": {"min": 0.00001}, "cost": {"min": 1}},
}
EMPTY = {
    "bybit": {"retCode": 0, "retMsg": "OK", "result": {"list": [], "category": "spot"}},
    "kraken": {"error": [], "result": {"open": {}, "closed": {}, "count": 0}},
    "coinbase": {
        "orders": [],
        "has_next": False,
        "cursor": "",
        "success": True,
        "success_response": {"order_id": "1"},
    },
}


def recorded(name: str, market_id: str = "BTCUSDT") -> tuple[CcxtExchange, list[tuple[str, Any]]]:
    exchange = CcxtExchange.create(name, {}, credentials={"apiKey": "k", "secret": "c2VjcmV0"})
    client = exchange.client
    client.set_markets([{**MARKET, "id": market_id}])
    sent: list[tuple[str, Any]] = []

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        sent.append((url, body))
        return EMPTY[name]

    client.fetch = fetch
    return exchange, sent


async def test_bybit_finds_an_order_by_its_order_link_id_without_an_empty_order_id() -> None:
    exchange, sent = recorded("bybit")
    assert await exchange.find_order("BTC/USDT", "pp1x17b") is None
    urls = [url for url, _ in sent]
    assert urls
    assert all("orderLinkId=pp1x17b" in url for url in urls)
    assert not any("orderId=" in url.replace("orderLinkId", "") for url in urls)
    assert any("/v5/order/history" in url for url in urls)  # closed ones too
    await exchange.close()


async def test_bybit_stops_are_read_with_the_filter_they_were_placed_under() -> None:
    exchange, sent = recorded("bybit")
    assert await exchange.find_order("BTC/USDT", "pp1x17sstop", stop=True) is None
    assert "orderFilter=tpslOrder" in sent[0][0]
    await exchange.close()


async def test_coinbase_carries_our_id_not_ccxts_random_one() -> None:
    exchange, sent = recorded("coinbase", "BTC-USDT")
    intent = OrderIntent(
        "pp1x1b", 1, "BTC/USDT", Side.BUY, 0.005, 100_000.0, NOW, quote_amount=500.0
    )
    await exchange.create_market_order(intent)
    body = json.loads(sent[0][1])
    assert body["client_order_id"] == exchange.profile.wire_id("pp1x1b")  # was: ccxt-<random>
    await exchange.close()


async def test_our_resting_orders_listed_by_a_venue_that_cannot_carry_our_id_map_back() -> None:
    exchange, _ = recorded("kraken", "XBTUSDT")
    wire = exchange.profile.wire_id("pp1x5sstop")
    client = exchange.client

    async def open_orders(*_: Any, **__: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": "T1",
                "clientOrderId": wire,
                "side": "sell",
                "amount": 0.005,
                "stopPrice": 95_000.0,
                "status": "open",
                "info": {},
            }
        ]

    async def venue_time(*_: Any, **__: Any) -> int:  # a scan reads the venue's clock first
        return int(NOW.timestamp() * 1000)

    client.fetch_open_orders = open_orders
    client.fetch_time = venue_time
    journal = Order("pp1x5sstop", 1, "BTC/USDT", Side.SELL, 0.005, OrderStatus.OPEN, NOW, NOW)
    await exchange.lookup(journal)  # start-up settles the journal's open orders first
    (listed,) = await exchange.open_orders(["BTC/USDT"])
    assert listed.client_order_id == "pp1x5sstop"  # not reported as someone else's order
    await exchange.close()


async def test_a_venue_whose_closed_orders_ccxt_cannot_read_is_refused_at_start_up() -> None:
    exchange = CcxtExchange.create("bitstamp", {}, credentials={"apiKey": "k", "secret": "s"})
    assert exchange.client.has.get("fetchClosedOrders") in (False, None)
    try:
        with pytest.raises(ConfigError, match="bitstamp: ccxt reads no closed orders"):
            await exchange.load_markets()
    finally:
        await exchange.close()

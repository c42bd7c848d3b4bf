"""Prices in chat replies in the market's own precision (issue 20 item 11): read through
unmodified ccxt from a Binance fake whose symbols have their real tick sizes."""

from __future__ import annotations

from pathlib import Path

from bot.chat.venue import Venue
from bot.core.number_text import price_text
from bot.exchange.ccxt_exchange import CcxtExchange
from tests.doubles.fake_exchange import FakeBinance, binance_urls, serve
from tests.rigs.chat_rig import VIEWER, chat_stack

TICKS = {"XRPUSDT": "0.00010000", "SHIBUSDT": "0.00000001", "BTCUSDT": "0.01000000"}


async def test_the_price_decimals_are_the_markets_tick_size() -> None:
    fake = FakeBinance(
        now_ms=1_750_000_000_000,
        tick_sizes=dict(TICKS),
        prices={"XRPUSDT": 2.1, "SHIBUSDT": 0.0000123},
    )
    async with serve(fake) as base:
        exchange = CcxtExchange.create("binance", {"urls": {"api": binance_urls(base)}})
        try:
            assert exchange.price_decimals("XRP/USDT") is None  # markets not loaded yet
            await exchange.load_markets()
            assert exchange.price_decimals("XRP/USDT") == 4
            assert exchange.price_decimals("SHIB/USDT") == 8
            assert exchange.price_decimals("BTC/USDT") == 2
            assert exchange.price_decimals("NOPE/USDT") is None
            assert price_text(2.12345, exchange.price_decimals("XRP/USDT")) == "2.1235"
            assert price_text(0.0000123, exchange.price_decimals("SHIB/USDT")) == "0.00001230"
            assert price_text(2.12345) == "2.12"  # by size alone, XRP lost two decimals
        finally:
            await exchange.close()


async def test_chat_replies_show_prices_in_the_markets_precision(tmp_path: Path) -> None:
    decimals = {"BTC/USDT": 4}
    venue = Venue("paper", "binance", "USDT", price_decimals=decimals.get)
    async with chat_stack(tmp_path, venue=venue) as chat:
        for _ in range(500):
            await chat.trading.driver.step()
            if chat.trading.engine.portfolio.positions():
                break
        (position,) = chat.trading.engine.portfolio.positions()
        shown = await chat.ask(VIEWER, "/positions")
        assert f"@ {position.average_price:,.4f}," in shown, shown
        assert f"@ {position.average_price:,.4f}," in await chat.ask(VIEWER, "/status")

"""Streams through unmodified ccxt.pro against the fake's websocket: REST fallback, reconnects."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import pandas as pd
import pytest

from bot.core.domain import from_ms, to_ms
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.market.live_source import ExchangeCandleSource
from bot.market.streaming import StreamingFeed
from tests.doubles.fake_exchange import FakeBinance, Fault, binance_urls, serve

PAIR = "BTC/USDT"
HOUR = timedelta(hours=1)


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def kline_requests(fake: FakeBinance) -> int:
    return sum(path == "/api/v3/klines" for path, _ in fake.requests)


@asynccontextmanager
async def streaming(
    fake: FakeBinance, gaps: list[str]
) -> AsyncIterator[tuple[StreamingFeed, ExchangeCandleSource]]:
    async with serve(fake) as base:
        exchange = CcxtExchange.create(
            "binance", {"urls": {"api": binance_urls(base)}}, attempts=2, backoff=0.01
        )
        await exchange.load_markets()
        assert exchange.streams
        feed = StreamingFeed(exchange, backoff=0.05, max_backoff=0.4)

        async def on_gap(pair: str, text: str) -> None:
            gaps.append(text)

        try:
            yield feed, ExchangeCandleSource(feed, on_gap=on_gap)
        finally:
            await feed.close()
            await exchange.close()


def forming(candles: pd.DataFrame, index: int) -> datetime:
    """Half-way through candle ``index``: everything before it is closed."""
    return from_ms(int(candles["timestamp"].iloc[index])) + timedelta(minutes=30)


def market_at_600(candles: pd.DataFrame) -> FakeBinance:
    """The fake exchange half-way through candle 600 of ``candles``."""
    fake = FakeBinance(now_ms=to_ms(forming(candles, 600)))
    fake.add_candles("BTCUSDT", "1h", candles)
    return fake


def stream_holds(feed: StreamingFeed, candles: pd.DataFrame, index: int) -> Callable[[], bool]:
    stamp = int(candles["timestamp"].iloc[index])
    return lambda: feed.holds(PAIR, "1h", stamp)


async def test_closed_candles_come_from_the_stream_once_it_has_confirmed_them(
    btc_candles: pd.DataFrame,
) -> None:
    fake = market_at_600(btc_candles)
    gaps: list[str] = []
    async with streaming(fake, gaps) as (feed, source):
        first = await source.closed_candles(PAIR, forming(btc_candles, 600), 100, "1h")
        assert first["timestamp"].iloc[-1] == btc_candles["timestamp"].iloc[599]
        assert feed.stats.candles_fetched > 0  # the stream was not up yet: REST
        await until(stream_holds(feed, btc_candles, 600))
        for hour in (601, 602, 603):
            fake.now_ms = to_ms(forming(btc_candles, hour))
            await fake.push()
            await until(stream_holds(feed, btc_candles, hour))
            before = kline_requests(fake)
            frame = await source.closed_candles(PAIR, forming(btc_candles, hour), 100, "1h")
            assert kline_requests(fake) == before  # served from the stream
            pd.testing.assert_frame_equal(
                frame.iloc[-1:].reset_index(drop=True),
                btc_candles.iloc[hour - 1 : hour].reset_index(drop=True),
            )
        assert feed.stats.candles_streamed == 3
        assert len(frame) == 100
        assert frame["timestamp"].diff().dropna().eq(3_600_000).all()
    assert gaps == []


async def test_a_candle_whose_successor_has_not_arrived_is_fetched_over_rest(
    btc_candles: pd.DataFrame,
) -> None:
    fake = market_at_600(btc_candles)
    async with streaming(fake, []) as (feed, source):
        await source.closed_candles(PAIR, forming(btc_candles, 600), 100, "1h")
        await until(stream_holds(feed, btc_candles, 600))
        fake.now_ms = to_ms(forming(btc_candles, 601))  # 600 closed, nothing pushed yet
        before = kline_requests(fake)
        frame = await source.closed_candles(PAIR, forming(btc_candles, 601), 100, "1h")
        assert kline_requests(fake) == before + 1
        assert frame["timestamp"].iloc[-1] == btc_candles["timestamp"].iloc[600]
        assert frame["close"].iloc[-1] == btc_candles["close"].iloc[600]  # final, not stale


async def test_after_a_dropped_stream_it_reconnects_and_the_hole_is_fetched_over_rest(
    btc_candles: pd.DataFrame,
) -> None:
    fake = market_at_600(btc_candles)
    gaps: list[str] = []
    async with streaming(fake, gaps) as (feed, source):
        await source.closed_candles(PAIR, forming(btc_candles, 600), 100, "1h")
        await until(stream_holds(feed, btc_candles, 600))
        fake.now_ms = to_ms(forming(btc_candles, 604))  # 601-603 close unseen: it is away
        await fake.drop_streams()
        await until(lambda: feed.stats.reconnects >= 1)
        await until(stream_holds(feed, btc_candles, 604))  # resubscribed: the forming candle
        before = kline_requests(fake)
        frame = await source.closed_candles(PAIR, forming(btc_candles, 604), 100, "1h")
        assert kline_requests(fake) == before + 1  # the hole, over REST
        pd.testing.assert_frame_equal(
            frame.iloc[-4:].reset_index(drop=True),
            btc_candles.iloc[600:604].reset_index(drop=True),
        )
        fake.now_ms = to_ms(forming(btc_candles, 605))
        await fake.push()
        await until(stream_holds(feed, btc_candles, 605))
        before = kline_requests(fake)
        frame = await source.closed_candles(PAIR, forming(btc_candles, 605), 100, "1h")
        assert kline_requests(fake) == before  # streaming again
        assert frame["timestamp"].iloc[-1] == btc_candles["timestamp"].iloc[604]
    assert gaps == []


async def test_a_refused_stream_is_retried_with_growing_pauses_while_rest_serves(
    btc_candles: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    fake = market_at_600(btc_candles)
    fake.faults.append(Fault("/ws/0", 503, times=3))
    async with streaming(fake, []) as (feed, source):
        frame = await source.closed_candles(PAIR, forming(btc_candles, 600), 100, "1h")
        assert frame["timestamp"].iloc[-1] == btc_candles["timestamp"].iloc[599]
        await until(stream_holds(feed, btc_candles, 600), seconds=20)
        assert feed.stats.reconnects == 3
        assert sum(path == "/ws/0" for path, _ in fake.requests) == 4
    pauses = [float(m) for m in re.findall(r"reconnecting in ([0-9.]+) s", caplog.text)]
    ceilings = [0.05, 0.1, 0.2]  # doubling from 0.05 s (capped at 0.4 s), full jitter
    assert len(pauses) == 3
    assert all(pause <= ceiling + 0.05 for pause, ceiling in zip(pauses, ceilings, strict=True))


async def test_prices_come_from_the_ticker_stream_while_fresh(
    btc_candles: pd.DataFrame,
) -> None:
    fake = market_at_600(btc_candles)
    fake.prices["BTCUSDT"] = 100_000.0
    async with streaming(fake, []) as (feed, _):
        assert await feed.fetch_price(PAIR) == 100_000.0
        assert feed.stats.prices_fetched == 1
        await until(lambda: feed.pushed_price(PAIR) is not None)
        fake.prices["BTCUSDT"] = 101_500.5
        await fake.push()
        await until(lambda: feed.pushed_price(PAIR) == 101_500.5)
        tickers = sum(path == "/api/v3/ticker/24hr" for path, _ in fake.requests)
        assert await feed.fetch_price(PAIR) == 101_500.5
        assert sum(path == "/api/v3/ticker/24hr" for path, _ in fake.requests) == tickers
        assert feed.stats.prices_streamed == 1


@pytest.mark.parametrize("kind", ["price", "candles"])
async def test_while_the_streams_cannot_connect_every_call_is_served_over_rest(
    btc_candles: pd.DataFrame, kind: str
) -> None:
    fake = market_at_600(btc_candles)
    fake.prices["BTCUSDT"] = 100_000.0
    fake.faults.append(Fault("/ws/0", 403, times=100))
    async with streaming(fake, []) as (feed, source):
        for _ in range(3):
            if kind == "price":
                assert await feed.fetch_price(PAIR) == 100_000.0
            else:
                await source.closed_candles(PAIR, forming(btc_candles, 600), 100, "1h")
            await asyncio.sleep(0.2)
        assert feed.stats.prices_streamed == feed.stats.candles_streamed == 0

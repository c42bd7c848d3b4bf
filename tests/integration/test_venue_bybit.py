"""Orders on Bybit through ccxt's real ``bybit`` class against the local v5 fake
(tests/doubles/fake_bybit.py): replies without status, orderLinkId rules, TP/SL stops that plain
reads do not list, fees in the coin received, signed requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from bot.core.domain import OrderStatus
from bot.core.errors import ExchangeAuthFailed, ExchangeRejected, InsufficientFunds
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.portfolio.books import Portfolio
from storage.db import Database
from storage.orders import SqliteOrderRepository
from tests.doubles.fake_bybit import FakeBybit, bybit_config, limit_spent_headers, serve_bybit
from tests.doubles.fake_exchange import Fault
from tests.integration.test_ccxt_orders import with_run
from tests.integration.test_venue_orders import buy
from tests.rigs.builders import executor_on, wall_ms

KEYS = {"apiKey": "test-key", "secret": "test-secret"}


@asynccontextmanager
async def connected(
    fake: FakeBybit, keys: dict[str, str] = KEYS
) -> AsyncIterator[tuple[FakeBybit, CcxtExchange]]:
    """ccxt's bybit class, markets loaded, on ``fake`` served over loopback."""
    async with serve_bybit(fake) as base:
        exchange = CcxtExchange.create(
            "bybit", bybit_config(base), credentials=keys, attempts=3, backoff=0.01
        )
        try:
            await exchange.load_markets()
            yield fake, exchange
        finally:
            await exchange.close()


@pytest.fixture
async def bybit() -> AsyncIterator[tuple[FakeBybit, CcxtExchange]]:
    async with connected(FakeBybit(now_ms=wall_ms(), prices={"BTCUSDT": 100_000.0})) as both:
        yield both


async def test_a_trading_key_places_orders_without_asking_the_account_type(
    db: Database, bybit: tuple[FakeBybit, CcxtExchange]
) -> None:
    fake, exchange = bybit
    fake.split = (0.4, 0.6)
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    fills, _ = await executor.execute(buy(500.0))  # was: 10005, a trading key may not ask
    assert len(fills) == 2
    assert {fill.fee_asset for fill in fills} == {"BTC"}  # a buy pays its fee in the coin bought
    order = await SqliteOrderRepository(db).require("pp1x1b")
    assert order.status is OrderStatus.FILLED  # the create reply carried no status
    assert portfolio.position("BTC/USDT").amount == pytest.approx(fake.balances["BTC"])
    assert portfolio.cash == pytest.approx(fake.balances["USDT"]) == pytest.approx(500.0)
    assert not any(path in ("/v5/user/query-api", "/v5/account/info") for path, _ in fake.requests)
    assert fake.order_posts == 1


async def test_an_answer_lost_after_placing_is_found_by_order_link_id_and_never_resent(
    bybit: tuple[FakeBybit, CcxtExchange],
) -> None:
    fake, exchange = bybit
    fake.faults.append(Fault("/v5/order/create", 503, "", method="POST", after=True))
    report = await exchange.create_market_order(buy(500.0))
    assert report.status is OrderStatus.FILLED
    assert report.filled == pytest.approx(0.004995)  # net of the fee in BTC
    assert fake.order_posts == 1


async def test_a_reused_or_malformed_order_link_id_is_refused_and_nothing_changes(
    bybit: tuple[FakeBybit, CcxtExchange],
) -> None:
    fake, exchange = bybit
    await exchange.create_market_order(buy(500.0))
    cash = fake.balances["USDT"]
    with pytest.raises(ExchangeRejected, match="170141"):  # Bybit: Duplicate clientOrderId
        await exchange.create_market_order(buy(100.0))
    with pytest.raises(ExchangeRejected, match="bybit: client order id 'pp1.1.b' breaks"):
        await exchange.create_market_order(buy(500.0, "pp1.1.b"))
    assert fake.balances["USDT"] == cash
    assert fake.order_posts == 2  # the malformed one was never sent


async def test_insufficient_balance_is_refused_as_such(
    bybit: tuple[FakeBybit, CcxtExchange],
) -> None:
    fake, exchange = bybit
    with pytest.raises(InsufficientFunds, match="170131"):
        await exchange.create_market_order(buy(5_000.0))
    assert fake.orders == {}


async def test_a_wrong_secret_is_refused_at_start_up() -> None:
    fake = FakeBybit(now_ms=wall_ms(), prices={"BTCUSDT": 100_000.0})
    with pytest.raises(ExchangeAuthFailed, match="10004"):
        async with connected(fake, {**KEYS, "secret": "wrong"}):
            pass


async def test_a_server_clock_that_moved_is_measured_again_and_the_order_placed_once(
    bybit: tuple[FakeBybit, CcxtExchange],
) -> None:
    fake, exchange = bybit
    fake.skew_ms = 20_000  # outside ccxt's 5 s recvWindow: 10002 until the offset is measured
    report = await exchange.create_market_order(buy(500.0))
    assert report.status is OrderStatus.FILLED
    assert fake.order_posts == 2  # refused unprocessed, then sent again: one order
    assert len(fake.orders) == 1


async def test_a_market_order_cancelled_after_part_filled_is_booked_for_what_traded(
    db: Database, bybit: tuple[FakeBybit, CcxtExchange]
) -> None:
    fake, exchange = bybit
    fake.fill_share = 0.5  # Bybit: PartiallyFilledCanceled, which ccxt reads as closed
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    await executor_on(db, exchange, clock, portfolio).execute(buy(500.0))
    assert portfolio.position("BTC/USDT").amount == pytest.approx(fake.balances["BTC"])
    assert portfolio.cash == pytest.approx(fake.balances["USDT"]) == pytest.approx(750.0)


async def test_an_unsigned_request_is_refused_with_bybits_code() -> None:
    fake = FakeBybit(now_ms=wall_ms(), prices={"BTCUSDT": 100_000.0})
    async with serve_bybit(fake) as base, aiohttp.ClientSession() as session:
        reply = await session.get(f"{base}/v5/order/realtime?category=spot")
        body = await reply.json()
    assert (reply.status, body["retCode"], body["result"]) == (200, 10003, {})


async def test_a_spent_rate_limit_is_waited_out_until_bybits_reset_time() -> None:
    fake = FakeBybit(now_ms=wall_ms(), prices={"BTCUSDT": 100_000.0})
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with serve_bybit(fake) as base:
        exchange = CcxtExchange.create(
            "bybit", bybit_config(base), credentials=KEYS, attempts=3, backoff=0.01, sleep=sleep
        )
        try:
            await exchange.load_markets()
            fake.faults.append(
                Fault(  # Bybit says when, in its own header only
                    "/v5/order/create",
                    200,
                    {
                        "retCode": 10006,
                        "retMsg": "Too many visits!",
                        "result": {},
                        "retExtInfo": {},
                    },
                    headers=limit_spent_headers(3),
                )
            )
            report = await exchange.create_market_order(buy(500.0))
        finally:
            await exchange.close()
    assert report.status is OrderStatus.FILLED
    assert max(waits) == 3.0  # was: 0.01 s of backoff, and the limit hit again
    assert (fake.order_posts, len(fake.orders)) == (2, 1)

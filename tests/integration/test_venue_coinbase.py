"""Orders on Coinbase through ccxt's real ``coinbase`` class against the local Advanced Trade
fake (tests/doubles/fake_coinbase.py): replies without status, our id carried as a UUID, fills
listed for the whole account, refusals in HTTP 200, no resting stop-market, signed requests."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import ccxt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bot.alerts.outbox import AlertOutbox
from bot.core.clock import FakeClock
from bot.core.domain import OrderIntent, OrderStatus, to_ms
from bot.core.errors import (
    ExchangeAuthFailed,
    ExchangeRejected,
    ExchangeUnavailable,
    InsufficientFunds,
    OrderOutcomeUnknown,
)
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.execution.reconcile import reconcile
from bot.portfolio.books import Portfolio
from storage.alerts import SqliteAlertRepository
from storage.db import Database
from storage.orders import SqliteOrderRepository
from tests.doubles.fake_coinbase import FakeCoinbase, coinbase_config, limit_body, serve_coinbase
from tests.doubles.fake_exchange import Fault
from tests.integration.test_ccxt_orders import NOW, with_run
from tests.integration.test_venue_orders import _as_order, buy, stop
from tests.rigs.builders import executor_on, wall_ms

KEYS = {"apiKey": "test-key", "secret": "test-secret"}
ORDERS = "/api/v3/brokerage/orders"
BATCH = "/api/v3/brokerage/orders/historical/batch"

# The venue dates orders on the clock the tests journal them on (NOW).
JOURNAL_MS = to_ms(NOW)


@asynccontextmanager
async def connected(
    fake: FakeCoinbase, keys: dict[str, str] = KEYS, sleep: object = None
) -> AsyncIterator[tuple[FakeCoinbase, CcxtExchange]]:
    """ccxt's coinbase class, markets loaded, on ``fake`` served over loopback."""
    async with serve_coinbase(fake) as base:
        exchange = CcxtExchange.create(
            "coinbase",
            coinbase_config(base),
            credentials=keys,
            attempts=3,
            backoff=0.01,
            **({"sleep": sleep} if sleep else {}),
        )
        try:
            await exchange.load_markets()
            yield fake, exchange
        finally:
            await exchange.close()


def limit_buy() -> OrderIntent:
    """A limit buy for 500 USDT resting at 98,000 (the market is at 100,000)."""
    return dataclasses.replace(buy(500.0), limit_price=98_000.0)


def funded() -> FakeCoinbase:
    return FakeCoinbase(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0})


@pytest.fixture
async def coinbase() -> AsyncIterator[tuple[FakeCoinbase, CcxtExchange]]:
    async with connected(funded()) as both:
        yield both


def _lose_the_next_answer(fake: FakeCoinbase) -> None:
    """The next order is placed, but its answer is lost (a 503 after Coinbase acted)."""
    fake.faults.append(Fault(ORDERS, 503, {"error": "unavailable"}, method="POST", after=True))


async def test_a_market_buy_without_status_in_its_reply_is_read_back_and_booked_in_full(
    db: Database, coinbase: tuple[FakeCoinbase, CcxtExchange]
) -> None:
    fake, exchange = coinbase
    fake.split = (0.4, 0.6)  # two trades, each with its own fee in USDT
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    fills, _ = await executor.execute(buy(500.0))
    assert len(fills) == 2
    assert {fill.fee_asset for fill in fills} == {"USDT"}
    order = await SqliteOrderRepository(db).require("pp1x1b")
    assert order.status is OrderStatus.FILLED  # the create reply carried no status
    assert portfolio.position("BTC/USDT").amount == pytest.approx(fake.balances["BTC"])
    assert portfolio.cash == pytest.approx(fake.balances["USDT"])
    # Sized in the quote as Coinbase sizes a market buy (fees included): the budget, never more.
    assert list(fake.configurations.values()) == [{"market_market_ioc": {"quote_size": "500"}}]
    assert 1000.0 - fake.balances["USDT"] <= 500.0
    assert fake.order_posts == 1


async def test_an_orders_report_carries_its_own_trades_not_every_trade_of_the_account(
    coinbase: tuple[FakeCoinbase, CcxtExchange],
) -> None:
    fake, exchange = coinbase
    fake.split = (0.4, 0.6)
    first = await exchange.create_market_order(buy(300.0))
    second = await exchange.create_market_order(buy(300.0, "pp1x2b"))
    # Coinbase filters fills by order_ids only and ignores a parameter it does not know:
    # asked with orderId, it answered all four trades, the first order's two as the second's.
    assert len(second.fills) == 2
    assert not {f.trade_id for f in first.fills} & {f.trade_id for f in second.fills}
    assert first.filled + second.filled == pytest.approx(fake.balances["BTC"])


async def test_our_id_travels_as_a_uuid_and_the_venues_lists_map_back_to_ours(
    coinbase: tuple[FakeCoinbase, CcxtExchange],
) -> None:
    fake, exchange = coinbase
    intent = limit_buy()
    placed = await exchange.create_limit_order(intent)
    assert placed.status is OrderStatus.OPEN
    (order,) = fake.orders.values()
    assert str(uuid.UUID(order.client_id)) == order.client_id  # ccxt's "ccxt-<uuid>" replaced
    assert order.client_id == exchange.profile.wire_id("pp1x1b")
    listed = await exchange.open_orders(["BTC/USDT"])
    assert [(o.client_order_id, o.price) for o in listed] == [("pp1x1b", 98_000.0)]


async def test_an_answer_lost_after_placing_is_found_again_and_never_placed_twice(
    coinbase: tuple[FakeCoinbase, CcxtExchange],
) -> None:
    fake, exchange = coinbase
    _lose_the_next_answer(fake)
    report = await exchange.create_market_order(buy(500.0))
    assert report.status is OrderStatus.FILLED
    assert fake.order_posts == 1
    # Sent again under the same client_order_id, Coinbase answers the first order: no second.
    again = await exchange.client.create_order(
        "BTC/USDT",
        "market",
        "buy",
        500.0,
        None,
        {
            "client_order_id": exchange.profile.wire_id("pp1x1b"),
            "createMarketBuyOrderRequiresPrice": False,
        },
    )
    assert again["id"] == report.exchange_order_id
    assert len(fake.orders) == 1


async def test_insufficient_funds_answered_in_http_200_is_a_refusal_not_an_unknown_outcome(
    coinbase: tuple[FakeCoinbase, CcxtExchange],
) -> None:
    fake, exchange = coinbase
    with pytest.raises(InsufficientFunds, match="PREVIEW_INSUFFICIENT_FUND"):
        await exchange.create_market_order(buy(5_000.0))
    assert fake.orders == {}
    assert fake.order_posts == 1  # refused: never looked up as lost, never sent again


async def test_no_stop_rests_on_coinbase_it_is_checked_per_candle(
    coinbase: tuple[FakeCoinbase, CcxtExchange],
) -> None:
    fake, exchange = coinbase
    assert exchange.supports_stop_orders is False
    with pytest.raises(ExchangeRejected, match="stop orders are not supported"):
        await exchange.place_stop(stop(0.004, 95_000.0))
    # What the profile rests on: ccxt's coinbase places no stop-market (a stop-limit only,
    # which can be passed over by a falling price), and refuses one before sending it.
    with pytest.raises(ccxt.NotSupported):
        await exchange.client.create_order(
            "BTC/USDT",
            "market",
            "sell",
            0.004,
            None,
            {"stopLossPrice": 95_000.0},
        )
    assert fake.order_posts == 0


async def test_a_resting_limit_buys_hold_is_used_cash_not_free(
    coinbase: tuple[FakeCoinbase, CcxtExchange],
) -> None:
    fake, exchange = coinbase
    await exchange.create_limit_order(limit_buy())
    totals, free = await exchange.fetch_balance_parts()
    # ccxt reads /v2/accounts by default, whose balances count held funds as free.
    assert totals["USDT"] == pytest.approx(1000.0)
    assert free["USDT"] == pytest.approx(fake.balances["USDT"]) == pytest.approx(1000 - 500, 0.01)
    assert not any(path.startswith("/v2/accounts") for path, _ in fake.requests)


async def test_a_limit_buy_that_filled_before_its_cancel_is_booked_not_refused(
    coinbase: tuple[FakeCoinbase, CcxtExchange],
) -> None:
    fake, exchange = coinbase
    intent = limit_buy()
    placed = await exchange.create_limit_order(intent)
    fake.prices["BTCUSDT"] = 97_000.0  # it fills before the cancel arrives
    # Coinbase answers the cancel success: false (UNKNOWN_CANCEL_ORDER), which ccxt raises as
    # BadRequest: what became of the order is read, not a refusal raised.
    report = await exchange.cancel_order(_as_order(intent, placed.exchange_order_id))
    assert report is not None
    assert report.status is OrderStatus.FILLED
    assert report.average_price == 98_000.0


async def test_a_rate_limit_is_waited_out_for_coinbases_window() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with connected(funded(), sleep=sleep) as (fake, exchange):
        fake.faults.append(Fault(ORDERS, 429, limit_body(), method="POST"))  # no Retry-After
        report = await exchange.create_market_order(buy(500.0))
        fake.limit_pages = 1  # the gateway's HTML page: no JSON, no Retry-After either
        again = await exchange.create_market_order(buy(100.0, "pp1x2b"))
    assert (report.status, again.status) == (OrderStatus.FILLED, OrderStatus.FILLED)
    # was: 0.01 s of backoff, inside Coinbase's per-second window
    assert [wait for wait in waits if wait >= 1.0] == [1.0, 1.0]
    assert (fake.order_posts, len(fake.orders)) == (4, 2)


async def test_a_server_clock_that_moved_is_measured_again_and_the_order_placed_once(
    coinbase: tuple[FakeCoinbase, CcxtExchange],
) -> None:
    fake, exchange = coinbase
    fake.skew_ms = 60_000  # outside Coinbase's 30 s: "request timestamp expired"
    report = await exchange.create_market_order(buy(500.0))
    assert report.status is OrderStatus.FILLED  # was: an authentication failure, trading stopped
    assert len(fake.orders) == 1


async def test_a_wrong_secret_is_refused_at_start_up() -> None:
    with pytest.raises(ExchangeAuthFailed, match="unauthorized"):
        async with connected(funded(), {**KEYS, "secret": "wrong"}):
            pass


async def test_a_cdp_key_signs_each_request_with_an_es256_jwt_the_venue_verifies() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    name = "organizations/0c1d7a8e/apiKeys/5b2f9d4c"  # the shape of a CDP key's name
    fake = FakeCoinbase(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0}, api_key=name, secret=pem)
    async with connected(fake, {"apiKey": name, "secret": pem}) as (_, exchange):
        report = await exchange.create_market_order(buy(500.0))
    assert report.status is OrderStatus.FILLED
    wrong = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ExchangeAuthFailed, match="invalid JWT"):
        async with connected(fake, {"apiKey": name, "secret": wrong}):
            pass


async def _lost_buy_then_others(
    db: Database, fake: FakeCoinbase, others: int, *, at_start_up: bool = False
) -> Portfolio:
    """Our market buy fills but its answer and the look-up after it are lost (an outage); then
    ``others`` orders fill on the same product (the user's own app on the same account).
    Then the order left NEW is settled on the next tick, or ``at_start_up`` by the start-up
    reconciliation (a crash before it was booked). Returns the books."""
    fake.balances["USDT"] = 5000.0
    async with connected(fake) as (fake, exchange):
        clock = await with_run(db)
        portfolio = Portfolio(1000.0)
        executor = executor_on(db, exchange, clock, portfolio)
        _lose_the_next_answer(fake)
        fake.faults.append(Fault(BATCH, 503, {"error": "unavailable"}, times=50))
        with pytest.raises(ExchangeUnavailable):
            await executor.execute(buy(500.0))
        fake.faults.clear()
        for n in range(others):
            await exchange.client.create_order(
                "BTC/USDT",
                "market",
                "buy",
                5.0,
                None,
                {"client_order_id": f"user-{n}", "createMarketBuyOrderRequiresPrice": False},
            )
        if isinstance(fake, _SecondPageFails):
            fake.failing = True
        with contextlib.suppress(ExchangeUnavailable):
            if at_start_up:
                await reconcile(
                    orders=SqliteOrderRepository(db),
                    exchange=exchange,
                    executor=executor,
                    portfolio=portfolio,
                    alerts=AlertOutbox(SqliteAlertRepository(db), clock),
                    clock=clock,
                    quote="USDT",
                    pairs=["BTC/USDT"],
                )
            else:
                await executor.settle_unknown()
    return portfolio


@pytest.mark.parametrize(
    ("others", "at_start_up"), [(99, False), (100, False), (250, False), (100, True)]
)
async def test_a_lost_answer_is_found_behind_a_page_of_newer_orders(
    db: Database, others: int, at_start_up: bool
) -> None:
    """Coinbase lists 100 orders a page, newest first, and has no client id filter: the SCAN
    reads from the order's journal time on, page after page, and finds the filled buy however
    many orders came after it, on the next tick or at start-up (one page only: it was
    journaled REJECTED at 100)."""
    fake = funded()
    portfolio = await _lost_buy_then_others(db, fake, others, at_start_up=at_start_up)
    order = await SqliteOrderRepository(db).require("pp1x1b")
    assert order.status is OrderStatus.FILLED
    ours = fake.orders[min(fake.orders)]
    assert portfolio.position("BTC/USDT").amount == pytest.approx(ours.executed)


class _SecondPageFails(FakeCoinbase):
    """Answers a 503 to any list read past its first page, once ``failing``."""

    failing = False

    async def _batch(self, params: dict[str, Any], request: web.Request) -> web.Response:
        if self.failing and params.get("cursor"):
            return web.json_response({"error": "unavailable"}, status=503)
        return await super()._batch(params, request)


@pytest.mark.parametrize("at_start_up", [False, True])
async def test_a_scan_that_cannot_read_every_page_leaves_the_order_unknown(
    db: Database, at_start_up: bool
) -> None:
    """The first page says there is more and the next one fails: the order stays NEW (looked
    up again later), never "never reached the exchange"."""
    fake = _SecondPageFails(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0})
    portfolio = await _lost_buy_then_others(db, fake, 100, at_start_up=at_start_up)
    order = await SqliteOrderRepository(db).require("pp1x1b")
    assert order.status is OrderStatus.NEW
    assert portfolio.position("BTC/USDT") is None


@pytest.mark.parametrize("host_ahead_min", [20, 180, -20, -180])
async def test_a_lost_answer_is_found_on_the_venues_clock_whatever_the_hosts_skew(
    db: Database, host_ahead_min: int
) -> None:
    """A legacy key signs with ccxt's measured time difference, so a host clock hours off
    works, and the journal dates the order on it. The lookup measures the venue's clock and
    reads around the journal time put on it: the filled order is found and booked."""
    skew = -host_ahead_min * 60_000  # the venue's clock less the host's
    fake = FakeCoinbase(now_ms=wall_ms() + skew, prices={"BTCUSDT": 100_000.0}, skew_ms=skew)
    async with connected(fake) as (fake, exchange):
        clock = await with_run(db)
        portfolio = Portfolio(1000.0)
        executor = executor_on(db, exchange, clock, portfolio)
        _lose_the_next_answer(fake)
        host_now = datetime.now(UTC)
        with contextlib.suppress(ExchangeUnavailable):
            await executor.execute(dataclasses.replace(buy(500.0), created_at=host_now))
        await executor.settle_unknown()
        order = await SqliteOrderRepository(db).require("pp1x1b")
        assert fake.balances["BTC"] > 0
        assert order.status is OrderStatus.FILLED
        assert portfolio.position("BTC/USDT").amount == pytest.approx(fake.balances["BTC"])


async def test_a_lookup_whose_venue_clock_cannot_be_read_leaves_the_order_unknown(
    db: Database, coinbase: tuple[FakeCoinbase, CcxtExchange]
) -> None:
    fake, exchange = coinbase
    clock = await with_run(db)
    executor = executor_on(db, exchange, clock, Portfolio(1000.0))
    _lose_the_next_answer(fake)
    fake.faults.append(Fault("/api/v3/brokerage/time", 503, {"error": "unavailable"}, times=99))
    with contextlib.suppress(ExchangeUnavailable):
        await executor.execute(buy(500.0))
    with pytest.raises(ExchangeUnavailable):
        await executor.settle_unknown()
    assert (await SqliteOrderRepository(db).require("pp1x1b")).status is OrderStatus.NEW
    fake.faults.clear()
    await executor.settle_unknown()
    assert (await SqliteOrderRepository(db).require("pp1x1b")).status is OrderStatus.FILLED


async def test_orders_placed_hours_later_do_not_push_a_lost_answer_past_the_page_cap(
    db: Database, coinbase: tuple[FakeCoinbase, CcxtExchange], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan reads from shortly before the journal time to an end after it (end_date):
    the orders the product gets later never count, so the pages read cannot grow with time.
    The page cap is lowered to 2 (200 orders) with 201 later orders."""
    fake, exchange = coinbase
    hours_later = 3 * 3_600_000  # the others come hours later
    clock, portfolio = await _lost_buy_behind_a_full_window(
        db, fake, exchange, monkeypatch, hours_later
    )
    executor = executor_on(db, exchange, clock, portfolio)
    await executor.settle_unknown()
    order = await SqliteOrderRepository(db).require("pp1x1b")
    assert order.status is OrderStatus.FILLED
    assert portfolio.position("BTC/USDT").amount > 0


async def _lost_buy_behind_a_full_window(
    db: Database,
    fake: FakeCoinbase,
    exchange: CcxtExchange,
    monkeypatch: pytest.MonkeyPatch,
    later_ms: int = 0,
) -> tuple[FakeClock, Portfolio]:
    """Our market buy fills, its answer and the look-up after it are lost, then 201 orders of
    another bot on the same account fill ``later_ms`` after it (0: in the same hour, where,
    with the page cap lowered to 2, 200 orders, the lookup cannot reach ours; the real cap is
    50 pages, 5,000 orders)."""
    import bot.exchange.ccxt_lookup as cx

    monkeypatch.setattr(cx, "_SCAN_PAGES", 2)
    fake.balances["USDT"] = 5000.0
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    _lose_the_next_answer(fake)
    fake.faults.append(Fault(BATCH, 503, {"error": "unavailable"}, times=50))
    with pytest.raises(ExchangeUnavailable):
        await executor.execute(buy(500.0))
    fake.faults.clear()
    fake.now_ms += later_ms
    await other_bot(exchange, 201)
    return clock, portfolio


async def other_bot(exchange: CcxtExchange, orders: int) -> None:
    """``orders`` market buys of another bot on the same account, placed through ccxt."""
    for n in range(orders):
        await exchange.client.create_order(
            "BTC/USDT",
            "market",
            "buy",
            5.0,
            None,
            {"client_order_id": f"user-{n}", "createMarketBuyOrderRequiresPrice": False},
        )


async def test_an_order_behind_more_pages_than_a_lookup_reads_is_an_unknown_outcome_not_an_outage(
    db: Database, coinbase: tuple[FakeCoinbase, CcxtExchange], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The venue answers every read, but the order cannot be found by reading it: a distinct
    error (it does not clear with time as an outage does), still never "never sent"."""
    fake, exchange = coinbase
    await _lost_buy_behind_a_full_window(db, fake, exchange, monkeypatch)
    order = await SqliteOrderRepository(db).require("pp1x1b")
    with pytest.raises(OrderOutcomeUnknown, match="more than 2 pages"):
        await exchange.lookup(order)
    assert (await SqliteOrderRepository(db).require("pp1x1b")).status is OrderStatus.NEW

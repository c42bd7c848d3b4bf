"""Orders on Kraken through ccxt's real ``kraken`` class against the local spot REST fake
(tests/doubles/fake_kraken.py): replies without status, trades named by id only, a short cl_ord_id,
stop-loss orders that plain reads list, fees per order flags, nonces and the API counter."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.core.domain import OrderIntent, OrderStatus, to_ms
from bot.core.errors import (
    ExchangeAuthFailed,
    ExchangeRejected,
    ExchangeUnavailable,
    InsufficientFunds,
)
from bot.exchange.account_fees import AccountFees
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.exchange.venues import PROFILES, IdForm
from bot.portfolio.books import Portfolio
from storage.db import Database
from storage.orders import SqliteOrderRepository
from tests.doubles.fake_exchange import Fault
from tests.doubles.fake_kraken import FakeKraken, serve_kraken
from tests.integration.test_ccxt_orders import NOW, with_run
from tests.integration.test_venue_orders import buy, stop
from tests.rigs.builders import executor_on, wall_ms
from tests.rigs.live_rig import venue_client

# The venue dates orders on the clock the tests journal them on (NOW).
JOURNAL_MS = to_ms(NOW)


@pytest.fixture
async def kraken() -> AsyncIterator[tuple[FakeKraken, CcxtExchange]]:
    async with venue_client(
        "kraken", FakeKraken(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0})
    ) as both:
        yield both


async def test_a_market_buy_answered_without_status_is_read_back_and_booked_in_full(
    db: Database, kraken: tuple[FakeKraken, CcxtExchange]
) -> None:
    fake, exchange = kraken
    fake.split = (0.4, 0.6)
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    fills, _ = await executor_on(db, exchange, clock, portfolio).execute(buy(500.0))
    assert len(fills) == 2  # both trades, read by the ids the order read names
    order = await SqliteOrderRepository(db).require("pp1x1b")
    assert order.status is OrderStatus.FILLED  # AddOrder answered a txid and a description
    assert portfolio.position("BTC/USDT").amount == pytest.approx(fake.balances["BTC"])
    assert portfolio.cash == pytest.approx(fake.balances["USDT"])
    # Sized in coins: a viqc buy would make Kraken count vol_exec in USDT (500 "filled" coins).
    assert fake.viqc_cost == {}
    assert fake.order_posts == 1


async def test_a_buy_of_all_the_cash_keeps_the_fee_kraken_adds_on_top_inside_it(
    kraken: tuple[FakeKraken, CcxtExchange],
) -> None:
    fake, exchange = kraken
    report = await exchange.create_market_order(buy(1000.0))  # the account holds 1,000 USDT
    assert report.status is OrderStatus.FILLED  # was: EOrder:Insufficient funds, every time
    assert 0.0 <= fake.balances["USDT"] < 1.0  # coins, sized for the price and the fee


async def test_a_buy_of_all_the_cash_is_sized_at_the_accounts_own_fee_not_the_published(
    kraken: tuple[FakeKraken, CcxtExchange],
) -> None:
    """The account is charged 0.40% where the pair list publishes 0.26%: read at start-up
    (TradeVolume), the buy of all the cash keeps the fee inside it. Sized at the published
    fee, Kraken refused it for insufficient funds."""
    fake, exchange = kraken
    fake.fee_rate, fake.published_fee = 0.004, 0.0026
    assert exchange.taker_fee("BTC/USDT") == pytest.approx(0.0026)  # as AssetPairs lists it
    assert await exchange.load_account_fees(["BTC/USDT"]) == {"BTC/USDT": pytest.approx(0.004)}
    assert exchange.taker_fee("BTC/USDT") == pytest.approx(0.004)
    assert exchange.taker_fee("ETH/USDT") == pytest.approx(0.004)  # the account's tier
    report = await exchange.create_market_order(buy(1000.0))  # the account holds 1,000 USDT
    assert report.status is OrderStatus.FILLED
    assert 0.0 <= fake.balances["USDT"] < 1.0


async def test_a_sell_pays_its_fee_in_the_quote_coin_and_the_books_match(
    db: Database, kraken: tuple[FakeKraken, CcxtExchange]
) -> None:
    fake, exchange = kraken
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    await executor.execute(buy(500.0))
    held = portfolio.position("BTC/USDT").amount
    sell = dataclasses.replace(stop(held, 0.0, "pp1x2s"), stop_price=None)
    await executor.execute(sell)
    assert fake.flags[2] == {"fciq"}  # Kraken's default for a sell is the coin sold (fcib)
    assert fake.balances["BTC"] == pytest.approx(0.0, abs=1e-12)  # no fee taken in coins
    assert portfolio.cash == pytest.approx(fake.balances["USDT"])


async def test_our_id_goes_as_a_uuid_cl_ord_id_and_finds_an_order_whose_answer_was_lost(
    kraken: tuple[FakeKraken, CcxtExchange],
) -> None:
    fake, exchange = kraken
    fake.faults.append(Fault("/0/private/AddOrder", 503, "", method="POST", after=True))
    ours = "pp12x1751742000000sstop"  # Kraken takes a UUID, or 18 characters of free text
    report = await exchange.create_market_order(buy(500.0, ours))
    assert report.status is OrderStatus.FILLED
    assert fake.order_posts == 1  # found by its cl_ord_id, never sent again
    (order,) = fake.orders.values()
    assert order.client_id == PROFILES["kraken"].wire_id(ours)
    assert str(uuid.UUID(order.client_id)) == order.client_id


async def test_kraken_refuses_a_long_cl_ord_id_and_one_an_open_order_holds(
    kraken: tuple[FakeKraken, CcxtExchange],
) -> None:
    fake, exchange = kraken
    client = exchange.client
    await exchange.create_market_order(buy(500.0))
    with pytest.raises(Exception, match="cl_ord_id"):
        await client.create_order(
            "BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "pp12x1751742000000b"}
        )
    await exchange.place_stop(stop(0.004, 95_000.0))
    wire = PROFILES["kraken"].wire_id("pp1x2sstop")
    with pytest.raises(Exception, match="Duplicate cl_ord_id"):
        await client.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": wire})
    assert len(fake.orders) == 2


async def test_insufficient_funds_and_a_minimum_are_refusals_not_unknown_outcomes(
    kraken: tuple[FakeKraken, CcxtExchange],
) -> None:
    fake, exchange = kraken
    with pytest.raises(InsufficientFunds, match="EOrder:Insufficient funds"):
        await exchange.create_market_order(buy(5_000.0))
    fake.faults.append(
        Fault("/0/private/AddOrder", 200, {"error": ["EOrder:Order minimum not met"]})
    )
    with pytest.raises(ExchangeRejected, match="Order minimum not met"):
        await exchange.create_market_order(buy(500.0, "pp1x2b"))
    assert fake.orders == {}
    assert fake.order_posts == 2  # neither sent again nor looked up as unknown


async def test_the_api_counter_is_waited_out_and_the_order_placed_once() -> None:
    fake = FakeKraken(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0}, limits=True)
    shifted = [0.0]
    fake.limit_clock = lambda: shifted[0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the counter decays while we wait
        waits.append(seconds)
        shifted[0] += seconds

    async with venue_client("kraken", fake, sleep=sleep) as (_, exchange):
        fake.counter, fake.counter_at = 15.0, shifted[0]  # spent: every read is refused
        report = await exchange.create_market_order(buy(500.0))
    assert report.status is OrderStatus.FILLED
    assert min(waits) >= 4.0  # was: 0.01 s of backoff while the counter stayed full
    assert (fake.order_posts, len(fake.orders)) == (1, 1)


async def test_a_nonce_not_above_the_last_is_refused() -> None:
    fake = FakeKraken(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0})
    async with venue_client("kraken", fake) as (_, exchange):
        await exchange.fetch_balances()
        fake.last_nonce += 10**9  # another process signed with a later nonce
        client = exchange.client
        with pytest.raises(Exception, match="EAPI:Invalid nonce"):
            await client.fetch_balance()


async def test_a_wrong_secret_is_an_authentication_failure_not_an_outage() -> None:
    fake = FakeKraken(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0})
    fake.secret = base64.b64encode(b"another-secret").decode()
    async with venue_client("kraken", fake) as (_, exchange):
        with pytest.raises(ExchangeAuthFailed, match="EAPI:Invalid signature"):
            await exchange.fetch_balances()  # was: ExchangeUnavailable, retried as an outage


async def test_an_unsigned_request_is_refused_with_krakens_error() -> None:
    fake = FakeKraken(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0})
    async with serve_kraken(fake) as base, aiohttp.ClientSession() as session:
        reply = await session.post(f"{base}/0/private/OpenOrders", data={"nonce": "1"})
        body = await reply.json()
    assert (reply.status, body) == (200, {"error": ["EAPI:Invalid key"]})


# Two ids of ours that share a short (31-bit) cl_ord_id, the form before UUIDs.
FIRST, SECOND = "pp3x1782309600000sstop", "pp7x1760169600000s"


def later(intent: OrderIntent) -> OrderIntent:
    """``intent`` journaled an hour after NOW, when the venue's clock was moved on by as much."""
    return dataclasses.replace(intent, created_at=NOW + timedelta(hours=1))


async def test_a_lost_answer_is_booked_as_its_own_order_not_an_older_one_with_its_short_id(
    db: Database, kraken: tuple[FakeKraken, CcxtExchange]
) -> None:
    """Our second order's answer is lost. Its id and an older, closed order's once went as the
    same short cl_ord_id, and the look-up took the oldest: the second buy was journaled FILLED
    with the first one's trades (booked already), and its own coins never booked."""
    fake, exchange = kraken
    fake.balances["USDT"] = 2000.0
    clock = await with_run(db)
    portfolio = Portfolio(2000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    await executor.execute(buy(300.0, FIRST))
    fake.now_ms += 3_600_000
    fake.faults.append(Fault("/0/private/AddOrder", 503, "", method="POST", after=True))
    await executor.execute(later(buy(400.0, SECOND)))
    second = await SqliteOrderRepository(db).require(SECOND)
    assert second.status is OrderStatus.FILLED
    assert second.filled == pytest.approx(fake.orders[max(fake.orders)].executed)
    assert portfolio.position("BTC/USDT").amount == pytest.approx(fake.balances["BTC"])
    assert portfolio.cash == pytest.approx(fake.balances["USDT"])


async def test_an_order_placed_under_the_short_id_before_an_upgrade_is_still_found(
    db: Database, kraken: tuple[FakeKraken, CcxtExchange]
) -> None:
    """An earlier version placed both orders under the short cl_ord_id; the second one's answer
    and look-up were lost, and pairpilot was upgraded to UUIDs. The look-up after the upgrade
    tries the short form too, and of the two orders carrying it takes the newer: its own."""
    fake, exchange = kraken
    fake.balances["USDT"] = 2000.0
    clock = await with_run(db)
    portfolio = Portfolio(2000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    upgraded = exchange.profile
    exchange.profile = dataclasses.replace(upgraded, id_form=IdForm.SHORT, legacy_forms=())
    await executor.execute(buy(300.0, FIRST))
    fake.now_ms += 3_600_000
    fake.faults.append(Fault("/0/private/AddOrder", 503, "", method="POST", after=True))
    for path in ("/0/private/OpenOrders", "/0/private/ClosedOrders"):
        fake.faults.append(Fault(path, 503, "", times=50))
    with pytest.raises(ExchangeUnavailable):
        await executor.execute(later(buy(400.0, SECOND)))
    fake.faults.clear()
    exchange.profile = upgraded
    assert await executor.settle_unknown() == 1
    second = await SqliteOrderRepository(db).require(SECOND)
    assert second.status is OrderStatus.FILLED
    assert second.filled == pytest.approx(fake.orders[max(fake.orders)].executed)
    assert portfolio.position("BTC/USDT").amount == pytest.approx(fake.balances["BTC"])
    assert portfolio.cash == pytest.approx(fake.balances["USDT"])


@pytest.mark.parametrize("host_ahead_min", [20, 180, -20, -180])
async def test_a_lost_answer_is_found_on_the_venues_clock_whatever_the_hosts_skew(
    db: Database, host_ahead_min: int
) -> None:
    """Kraken signs with a nonce, so a host clock hours off works for every call, and the
    journal dates the order on it. The lookup measures the venue's clock (Time) and reads
    ClosedOrders around the journal time put on it: the filled order is found and booked,
    never journaled as never sent."""
    skew = -host_ahead_min * 60_000  # the venue's clock less the host's
    fake = FakeKraken(now_ms=wall_ms() + skew, prices={"BTCUSDT": 100_000.0}, skew_ms=skew)
    async with venue_client("kraken", fake) as (fake, exchange):
        clock = await with_run(db)
        portfolio = Portfolio(1000.0)
        executor = executor_on(db, exchange, clock, portfolio)
        fake.faults.append(Fault("/0/private/AddOrder", 503, "", method="POST", after=True))
        host_now = datetime.now(UTC)
        with contextlib.suppress(ExchangeUnavailable):
            await executor.execute(dataclasses.replace(buy(400.0), created_at=host_now))
        await executor.settle_unknown()
        order = await SqliteOrderRepository(db).require("pp1x1b")
        assert fake.balances["BTC"] > 0
        assert order.status is OrderStatus.FILLED
        assert portfolio.position("BTC/USDT").amount == pytest.approx(fake.balances["BTC"])
        assert fake.order_posts == 1


@pytest.mark.parametrize("read_at_start", [False, True])
async def test_a_fee_read_that_went_stale_is_read_again_when_a_buy_is_refused(
    read_at_start: bool,
) -> None:
    """Kraken's tiers follow the 30-day volume ("trading volume discounts are not permanent").
    The account paid 0.16% at start-up; weeks later Kraken charges 0.26% again, and sized at
    0.16% a buy of all the cash is refused for insufficient funds (the fee is added on top).
    The refusal reads the fee again, and the buy is sent once more at the fresh fee. (It was
    refused at every entry until a restart.) Never read (``read_at_start`` False): sized at
    the published first tier, the highest, it always fit."""
    fake = FakeKraken(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0})
    fake.fee_rate, fake.published_fee = 0.0016, 0.0026  # a 30-day volume tier
    async with venue_client("kraken", fake) as (_, exchange):
        if read_at_start:
            await exchange.load_account_fees(["BTC/USDT"])
        fake.fee_rate = 0.0026  # weeks later: the volume fell, the tier with it
        report = await exchange.create_market_order(buy(1000.0))  # all the cash
        assert report.status is OrderStatus.FILLED
        assert exchange.taker_fee("BTC/USDT") == pytest.approx(0.0026)


async def test_the_accounts_fee_is_read_again_before_a_buy_a_day_after_it_was_read() -> None:
    fake = FakeKraken(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0})
    fake.fee_rate, fake.published_fee = 0.0024, 0.0026
    now = [0.0]
    async with venue_client("kraken", fake) as (_, exchange):
        exchange.account_fees = AccountFees("kraken", monotonic=lambda: now[0])
        await exchange.load_account_fees(["BTC/USDT"])
        fake.fee_rate = 0.0016  # the volume rose: a cheaper tier
        now[0] = 86_000.0
        await exchange.create_market_order(buy(100.0, "pp1x1b"))
        assert exchange.taker_fee("BTC/USDT") == pytest.approx(0.0024)  # not a day yet
        now[0] = 86_500.0
        await exchange.create_market_order(buy(100.0, "pp1x2b"))
        assert exchange.taker_fee("BTC/USDT") == pytest.approx(0.0016)


@pytest.mark.parametrize("read_at_start", [False, True])
async def test_a_pair_not_read_at_start_up_is_sized_at_its_own_fee_or_more(
    read_at_start: bool,
) -> None:
    """Kraken charges stablecoin pairs from a cheaper schedule than BTC/USDT (0.40% published
    here). Only the cheaper pair (ETH/USDT stands in for it) is read at start-up, at 0.20%;
    BTC/USDT, started later (/startpair), is never sized below its own published fee, and is
    read at its first buy. (It was sized at the highest read, 0.20%, and refused.)"""
    fake = FakeKraken(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0, "ETHUSDT": 3_000.0})
    fake.fee_rate, fake.published_fee = 0.002, 0.004
    async with venue_client("kraken", fake) as (_, exchange):
        if read_at_start:
            assert await exchange.load_account_fees(["ETH/USDT"]) == {"ETH/USDT": 0.002}
        assert exchange.taker_fee("BTC/USDT") >= 0.004
        fake.fee_rate = 0.0045 if read_at_start else 0.004  # what BTC/USDT is charged
        report = await exchange.create_market_order(buy(1000.0))
        assert report.status is OrderStatus.FILLED
        if read_at_start:
            assert exchange.taker_fee("BTC/USDT") == pytest.approx(0.0045)


@pytest.mark.parametrize(
    ("answered", "kept"), [(-0.001, 0.0), (0.0, 0.0026), (0.05, 0.0026), (0.0016, 0.0016)]
)
async def test_a_fee_read_that_cannot_be_a_taker_fee_is_not_believed(
    answered: float, kept: float, caplog: pytest.LogCaptureFixture
) -> None:
    """A rebate for a taker (negative) is sized as 0; zero or above 2% cannot be right: the
    published fee is kept, and the warning names the venue's answer. (Any number was used.)"""
    fake = FakeKraken(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0})
    fake.fee_rate, fake.published_fee = answered, 0.0026
    async with venue_client("kraken", fake) as (_, exchange):
        await exchange.load_account_fees(["BTC/USDT"])
        assert exchange.taker_fee("BTC/USDT") == pytest.approx(kept)
    if answered == 0 or answered > 0.02:
        assert f"answered a taker fee of {answered!r}" in caplog.text


async def test_a_pair_whose_fee_read_fails_keeps_the_fees_read_for_the_others() -> None:
    """One pair's read refused (a misspelt pair: BadSymbol): the others' fees are kept (all
    were dropped, so an account charged above the published fee was sized too low)."""
    fake = FakeKraken(now_ms=JOURNAL_MS, prices={"BTCUSDT": 100_000.0})
    fake.fee_rate, fake.published_fee = 0.004, 0.0026
    async with venue_client("kraken", fake) as (_, exchange):
        read = await exchange.load_account_fees(["DOGE/USDT", "BTC/USDT"])
        assert read == {"BTC/USDT": pytest.approx(0.004)}
        assert exchange.taker_fee("BTC/USDT") == pytest.approx(0.004)

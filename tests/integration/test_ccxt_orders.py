"""Orders through unmodified ccxt against the local Binance fake (signed, over loopback HTTP)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.alerts.outbox import AlertOutbox
from bot.app.bootstrap import build_engine
from bot.core.clock import FakeClock
from bot.core.domain import ExecutionReport, Fill, OrderIntent, OrderStatus, RiskLimits, Side
from bot.core.errors import (
    ExchangeAuthFailed,
    ExchangeRejected,
    ExchangeUnavailable,
    InsufficientFunds,
)
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.execution.executor import Executor
from bot.execution.reconcile import Reconciliation, reconcile
from bot.portfolio.books import Portfolio
from bot.portfolio.outside import OutsideHoldings
from bot.portfolio.performance import round_trips
from bot.trading.engine import Engine, EngineCosts
from storage.alerts import SqliteAlertRepository
from storage.db import Database
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import SqliteStateRepository
from tests.doubles.fake_exchange import FakeBinance, Fault, binance_urls, serve
from tests.rigs.builders import executor_on, wall_ms
from tests.rigs.invariants import Invariants

NOW = datetime(2025, 7, 1, tzinfo=UTC)
KEYS = {"apiKey": "test-key", "secret": "test-secret"}


@pytest.fixture
async def venue() -> AsyncIterator[tuple[FakeBinance, CcxtExchange]]:
    prices = {"BTCUSDT": 100_000.0, "BNBUSDT": 600.0}
    fake = FakeBinance(now_ms=int(NOW.timestamp() * 1000), prices=prices)
    async with serve(fake) as base:
        exchange = CcxtExchange.create(
            "binance",
            {"urls": {"api": binance_urls(base)}},
            credentials=KEYS,
            attempts=3,
            backoff=0.01,
        )
        fake.now_ms = wall_ms()  # signed calls must be within recvWindow of "now"
        await exchange.load_markets()
        try:
            yield fake, exchange
        finally:
            await exchange.close()


async def with_run(db: Database) -> FakeClock:
    """A BTC/USDT run for the orders to belong to; returns the test clock."""
    await SqlitePairRunRepository(db).add(
        pair="BTC/USDT", strategy="ema_cross", timeframe="1h", params={}, capital_share=1.0, now=NOW
    )
    return FakeClock(NOW)


def buy(quote: float, coid: str = "pp1-1-buy") -> OrderIntent:
    return OrderIntent(
        coid, 1, "BTC/USDT", Side.BUY, quote / 100_000, 100_000.0, NOW, quote_amount=quote
    )


async def test_a_quote_sized_market_buy_fills_under_our_client_order_id(
    venue: tuple[FakeBinance, CcxtExchange],
) -> None:
    fake, exchange = venue
    report = await exchange.create_market_order(buy(500.0))
    assert report.status is OrderStatus.FILLED
    (order,) = fake.orders.values()
    assert order.client_id == "pp1-1-buy"
    (fill,) = report.fills
    assert fill.amount == pytest.approx(0.005)
    assert fill.price == 100_000.0
    assert fill.fee == pytest.approx(0.5)  # 0.1% in USDT
    assert fake.balances["BTC"] == pytest.approx(0.005)
    assert await exchange.fetch_balances() == pytest.approx({"USDT": 499.5, "BTC": 0.005})


async def test_a_partly_filled_market_order_reports_what_filled(
    venue: tuple[FakeBinance, CcxtExchange],
) -> None:
    fake, exchange = venue
    fake.fill_share = 0.5
    report = await exchange.create_market_order(buy(500.0))
    assert report.status is OrderStatus.EXPIRED
    assert report.filled == pytest.approx(0.0025)


async def test_refusals_are_never_retried(venue: tuple[FakeBinance, CcxtExchange]) -> None:
    fake, exchange = venue
    with pytest.raises(InsufficientFunds):
        await exchange.create_market_order(buy(5_000.0))
    assert fake.orders == {}
    assert fake.order_posts == 1
    with pytest.raises(ExchangeRejected, match="under the exchange's minimum of 5"):
        await exchange.create_market_order(buy(1.0, "pp1-2-buy"))  # NOTIONAL 5 USDT
    assert fake.order_posts == 1  # never sent


@pytest.mark.parametrize(
    ("fault", "expected_posts"),
    [
        (
            Fault(
                "/api/v3/order", 503, {"code": -1000, "msg": "Unknown"}, method="POST", after=True
            ),
            1,
        ),  # placed, answer lost: found by client id, not re-sent
        (
            Fault(
                "/api/v3/order",
                429,
                {"code": -1003, "msg": "Too much request weight used"},
                method="POST",
            ),
            2,
        ),  # refused unprocessed: sent again
        (Fault("/api/v3/order", 502, "<html>bad gateway</html>", method="POST", after=True), 1),
    ],
)
async def test_an_unknown_outcome_is_looked_up_before_anything_is_resent(
    venue: tuple[FakeBinance, CcxtExchange], fault: Fault, expected_posts: int
) -> None:
    fake, exchange = venue
    fake.faults.append(fault)
    report = await exchange.create_market_order(buy(500.0))
    assert report.status is OrderStatus.FILLED
    assert len(fake.orders) == 1  # never twice
    sent = [q for path, q in fake.requests if path == "/api/v3/order" and "signature" in q]
    lookups = [q for q in sent if "origClientOrderId" in q]
    assert lookups, "the order was looked up by client order id"
    assert fake.balances["BTC"] == pytest.approx(0.005)
    assert fake.order_posts == expected_posts


async def test_bad_keys_fail_at_start_up(tmp_path: Path) -> None:
    fake = FakeBinance(now_ms=wall_ms(), prices={"BTCUSDT": 100_000.0})
    async with serve(fake) as base:
        exchange = CcxtExchange.create(
            "binance",
            {"urls": {"api": binance_urls(base)}},
            credentials={"apiKey": "test-key", "secret": "wrong"},
            attempts=2,
            backoff=0.01,
        )
        try:
            with pytest.raises(ExchangeAuthFailed, match="Signature invalid"):
                await exchange.load_markets()
        finally:
            await exchange.close()


async def test_the_journal_books_a_lost_response_order_exactly_once(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = venue
    clock = await with_run(db)
    orders = SqliteOrderRepository(db)
    executor = executor_on(db, exchange, clock)
    fake.faults.append(
        Fault("/api/v3/order", 503, {"code": -1000, "msg": "Unknown"}, method="POST", after=True)
    )
    fills, _ = await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    assert len(fills) == 1
    assert len(fake.orders) == 1
    order = await orders.require("pp1-1-buy")
    assert order.status is OrderStatus.FILLED
    assert order.exchange_order_id == "1"
    again, _ = await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    assert again == []
    assert len(fake.orders) == 1


async def test_restart_settles_what_a_crash_left_open_and_alerts_drift(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = venue
    clock = await with_run(db)
    orders = SqliteOrderRepository(db)
    portfolio = Portfolio(1000.0)
    alerts = SqliteAlertRepository(db)
    executor = executor_on(db, exchange, clock, portfolio)
    # Crash 1: journaled and sent, then the process died before booking the answer.
    placed = dataclasses.replace(buy(500.0, "pp1-10-buy"), run_id=1)
    await orders.add(placed)
    await exchange.create_market_order(placed)
    # Crash 2: journaled, then the process died before the exchange heard of it.
    await orders.add(dataclasses.replace(buy(300.0, "pp1-11-buy"), run_id=1))

    async def run_reconcile() -> Reconciliation:
        return await reconcile(
            orders=orders,
            exchange=exchange,
            executor=executor,
            portfolio=portfolio,
            alerts=AlertOutbox(alerts, clock),
            clock=clock,
            quote="USDT",
            pairs=["BTC/USDT"],
        )

    first = await run_reconcile()
    assert (first.settled, first.never_sent, first.clean) == (["pp1-10-buy"], ["pp1-11-buy"], True)
    assert (await orders.require("pp1-10-buy")).status is OrderStatus.FILLED
    assert (await orders.require("pp1-11-buy")).status is OrderStatus.REJECTED
    position = portfolio.position("BTC/USDT")
    assert position is not None
    assert position.amount == pytest.approx(0.005)
    assert len(fake.orders) == 1  # nothing was sent again
    second = await run_reconcile()
    assert (second.settled, second.never_sent) == ([], [])
    assert len(await SqliteFillRepository(db).all()) == 1
    fake.balances["BTC"] += 0.25  # someone traded on the account by hand
    drifted = await run_reconcile()
    assert drifted.drift == {"BTC": (pytest.approx(0.005), pytest.approx(0.255))}
    assert portfolio.position("BTC/USDT").amount == pytest.approx(0.005)  # not adopted
    kinds = [alert.kind for alert in await alerts.pending()]
    assert "reconciliation_drift" in kinds


async def test_a_crash_before_the_first_booking_does_not_charge_the_first_buy_twice(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    """The books' first cash is the exchange's balance at the very first start. A kill after
    the first order filled but before it was booked must not let the next start read the
    balance again (already net of that buy) and then book the buy on top of it."""
    fake, exchange = venue
    clock = await with_run(db)

    async def start() -> Engine:
        balances = await exchange.fetch_balances()
        return await build_engine(
            db,
            clock=clock,
            exchange=exchange,
            first_cash=balances.get("USDT", 0.0),
            costs=EngineCosts(0.001, 0.0),
            limits=RiskLimits(),
        )

    await start()
    placed = dataclasses.replace(buy(500.0, "pp1-20-buy"), run_id=1)
    await SqliteOrderRepository(db).add(placed)
    await exchange.create_market_order(placed)  # ...and the process died before booking it
    engine = await start()
    result = await reconcile(
        orders=SqliteOrderRepository(db),
        exchange=exchange,
        executor=engine.executor,
        portfolio=engine.portfolio,
        alerts=AlertOutbox(SqliteAlertRepository(db), clock),
        clock=clock,
        quote="USDT",
        pairs=["BTC/USDT"],
    )
    assert result.settled == ["pp1-20-buy"]
    assert result.clean
    assert engine.portfolio.cash == pytest.approx(fake.balances["USDT"])


async def test_restart_alerts_an_order_on_the_exchange_it_did_not_place_and_leaves_it(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = venue
    clock = await with_run(db)
    orders = SqliteOrderRepository(db)
    alerts = SqliteAlertRepository(db)
    portfolio = Portfolio(1000.0)
    ours = dataclasses.replace(buy(200.0, "pp1-20-buy"), run_id=1, limit_price=90_000.0)
    await orders.add(ours)
    await exchange.create_limit_order(ours)  # ours, resting
    by_hand = dataclasses.replace(buy(100.0, "web_manual_7"), limit_price=80_000.0)
    await exchange.create_limit_order(by_hand)  # placed on the account, never journaled

    result = await reconcile(
        orders=orders,
        exchange=exchange,
        executor=executor_on(db, exchange, clock, portfolio),
        portfolio=portfolio,
        alerts=AlertOutbox(alerts, clock),
        clock=clock,
        quote="USDT",
        pairs=["BTC/USDT"],
    )

    assert [order.client_order_id for order in result.foreign] == ["web_manual_7"]
    assert result.foreign[0].price == 80_000.0
    assert not result.clean
    assert [o.status for o in fake.orders.values()] == ["NEW", "NEW"]  # neither cancelled
    assert await orders.get("web_manual_7") is None  # nor adopted
    (alert,) = [a for a in await alerts.pending() if "did not place" in a.text]
    assert "BTC/USDT buy 0.00124 at 80000 (id web_manual_7)" in alert.text
    assert "pp1-20-buy" not in alert.text


async def test_an_exit_sells_what_the_exchange_holds_and_alerts_the_difference(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = venue
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    fake.balances["BTC"] -= 0.001  # the account lost some BTC the books still count
    sell = OrderIntent("pp1-2-sell", 1, "BTC/USDT", Side.SELL, 0.005, 100_000.0, NOW)
    fills, _ = await executor.execute(sell)
    assert sum(fill.amount for fill in fills) == pytest.approx(0.004)
    assert fake.balances["BTC"] == pytest.approx(0.0)
    alerts = await SqliteAlertRepository(db).pending()
    assert any(
        a.kind == "reconciliation_drift" and "selling what the exchange holds" in a.text
        for a in alerts
    )


async def test_an_order_filled_in_several_trades_is_booked_completely(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = venue
    fake.split = (0.4, 0.6)  # two resting orders on the book took it
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    fills, _ = await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    assert [fill.amount for fill in fills] == pytest.approx([0.002, 0.003])
    position = portfolio.position("BTC/USDT")
    assert position is not None
    assert position.amount == pytest.approx(fake.balances["BTC"]) == pytest.approx(0.005)
    assert portfolio.cash == pytest.approx(fake.balances["USDT"]) == pytest.approx(499.5)
    sell = OrderIntent("pp1x2sell", 1, "BTC/USDT", Side.SELL, 0.005, 100_000.0, NOW)
    sold, trade = await executor.execute(sell)
    assert len(sold) == 2
    assert portfolio.position("BTC/USDT") is None  # no phantom remainder
    assert portfolio.cash == pytest.approx(fake.balances["USDT"])
    assert trade is not None
    assert trade.pnl == pytest.approx(-1.0)  # two fees of 0.5, nothing else


async def test_a_fee_in_the_coin_bought_reduces_the_coins_received(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = venue
    fake.fee_asset = "received"  # Binance's default: a buy pays in BTC, a sell in USDT
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    (fill,), _ = await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    assert fill.amount == pytest.approx(0.004995) == pytest.approx(fake.balances["BTC"])
    assert fill.fee == pytest.approx(0.5)  # 0.000005 BTC at 100,000
    assert portfolio.cash == pytest.approx(fake.balances["USDT"]) == pytest.approx(500.0)
    sell = OrderIntent("pp1x2sell", 1, "BTC/USDT", Side.SELL, fill.amount, 100_000.0, NOW)
    await executor.execute(sell)  # 0.00499 at the lot step: 0.000005 stays (dust)
    assert portfolio.position("BTC/USDT").amount == pytest.approx(fake.balances["BTC"])
    assert fake.balances["BTC"] == pytest.approx(0.000005)
    assert portfolio.cash == pytest.approx(fake.balances["USDT"])


async def test_a_fee_paid_in_bnb_is_booked_at_its_price_and_not_taken_from_the_cash(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = venue
    fake.fee_asset, fake.balances["BNB"] = "BNB", 1.0  # BNB/USDT trades at 600
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    fills, _ = await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    (fill,) = fills
    assert fake.balances["BNB"] == pytest.approx(1.0 - 0.000625)  # 0.375 USDT at 25% off
    assert fill.fee == pytest.approx(0.375)  # not 0.000625 "USDT"
    assert (fill.fee_outside, fill.fee_asset) == (pytest.approx(0.375), "BNB")
    assert fill.amount == pytest.approx(0.005)
    assert portfolio.cash == pytest.approx(fake.balances["USDT"]) == pytest.approx(500.0)
    assert portfolio.position("BTC/USDT").fees == pytest.approx(0.375)
    (stored,) = await SqliteFillRepository(db).all()
    assert (stored.fee, stored.fee_outside, stored.fee_asset) == (fill.fee, fill.fee_outside, "BNB")


async def test_a_maker_rebate_is_booked_as_a_negative_fee(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = venue
    fake.fee_rate = -0.0001  # the exchange pays 0.01% (a maker rebate)
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    (fill,), _ = await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    assert fill.fee == pytest.approx(-0.05)
    assert portfolio.cash == pytest.approx(fake.balances["USDT"]) == pytest.approx(500.05)
    assert [f.fee for f in await SqliteFillRepository(db).all()] == [pytest.approx(-0.05)]


async def test_the_balance_recheck_counts_only_what_open_orders_do_not_hold(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, exchange = venue
    clock = await with_run(db)
    executor = executor_on(db, exchange, clock, Portfolio(1000.0))
    resting = dataclasses.replace(buy(800.0, "pp1x3buy"), run_id=1, limit_price=90_000.0)
    await executor.execute(resting)  # 800 USDT (and its fee) held by the resting limit buy
    assert fake.locked["USDT"] == pytest.approx(800.0, rel=1e-3)
    posts = fake.order_posts
    fills, _ = await executor.execute(dataclasses.replace(buy(500.0, "pp1x4buy"), run_id=1))
    assert fills == []
    assert fake.order_posts == posts  # refused before anything was sent
    order = await SqliteOrderRepository(db).require("pp1x4buy")
    assert order.status is OrderStatus.REJECTED
    (_, _, note), *_ = reversed(await SqliteOrderRepository(db).history("pp1x4buy"))
    assert "free" in note


async def test_an_unknown_outcome_not_found_is_never_resent_in_the_same_call(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    """Binance takes a filled order's id again, and a look-up right after a 5xx can miss an
    order still being processed: a resend could buy twice. The order stays NEW and the next
    tick's look-up books it."""
    fake, exchange = venue
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    fake.faults += [
        Fault("/api/v3/order", 503, {"code": -1000, "msg": "Unknown"}, method="POST", after=True),
        Fault(
            "/api/v3/order", 400, {"code": -2013, "msg": "Order does not exist."}, method="GET"
        ),  # processing: not visible yet
    ]
    with pytest.raises(ExchangeUnavailable):
        await executor.execute(dataclasses.replace(buy(500.0, "pp1x1b"), run_id=1))
    assert fake.order_posts == 1  # was: sent again under the same id
    orders = SqliteOrderRepository(db)
    assert (await orders.require("pp1x1b")).status is OrderStatus.NEW
    assert await executor.settle_unknown() == 1
    assert (await orders.require("pp1x1b")).status is OrderStatus.FILLED
    assert portfolio.position("BTC/USDT").amount == pytest.approx(fake.balances["BTC"])


async def test_a_stop_cuts_an_order_s_wait_short_and_sends_it_no_more_after_its_look_up(
    venue: tuple[FakeBinance, CcxtExchange],
) -> None:
    """Rate-limited for 30 s: the placement waits, then looks the order up and sends it again.
    A stop asked meanwhile ends the wait at once; the look-up still runs (the outcome is never
    guessed), nothing is sent again, and the order is left for the next start to settle."""
    fake, exchange = venue
    limited = {"code": -1003, "msg": "Too much request weight used"}
    fake.faults.append(
        Fault("/api/v3/order", 429, limited, headers={"Retry-After": "30"}, method="POST", times=10)
    )
    placing = asyncio.create_task(exchange.create_market_order(buy(500.0)))
    await asyncio.sleep(0.5)
    assert fake.order_posts == 1  # refused, waiting out the Retry-After
    asked = time.monotonic()
    exchange.stop_retrying()
    with pytest.raises(ExchangeUnavailable):
        await asyncio.wait_for(placing, timeout=10)
    assert time.monotonic() - asked < 2.0
    assert fake.order_posts == 1
    signed = [q for path, q in fake.requests if path == "/api/v3/order" and "signature" in q]
    assert [q for q in signed if "origClientOrderId" in q]  # looked up before giving up


async def test_a_dust_refusal_is_a_refusal_at_any_url(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    """ccxt reads Binance's -50xx codes (its 'spot' table) only at api.binance.com; the
    adapter reads the venue's own table whatever the URL, so the fake's refusals arrive as on
    Binance. A code the table does not name stays an unknown outcome: an order is looked up."""
    fake, exchange = venue
    fake.balances["BTC"] = 0.000009
    fake.dust_log.append(
        {
            "operateTime": fake.now_ms - 3_600_000,
            "transId": 1,
            "totalServiceChargeAmount": "0",
            "totalTransferedAmount": "0",
            "userAssetDribbletDetails": [],
        }
    )  # converted an hour ago
    with pytest.raises(ExchangeRejected, match="-5006"):  # once every 6 hours
        await exchange.convert_dust(["BTC"])
    fake.dust_log.clear()
    with pytest.raises(InsufficientFunds, match="-5003"):  # not held
        await exchange.convert_dust(["XRP"])
    assert fake.balances["BTC"] == 0.000009
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    fake.faults.append(
        Fault(
            "/api/v3/order", 400, {"code": -9999, "msg": "Unheard of."}, method="POST", after=True
        )
    )  # placed, answered oddly
    fills, _ = await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    assert [fill.amount for fill in fills] == [pytest.approx(0.005)]  # found and booked
    assert fake.order_posts == 1


async def test_binance_s_server_busy_is_an_unknown_outcome_at_any_url(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    """-1004 ("Server is busy") is a refusal in ccxt's URL-independent table but an unknown
    outcome in the one it reads at api.binance.com (OperationFailed): as there, the order is
    looked up and kept for the next look-up, never marked refused."""
    fake, exchange = venue
    clock = await with_run(db)
    executor = executor_on(db, exchange, clock, Portfolio(1000.0))
    busy = {"code": -1004, "msg": "Server is busy, please wait and try again"}
    fake.faults.append(Fault("/api/v3/order", 400, busy, method="POST"))
    with pytest.raises(ExchangeUnavailable, match="-1004"):
        await executor.execute(dataclasses.replace(buy(500.0, "pp1x5b"), run_id=1))
    orders = SqliteOrderRepository(db)
    assert (await orders.require("pp1x5b")).status is OrderStatus.NEW
    assert await executor.settle_unknown() == 1  # never reached the book: closed as never sent
    assert (await orders.require("pp1x5b")).status is OrderStatus.REJECTED
    assert fake.order_posts == 1


async def _stop_fires(
    db: Database,
    venue: tuple[FakeBinance, CcxtExchange],
    executor: Executor,
    portfolio: Portfolio,
    lost: float = 0.0,
) -> tuple[ExecutionReport, Fill]:
    """The books' BTC position rests under a stop; ``lost`` BTC of pairpilot's land on the
    account (a buy at 100,000 whose booking was lost); the price falls to 94,000 and the stop
    sells the position in one trade: its report, read back, and that trade."""
    fake, exchange = venue
    held = portfolio.position("BTC/USDT").amount
    await executor.execute(
        OrderIntent(
            "pp1x2sstop", 1, "BTC/USDT", Side.SELL, held, 100_000.0, NOW, stop_price=95_000.0
        )
    )
    fake.balances["BTC"] += lost
    fake.balances["USDT"] -= lost * 100_000.0
    fake.prices["BTCUSDT"] = 94_000.0
    await exchange.fetch_price("BTC/USDT")
    report = await exchange.lookup(await SqliteOrderRepository(db).require("pp1x2sstop"))
    assert report is not None
    (sold,) = report.fills
    return report, sold


async def _bnb_books(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> tuple[Executor, Portfolio, Callable[[], Awaitable[Reconciliation]]]:
    """BTC/USDT (run 1) and BNB/USDT (run 2) traded, "pay fees with BNB" on; the executor,
    its books, and a start-up reconciliation of both pairs with the user's own holdings."""
    _, exchange = venue
    clock = await with_run(db)
    await SqlitePairRunRepository(db).add(
        pair="BNB/USDT", strategy="ema_cross", timeframe="1h", params={}, capital_share=1.0, now=NOW
    )
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    alerts = AlertOutbox(SqliteAlertRepository(db), clock)
    outside = OutsideHoldings(SqliteStateRepository(db), clock)

    async def reconciled() -> Reconciliation:
        return await reconcile(
            orders=SqliteOrderRepository(db),
            exchange=exchange,
            executor=executor,
            portfolio=portfolio,
            alerts=alerts,
            clock=clock,
            quote="USDT",
            pairs=["BTC/USDT", "BNB/USDT"],
            outside=outside,
        )

    return executor, portfolio, reconciled


async def test_bnb_fees_come_out_of_the_bnb_position_and_its_books_follow_the_account(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    fake, _ = venue
    executor, portfolio, reconciled = await _bnb_books(db, venue)
    fake.fee_asset = "BNB"  # BNB/USDT at 600; the account holds no BNB of the user's
    bnb = OrderIntent("pp2x1b", 2, "BNB/USDT", Side.BUY, 0.4, 600.0, NOW, quote_amount=240.0)
    (bought,), _ = await executor.execute(bnb)  # its fee is taken from the BNB bought
    assert (bought.fee_asset, bought.amount) == ("BNB", pytest.approx(0.4 - bought.fee_amount))
    assert portfolio.position("BNB/USDT").amount == pytest.approx(fake.balances["BNB"])
    assert (await reconciled()).clean  # records the user's own: none
    await executor.execute(dataclasses.replace(buy(480.0), run_id=1))
    held = portfolio.position("BTC/USDT").amount
    sell = OrderIntent("pp1x2s", 1, "BTC/USDT", Side.SELL, held, 100_000.0, NOW)
    _, btc_trade = await executor.execute(sell)
    paid = 2 * 480.0 * 0.001 * 0.75 / 600.0  # two fees, 25% off, in BNB: 0.0012
    assert fake.balances["BNB"] == pytest.approx(bought.amount - paid)
    assert portfolio.position("BNB/USDT").amount == pytest.approx(fake.balances["BNB"])
    assert portfolio.cash == pytest.approx(fake.balances["USDT"])
    after = await reconciled()
    assert (after.drift, after.clean) == ({}, True)
    assert btc_trade.pnl == pytest.approx(-0.72)  # the BNB's value: the trade's fees
    exit_ = OrderIntent(
        "pp2x2s", 2, "BNB/USDT", Side.SELL, portfolio.position("BNB/USDT").amount, 600.0, NOW
    )
    sold, bnb_trade = await executor.execute(exit_)
    assert sum(fill.amount for fill in sold) == pytest.approx(bought.amount - paid)  # all of it
    assert portfolio.position("BNB/USDT") is None
    assert fake.balances.get("BNB", 0.0) == pytest.approx(0.0, abs=1e-12)
    drifted = [
        a
        for a in await SqliteAlertRepository(db).pending()
        if "differ" in a.text or a.kind == "reconciliation_drift"
    ]
    assert drifted == []
    fills = await SqliteFillRepository(db).all()
    trades = round_trips(fills, executor.exchange.too_small)
    assert [t.pair for t in trades] == ["BTC/USDT", "BNB/USDT"]
    assert trades[1] == bnb_trade
    # BNB/USDT, sold at the price it was bought at: its own two fees only; the BNB it paid
    # BTC/USDT's fees with was sold to the cash at its price.
    assert bnb_trade.pnl == pytest.approx(-bought.fee - 0.001 * 600.0 * (bought.amount - paid))
    assert sum(t.pnl for t in trades) == pytest.approx(fake.balances["USDT"] - 1000.0)
    assert portfolio.realised_pnl() == pytest.approx(fake.balances["USDT"] - 1000.0)
    assert (await reconciled()).clean


async def test_bnb_fees_come_out_of_the_users_own_bnb_and_a_short_balance_falls_back(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    """BNB/USDT traded but flat: the user's own BNB pays, and reconciliation sees the baseline
    move by it, not drift. The BNB runs out within an order: its next trade pays in BTC."""
    fake, _ = venue
    executor, portfolio, reconciled = await _bnb_books(db, venue)
    fake.balances["BNB"] = 0.0004  # the user's own
    assert (await reconciled()).outside["BNB"] == pytest.approx(0.0004)
    fake.fee_asset, fake.split = "BNB", (0.5, 0.5)
    fills, _ = await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    assert [fill.fee_asset for fill in fills] == ["BNB", "BTC"]
    assert fills[0].fee_amount == pytest.approx(250.0 * 0.001 * 0.75 / 600.0)
    assert fake.balances["BNB"] == pytest.approx(0.0004 - fills[0].fee_amount)
    assert portfolio.position("BTC/USDT").amount == pytest.approx(fake.balances["BTC"])
    assert portfolio.cash == pytest.approx(fake.balances["USDT"])
    assert portfolio.position("BNB/USDT") is None
    after = await reconciled()
    assert (after.drift, after.outside["BNB"]) == ({}, pytest.approx(fake.balances["BNB"]))
    (stored, _) = await SqliteFillRepository(db).all()
    assert (stored.fee_asset, stored.fee_amount) == ("BNB", pytest.approx(fills[0].fee_amount))


async def test_a_bnb_sale_paying_its_fee_in_bnb_takes_it_from_the_users_own(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    """Selling all of the BNB/USDT position, the fee in BNB comes out of the BNB left on the
    account, the user's own: the books sell what they hold (the sale is not larger than it)."""
    fake, _ = venue
    executor, portfolio, reconciled = await _bnb_books(db, venue)
    fake.balances["BNB"] = 0.1  # the user's own
    await reconciled()
    fake.fee_asset = "BNB"
    bnb = OrderIntent("pp2x1b", 2, "BNB/USDT", Side.BUY, 0.4, 600.0, NOW, quote_amount=240.0)
    await executor.execute(bnb)
    held = portfolio.position("BNB/USDT").amount
    (sold,), trade = await executor.execute(
        OrderIntent("pp2x2s", 2, "BNB/USDT", Side.SELL, held, 600.0, NOW)
    )
    assert (sold.amount, sold.fee_asset) == (pytest.approx(held), "BNB")
    assert portfolio.position("BNB/USDT") is None
    assert trade is not None
    assert fake.balances["BNB"] == pytest.approx(0.1 - sold.fee_amount)
    after = await reconciled()
    assert (after.drift, after.outside["BNB"]) == ({}, pytest.approx(fake.balances["BNB"]))
    assert portfolio.cash == pytest.approx(fake.balances["USDT"])


async def _bnb_under_its_stop(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> tuple[Executor, Portfolio, Callable[[], Awaitable[Reconciliation]], float]:
    """``_bnb_books`` with fees in BNB, a BNB/USDT position bought (reconciled clean) and all
    of it resting under its stop; also returns the position's amount."""
    fake, _ = venue
    executor, portfolio, reconciled = await _bnb_books(db, venue)
    fake.fee_asset = "BNB"
    bnb = OrderIntent("pp2x1b", 2, "BNB/USDT", Side.BUY, 0.4, 600.0, NOW, quote_amount=240.0)
    await executor.execute(bnb)
    assert (await reconciled()).clean
    held = portfolio.position("BNB/USDT").amount
    await executor.execute(
        OrderIntent("pp2x1sstop", 2, "BNB/USDT", Side.SELL, held, 600.0, NOW, stop_price=550.0)
    )
    return executor, portfolio, reconciled, held


async def test_a_bnb_fee_taken_from_a_deposit_never_comes_out_of_a_position_under_its_stop(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    """The BNB/USDT position rests under its stop (all of it locked); the user deposits BNB
    for fees; Binance takes the next BTC fee from the free BNB, the deposit. The fee is the
    user's: the position stays what the stop locks, and the stop's sale is booked when it
    fires (it was booked out of the position, and the sale then exceeded it forever)."""
    fake, exchange = venue
    executor, portfolio, reconciled, held = await _bnb_under_its_stop(db, venue)
    assert fake.balances.get("BNB", 0.0) == pytest.approx(0.0, abs=1e-12)  # all locked
    fake.balances["BNB"] = 0.05  # the user's deposit
    await executor.execute(dataclasses.replace(buy(480.0), run_id=1))
    paid = 0.05 - fake.balances["BNB"]
    assert paid > 0  # the venue took the fee from the deposit
    assert portfolio.position("BNB/USDT").amount == pytest.approx(held)
    after = await reconciled()  # the user's BNB measured again: the deposit net of the fee
    assert after.clean, after
    assert after.outside["BNB"] == pytest.approx(fake.balances["BNB"])
    fake.prices["BNBUSDT"] = 540.0
    await exchange.fetch_price("BNB/USDT")  # the fake's market moves: the stop fires
    report = await exchange.lookup(await SqliteOrderRepository(db).require("pp2x1sstop"))
    assert report is not None
    assert report.status is OrderStatus.FILLED
    _, trade = await executor.settle(report)
    assert portfolio.position("BNB/USDT") is None
    assert trade is not None
    assert portfolio.cash == pytest.approx(fake.balances["USDT"])
    assert (await reconciled()).clean


async def test_a_sale_beyond_the_books_position_is_booked_up_to_it_and_alerted(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    """The venue reports a stop's sale of more than the books hold (the books were short of
    the account): booked up to the position, the round trip closed, the rest counted as the
    user's and alerted. Booked whole it raised at every settle, its proceeds never booked."""
    fake, exchange = venue
    executor, portfolio, _ = await _bnb_books(db, venue)
    await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    held = portfolio.position("BTC/USDT").amount
    protect = OrderIntent(
        "pp1x2sstop", 1, "BTC/USDT", Side.SELL, held, 100_000.0, NOW, stop_price=95_000.0
    )
    await executor.execute(protect)
    fake.prices["BTCUSDT"] = 94_000.0
    await exchange.fetch_price("BTC/USDT")  # the stop fires
    report = await exchange.lookup(await SqliteOrderRepository(db).require("pp1x2sstop"))
    assert report is not None
    (sold,) = report.fills
    grown = (sold.amount + 0.0001) / sold.amount  # the venue's fee is on the whole trade
    more = dataclasses.replace(
        sold, amount=sold.amount + 0.0001, fee=sold.fee * grown, fee_amount=sold.fee_amount * grown
    )
    cash = portfolio.cash
    _, trade = await executor.settle(dataclasses.replace(report, fills=(more,)))
    assert portfolio.position("BTC/USDT") is None
    assert trade is not None
    assert portfolio.cash == pytest.approx(cash + held * sold.price - sold.cash_fee)
    alerts = await SqliteAlertRepository(db).pending()
    assert any("more than the books held" in alert.text for alert in alerts)


@pytest.mark.parametrize("own", [0.0, 0.0004])
async def test_a_sale_beyond_the_books_credits_the_user_no_more_than_their_own_coins(
    db: Database, venue: tuple[FakeBinance, CcxtExchange], own: float
) -> None:
    """The venue sells 0.001 BTC more than the books hold; the user's recorded own BTC is
    ``own``. Only that much was theirs (its proceeds theirs too); the rest was pairpilot's,
    bought by a buy whose booking was lost (its cost gone from the account, never booked).
    That rest's proceeds are not moved into the user's column: the cash gap, the unbooked
    round trip's outcome, stays visible as drift. (They were all credited to the user, who
    owned none: the loss hidden behind "the coins were yours".)"""
    fake, exchange = venue
    executor, portfolio, reconciled = await _bnb_books(db, venue)
    await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    fake.balances["BTC"] += own  # the user's own
    assert (await reconciled()).outside["BTC"] == pytest.approx(own)
    outside = OutsideHoldings(SqliteStateRepository(db), FakeClock(NOW))
    users_usdt = (await outside.get())["USDT"]
    held = portfolio.position("BTC/USDT").amount
    protect = OrderIntent(
        "pp1x2sstop", 1, "BTC/USDT", Side.SELL, held, 100_000.0, NOW, stop_price=95_000.0
    )
    await executor.execute(protect)
    books_cash = portfolio.cash
    lost = 0.001 - own  # pairpilot's buy of these coins was never booked: cash spent, unbooked
    fake.balances["BTC"] += lost
    fake.balances["USDT"] -= lost * 100_000.0
    fake.prices["BTCUSDT"] = 94_000.0
    await exchange.fetch_price("BTC/USDT")  # the stop fires (for what the books held) ...
    report = await exchange.lookup(await SqliteOrderRepository(db).require("pp1x2sstop"))
    (sold,) = report.fills
    fee = sold.fee / sold.amount  # a coin's share of the fee: the books pay only theirs
    fake.balances["BTC"] -= 0.001  # ... and the venue sold 0.001 BTC more
    fake.balances["USDT"] += 0.001 * (94_000.0 - fee)
    grown = (sold.amount + 0.001) / sold.amount  # the venue's fee is on the whole trade
    more = dataclasses.replace(
        sold, amount=sold.amount + 0.001, fee=sold.fee * grown, fee_amount=sold.fee_amount * grown
    )
    _, trade = await executor.settle(dataclasses.replace(report, fills=(more,)))
    assert portfolio.position("BTC/USDT") is None
    assert trade is not None
    after = await outside.get()
    assert after["BTC"] == pytest.approx(0.0, abs=1e-12)
    assert after["USDT"] == pytest.approx(users_usdt + own * (94_000.0 - fee))  # their part
    assert portfolio.cash == pytest.approx(books_cash + sold.amount * 94_000.0 - sold.fee)
    alerts = [
        a.text
        for a in await SqliteAlertRepository(db).pending()
        if a.kind == "reconciliation_drift"
    ]
    assert len(alerts) == 1
    assert f"{lost:.8g} BTC were pairpilot's coins the books never booked" in alerts[0]
    assert ("taken from your own" in alerts[0]) == (own > 0)
    result = await reconciled()
    assert "BTC" not in result.drift
    books, venue_usdt = result.drift["USDT"]  # the unbooked buy's cost against its proceeds
    assert books - venue_usdt == pytest.approx(lost * (100_000.0 - 94_000.0 + fee))
    assert books == pytest.approx(portfolio.cash)


async def test_a_sale_beyond_the_books_whose_fee_is_paid_in_bnb_charges_the_books_it_whole(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    """A stop sells 0.001 BTC beyond the books, its fee paid in BNB (pairpilot's BNB
    position sells what it pays). Only the quote part of a fee is split pro rata with the
    part beyond; the BNB sale and its charge stay equal, so the books' cash is the position's
    proceeds exactly. (Split after the BNB sale, the charge for it was cut, not its proceeds:
    cash the account never had.)"""
    fake, exchange = venue
    executor, portfolio, _ = await _bnb_books(db, venue)
    fake.fee_asset = "BNB"
    bnb = OrderIntent("pp2x1b", 2, "BNB/USDT", Side.BUY, 0.4, 600.0, NOW, quote_amount=240.0)
    await executor.execute(bnb)
    await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    held = portfolio.position("BTC/USDT").amount
    report, sold = await _stop_fires(db, venue, executor, portfolio)
    assert sold.fee_asset == "BNB"
    grown = (sold.amount + 0.001) / sold.amount
    more = dataclasses.replace(
        sold,
        amount=sold.amount + 0.001,
        fee=sold.fee * grown,
        fee_outside=sold.fee_outside * grown,
        fee_amount=sold.fee_amount * grown,
    )
    cash = portfolio.cash
    await executor.settle(dataclasses.replace(report, fills=(more,)))
    assert portfolio.position("BTC/USDT") is None
    assert portfolio.cash == pytest.approx(cash + held * sold.price, rel=1e-12)


@pytest.mark.parametrize("own", [0.0, 1.0])
async def test_a_trade_wholly_beyond_the_books_is_alerted_and_the_users_coins_followed(
    db: Database, venue: tuple[FakeBinance, CcxtExchange], own: float, tmp_path: Path
) -> None:
    """Binance splits the stop's sale in two trades, the first exactly the books' position,
    the second 0.001 BTC beyond it (``own``: the user's recorded BTC, sold when they hold it;
    0: pairpilot's unbooked coins). The second trade is alerted and the user's figure follows
    as with one trade, and a settle again changes nothing. (It was clamped to amount 0, INSERT
    OR IGNORE swallowed the CHECK (amount > 0) failure, and it read as booked before: no
    alert, the user's figure untouched though their coins were sold.)"""
    fake, exchange = venue
    executor, portfolio, reconciled = await _bnb_books(db, venue)
    await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    fake.balances["BTC"] += own
    await reconciled()
    outside = OutsideHoldings(SqliteStateRepository(db), FakeClock(NOW))
    # pairpilot's lost buy (unless ``own``): coins on the account, their cost gone
    report, sold = await _stop_fires(db, venue, executor, portfolio, lost=0.0 if own else 0.001)
    second = dataclasses.replace(
        sold, amount=0.001, fee=0.094, fee_amount=0.094, trade_id=f"{sold.trade_id}b"
    )
    fake.balances["BTC"] -= 0.001
    fake.balances["USDT"] += 94.0 - 0.094
    users_usdt = (await outside.get())["USDT"]
    split = dataclasses.replace(report, fills=(sold, second))
    fills, trade = await executor.settle(split)
    assert [f.trade_id for f in fills] == [sold.trade_id]
    assert trade is not None
    after = await outside.get()
    alerts = [
        a.text
        for a in await SqliteAlertRepository(db).pending()
        if a.kind == "reconciliation_drift"
    ]
    assert len(alerts) == 1
    assert "sold 0.001 BTC more than the books held" in alerts[0]
    assert after["BTC"] == pytest.approx(own - 0.001 if own else 0.0)
    assert after["USDT"] == pytest.approx(users_usdt + (94.0 - 0.094 if own else 0.0))
    assert await executor.settle(split) == ([], None)  # seen: never credited twice
    assert await outside.get() == after
    result = await reconciled()
    assert "BTC" not in result.drift
    assert ("USDT" in result.drift) == (not own)
    if own:  # the soaks' ledger invariant knows a trade recorded only as beyond the books
        (order,) = [o for o in fake.orders.values() if o.kind == "STOP_LOSS"]
        order.fills.append(
            {
                **order.fills[0],
                "tradeId": f"{order.fills[0]['tradeId']}b",
                "qty": "0.001",
                "price": "94000",
                "commission": "0.094",
                "commissionAsset": "USDT",
            }
        )
        ledger = Invariants(fake, tmp_path / "test.sqlite", pairs=("BTC/USDT",))
        assert ledger.check("after the split sale") == []


async def test_coins_sold_beyond_the_books_are_the_users_only_if_the_account_shows_it(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    """The user keeps 1 BTC long-term; the stop sells 0.001 BTC beyond the books, all of them
    pairpilot's (a buy whose booking was lost). The account still holds the user's whole 1 BTC
    afterwards, so none of theirs was sold: their figures stay, the proceeds go to neither
    column and the alert says pairpilot's. (Their figure covered the excess, so it was called
    theirs: BTC 0.999, +94 USDT, a phantom deposit at the next reconciliation.) Then a sale
    whose balance read fails: nothing is credited, and the alert says why."""
    fake, exchange = venue
    executor, portfolio, reconciled = await _bnb_books(db, venue)
    await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    fake.balances["BTC"] += 1.0  # the user's long-term coins
    assert (await reconciled()).outside["BTC"] == pytest.approx(1.0)
    outside = OutsideHoldings(SqliteStateRepository(db), FakeClock(NOW))
    users_usdt = (await outside.get())["USDT"]
    lost = 0.001  # pairpilot's buy, never booked: its cash spent
    report, sold = await _stop_fires(db, venue, executor, portfolio, lost)
    fee = sold.fee / sold.amount  # a coin's share of the fee, on the whole trade
    fake.balances["BTC"] -= lost
    fake.balances["USDT"] += lost * (94_000.0 - fee)
    more = dataclasses.replace(
        sold,
        amount=sold.amount + lost,
        fee=fee * (sold.amount + lost),
        fee_amount=fee * (sold.amount + lost),
    )
    await executor.settle(dataclasses.replace(report, fills=(more,)))
    alerts = [
        a.text
        for a in await SqliteAlertRepository(db).pending()
        if a.kind == "reconciliation_drift"
    ]
    after = await outside.get()
    assert fake.balances["BTC"] + fake.locked.get("BTC", 0.0) == pytest.approx(1.0)
    assert after["BTC"] == pytest.approx(1.0)
    assert after["USDT"] == pytest.approx(users_usdt)
    assert len(alerts) == 1
    assert "taken from your own" not in alerts[0]
    assert "were pairpilot's coins the books never booked" in alerts[0]
    result = await reconciled()
    assert "BTC" not in result.drift
    books, venue_usdt = result.drift["USDT"]  # the unbooked round trip's outcome
    assert books - venue_usdt == pytest.approx(lost * (6_000.0 + fee))
    # a later sale beyond the books whose balance read fails: kept as drift, said so
    await executor.execute(dataclasses.replace(buy(500.0), run_id=1, client_order_id="pp1x3b"))
    held = portfolio.position("BTC/USDT").amount
    await executor.execute(OrderIntent("pp1x4s", 1, "BTC/USDT", Side.SELL, held, 94_000.0, NOW))
    again = dataclasses.replace(more, client_order_id="pp1x4s", trade_id="beyond-2", amount=0.002)
    fake.faults.append(Fault("/api/v3/account", 503, {"code": -1000, "msg": "x"}, times=50))
    await executor.settle(dataclasses.replace(report, client_order_id="pp1x4s", fills=(again,)))
    fake.faults.clear()
    assert (await outside.get())["BTC"] == pytest.approx(1.0)
    (failed,) = [
        a.text
        for a in await SqliteAlertRepository(db).pending()
        if a.kind == "reconciliation_drift" and "pp1x4s" in a.text
    ]
    assert "the balances could not be read" in failed


@pytest.mark.parametrize("by_hand", [-0.3, 0.5])
async def test_a_sale_beyond_the_books_booked_later_calls_no_coins_the_users(
    db: Database, venue: tuple[FakeBinance, CcxtExchange], by_hand: float
) -> None:
    """The user keeps 1 BTC; a stop sold 0.001 BTC beyond the books (pairpilot's, a lost buy)
    3 hours before it is booked (it fired while pairpilot waited for the next candle), and the
    user sold 0.3 (or bought 0.5) BTC by hand in between. The balances now cannot tell whose
    coins the stop sold: nothing is called theirs, and the alert says why. (The read decided:
    the hand sale made pairpilot's 0.001 BTC "taken from your own", +94 USDT to them.)"""
    fake, exchange = venue
    executor, portfolio, reconciled = await _bnb_books(db, venue)
    await executor.execute(dataclasses.replace(buy(500.0), run_id=1))
    fake.balances["BTC"] += 1.0  # the user's long-term coins
    await reconciled()
    outside = OutsideHoldings(SqliteStateRepository(db), FakeClock(NOW))
    before = await outside.get()
    report, sold = await _stop_fires(db, venue, executor, portfolio)
    fake.balances["BTC"] += by_hand  # the user's hand trade, between the sale and its booking
    fake.balances["USDT"] -= by_hand * 94_000.0
    more = dataclasses.replace(sold, amount=sold.amount + 0.001, time=NOW - timedelta(hours=3))
    await executor.settle(dataclasses.replace(report, fills=(more,)))
    assert await outside.get() == before
    (alert,) = [
        a.text
        for a in await SqliteAlertRepository(db).pending()
        if a.kind == "reconciliation_drift"
    ]
    assert "taken from your own" not in alert
    assert "180 min old" in alert
    assert "cannot tell whose coins" in alert


@pytest.mark.parametrize("lost_buy", [False, True])
async def test_a_bnb_fee_beyond_the_known_coins_is_measured_now_or_kept_as_drift(
    db: Database, venue: tuple[FakeBinance, CcxtExchange], lost_buy: bool
) -> None:
    """The BNB/USDT position rests under its stop; 0.05 BNB nobody has a figure for appear
    on the account and Binance takes the next BTC fees from them. A deposit of the user's
    (the cash agrees with the books): their BNB figure is measured again at once. Pairpilot's
    BNB buy whose booking was lost (its 30 USDT gone from the cash): the figure is kept, the
    drift alerted once and still shown by the next reconciliation. (The figure was dropped,
    and the next reconciliation, weeks away maybe, recorded the unbooked BNB as the user's.)"""
    fake, _ = venue
    executor, portfolio, reconciled, held = await _bnb_under_its_stop(db, venue)
    fake.balances["BNB"] = fake.balances.get("BNB", 0.0) + 0.05
    if lost_buy:
        fake.balances["USDT"] -= 30.0  # what pairpilot's lost BNB buy cost
    await executor.execute(dataclasses.replace(buy(480.0), run_id=1))
    btc = portfolio.position("BTC/USDT").amount
    await executor.execute(OrderIntent("pp1x2s", 1, "BTC/USDT", Side.SELL, btc, 100_000.0, NOW))
    assert 0 < fake.balances["BNB"] < 0.05  # both fees came out of the 0.05 BNB
    outside = OutsideHoldings(SqliteStateRepository(db), FakeClock(NOW))
    own = (await outside.get()).get("BNB")
    drifted = [
        a.text
        for a in await SqliteAlertRepository(db).pending()
        if a.kind == "reconciliation_drift"
    ]
    result = await reconciled()
    if lost_buy:
        assert own == 0.0  # kept: the unbooked coins are not called the user's
        assert len(drifted) == 1  # once, though both fees came out of them
        assert "BNB fees from BNB coins beyond your recorded own" in drifted[0]
        assert "/holdings accept" in drifted[0]
        assert set(result.drift) == {"BNB", "USDT"}, result
        assert result.outside["BNB"] == 0.0
    else:
        assert own == pytest.approx(fake.balances["BNB"])  # the deposit net of the fees, now
        assert drifted == []
        assert result.clean, result
    assert portfolio.position("BNB/USDT").amount == pytest.approx(held)


async def test_the_sale_of_a_rest_left_as_dust_completes_its_trade_and_counts_once(
    db: Database, venue: tuple[FakeBinance, CcxtExchange]
) -> None:
    """An exit leaves 0.00004 BTC, 4 USDT: under Binance's 5 USDT minimum, so the trade closes
    there (a loss, counted toward the cooldown). The price rises, the rest is worth 6 USDT and
    the engine sells it at the next close: that sale completes the same trade. Its alert gives
    the whole trade's PnL, and it is not handed back as a second closed trade (which the engine
    would count as a second loss in a row)."""
    fake, exchange = venue
    clock = await with_run(db)
    portfolio = Portfolio(1000.0)
    executor = executor_on(db, exchange, clock, portfolio)
    await executor.execute(buy(500.0))
    fake.fill_share = 0.992  # 0.00496 of 0.005 sells, the rest expires
    sale = OrderIntent("pp1x2s", 1, "BTC/USDT", Side.SELL, 0.005, 100_000.0, NOW)
    _, first = await executor.execute(sale)
    assert first is not None
    assert first.amount == pytest.approx(0.005)
    fake.fill_share, fake.prices["BTCUSDT"] = 1.0, 150_000.0
    rest = OrderIntent("pp1x3srest", 1, "BTC/USDT", Side.SELL, 0.00004, 150_000.0, NOW)
    sold, again = await executor.execute(rest)
    assert sum(fill.amount for fill in sold) == pytest.approx(0.00004)
    assert again is None  # the trade was closed (and counted) by the first sale
    (trade,) = round_trips(await SqliteFillRepository(db).all(), exchange.too_small)
    assert trade.pnl == pytest.approx(portfolio.cash - 1000.0)
    texts = [alert.text for alert in await SqliteAlertRepository(db).pending()]
    assert texts[-1].endswith(
        f"trade PnL (with its rest) now {trade.pnl:+,.2f} ({trade.return_pct:+.2%})"
    )

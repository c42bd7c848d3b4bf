"""An order whose outcome cannot be read from the venue (review i15 s16b, F2): only its pair
waits, the admins are told once, start-up does not wedge, and /order settles it by hand.

Real parts: ccxt's coinbase class on the Coinbase fake over loopback, a real SQLite file, the
real engine and service. The scan's page cap is lowered to 2 pages (200 orders; the real cap is
50 pages, 5,000 orders) and another bot's 201 orders fill around ours."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bot.app.bootstrap import build_engine, strategy_faults
from bot.core.clock import FakeClock
from bot.core.domain import (
    AlertPriority,
    OrderIntent,
    OrderStatus,
    RiskLimits,
    RunState,
    Side,
    to_ms,
)
from bot.core.errors import BotError, ExchangeUnavailable, UserInputError
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.execution.executor import Executor
from bot.market.candle_files import ReplaySource
from bot.portfolio.books import CASH_KEY, Portfolio
from bot.portfolio.outside import OutsideHoldings
from bot.trading.engine import Engine, EngineCosts
from bot.trading.protection import protection_key
from bot.trading.service import TradingService
from handlers.admin_commands import health_text
from storage.alerts import SqliteAlertRepository
from storage.db import Database, open_database
from storage.equity import SqliteEquityRepository
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import SqliteStateRepository
from strategies import ExitPolicy
from tests.doubles.fake_coinbase import FakeCoinbase, order_uuid
from tests.doubles.fake_exchange import Fault
from tests.integration.test_ccxt_orders import with_run
from tests.integration.test_dust import cockpit_on
from tests.integration.test_paper_and_engine import at_open
from tests.integration.test_venue_coinbase import (
    BATCH,
    NOW,
    ORDERS,
    _lost_buy_behind_a_full_window,
    connected,
    funded,
    other_bot,
)
from tests.integration.test_venue_orders import buy
from tests.rigs.builders import executor_on
from tests.rigs.chat_rig import ADMIN, VIEWER, chat_stack
from tests.rigs.live_rig import funded_fake, live_stack, venue_client

BTC, ETH = "BTC/USDT", "ETH/USDT"
CANCEL = "/api/v3/brokerage/orders/batch_cancel"


@asynccontextmanager
async def stuck(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FakeCoinbase, CcxtExchange, FakeClock]]:
    """Coinbase with our BTC buy filled, its answer lost, behind more pages than a lookup
    reads; the order is journaled NEW under the BTC/USDT run."""
    async with connected(funded()) as (fake, exchange):
        clock, _ = await _lost_buy_behind_a_full_window(db, fake, exchange, monkeypatch)
        yield fake, exchange, clock


async def engine_on(db: Database, exchange: CcxtExchange, clock: FakeClock) -> Engine:
    return await build_engine(
        db,
        clock=clock,
        exchange=exchange,
        first_cash=5000.0,
        costs=EngineCosts(0.001, 0.0),
        limits=RiskLimits(max_position_fraction=1.0),
    )


def held_ids(executor: Executor, pair: str) -> list[str]:
    """The ids of the orders ``pair`` waits on."""
    return [order.client_order_id for order in executor.unknown.waiting(pair)]


async def alerts_of(db: Database, kind: str) -> list[str]:
    return [a.text for a in await SqliteAlertRepository(db).pending(1000) if a.kind == kind]


async def test_an_order_the_venue_cannot_tell_holds_its_pair_only_and_alerts_the_admins_once(
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    btc_candles: pd.DataFrame,
    eth_candles: pd.DataFrame,
) -> None:
    """ETH/USDT keeps ticking (its per-candle stops with it); BTC/USDT, whose buy cannot be
    read back, is not ticked (a sale there could sell twice) and the admins get one critical
    alert that names the order, pair and venue, says the pair is NOT protected meanwhile and
    gives the way out; not the generic "exchange trouble ... positions keep their stops"."""
    async with stuck(db, monkeypatch) as (_, exchange, clock):
        engine = await engine_on(db, exchange, clock)
        runs = SqlitePairRunRepository(db)
        eth = await runs.add(
            pair=ETH, strategy="ema_cross", timeframe="1h", params={}, capital_share=0.5, now=NOW
        )
        btc = await runs.latest_for(BTC)
        source = ReplaySource({BTC: btc_candles, ETH: eth_candles}, {BTC: "1h", ETH: "1h"})
        service = TradingService(
            engine=engine,
            source=source,
            clock=clock,
            runs=[btc, eth],
            equity=SqliteEquityRepository(db),
            faults=strategy_faults(db, clock),
        )
        for index in (200, 201, 202):
            clock.set(at_open(btc_candles, index))
            assert await service.tick() == 1
        assert set(service.last_ticks) == {ETH}
        order = await SqliteOrderRepository(db).require("pp1x1b")
        assert order.status is OrderStatus.NEW  # never "never sent"
        [alert] = await alerts_of(db, "order_unknown")
        for words in (
            "pp1x1b",
            BTC,
            "coinbase",
            "NOT protected",
            "/order pp1x1b never",
            "/order pp1x1b filled AMOUNT PRICE FEE",
            "the fee in USDT",
            "trade history",
        ):
            assert words in alert
        assert await alerts_of(db, "exchange_error") == []
        assert [
            a.priority
            for a in await SqliteAlertRepository(db).pending(1000)
            if a.kind == "order_unknown"
        ] == [AlertPriority.CRITICAL]


async def crashed_with_a_lost_buy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> tuple[FakeCoinbase, datetime]:
    """pairpilot's database and the Coinbase fake as a crash left them: the BTC/USDT buy
    pp1x1b filled, journaled NEW, behind another bot's 201 orders; and when it was."""
    return await crashed_with_lost_orders(tmp_path, monkeypatch, btc_candles, [buy(500.0)])


async def crashed_with_lost_orders(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    btc_candles: pd.DataFrame,
    intents: list[OrderIntent],
    state: dict[str, object] | None = None,
) -> tuple[FakeCoinbase, datetime]:
    """Like crashed_with_a_lost_buy, for each of ``intents`` (sent in turn, each answer lost);
    ``state``: the BTC/USDT run's protection state saved first."""
    import bot.exchange.ccxt_lookup as cx

    monkeypatch.setattr(cx, "_SCAN_PAGES", 2)
    start = at_open(btc_candles, 200) + timedelta(seconds=5)
    fake = funded_fake(btc_candles, "coinbase")
    fake.balances["USDT"] = 5000.0
    fake.move_to(to_ms(start))
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        await SqlitePairRunRepository(db).add(
            pair=BTC, strategy="ema_cross", timeframe="1h", params={}, capital_share=0.5, now=start
        )
        clock = FakeClock(start)
        saved = SqliteStateRepository(db)
        if state is not None:
            await saved.set(protection_key(BTC), state, start)
        # As the real app's very first start (bot/app/bootstrap.py, commit 9810fef), before any
        # order: the books' first cash kept, and the user's own holdings (none) recorded.
        await saved.set(CASH_KEY, 5000.0, start)
        await OutsideHoldings(saved, clock).complete({"USDT": 5000.0, "BTC": 0.0}, fake.balances)
        async with venue_client("coinbase", fake) as (fake, exchange):
            executor = executor_on(db, exchange, clock, Portfolio(5000.0))
            for intent in intents:
                fake.faults.append(
                    Fault(ORDERS, 503, {"error": "unavailable"}, method="POST", after=True)
                )
                fake.faults.append(Fault(BATCH, 503, {"error": "unavailable"}, times=50))
                with pytest.raises(ExchangeUnavailable):
                    await executor.execute(dataclasses.replace(intent, created_at=start))
                fake.faults.clear()
            await other_bot(exchange, 201)
    return fake, start


async def test_a_lost_buy_settled_by_hand_leaves_the_users_own_holdings_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17c L1. The crash rig keeps the books' first cash and the user's own
    holdings (none) before the first order, as the real app's first start does: the lost buy
    settled by hand with the venue's numbers costs the books exactly what the venue spent,
    and after a restart none of it is called the user's own USDT."""
    fake, start = await crashed_with_a_lost_buy(tmp_path, monkeypatch, btc_candles)
    ours = fake.orders[min(fake.orders)]
    fee = float(ours.fills[0]["commission"])
    said = ["pp1x1b", "filled", f"{ours.executed!r}", f"{ours.quote / ours.executed!r}", f"{fee!r}"]
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, _, _):
        assert trading.engine.portfolio.cash == 5000.0
        await trading.control.settle_order(said, "1001")
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, _, _):
        db = trading.engine.executor.transactions
        own = await OutsideHoldings(SqliteStateRepository(db), FakeClock(start)).get()
        assert own["USDT"] == 0.0
        assert trading.engine.portfolio.cash == pytest.approx(5000.0 - ours.quote - fee)


async def test_a_position_whose_entry_is_not_known_yet_has_no_stop_in_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """A buy booked outside the entry path (here settled by hand) before a tick restores its
    stops (``Protector.ensure``): its protection state holds only the ATR distance remembered
    before the buy was sent, so no stop is in force yet. (The read raised KeyError.)"""
    fake, start = await crashed_with_lost_orders(
        tmp_path, monkeypatch, btc_candles, [buy(500.0)], {"atr_distance": 500.0}
    )
    ours = fake.orders[min(fake.orders)]
    fee = float(ours.fills[0]["commission"])
    said = ["pp1x1b", "filled", f"{ours.executed!r}", f"{ours.quote / ours.executed!r}", f"{fee!r}"]
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, _, _):
        await trading.control.settle_order(said, "1001")
        (run,) = trading.service.runs()
        assert trading.engine.portfolio.position(BTC) is not None
        assert await trading.engine.stop_in_force(run, ExitPolicy(stop_loss=0.05)) is None


async def another_bots_grid(fake: FakeCoinbase) -> None:
    """Another bot's grid on the account: 201 resting limit buys far below the market, more
    than a lookup reads of the open orders too."""
    async with venue_client("coinbase", fake) as (fake, exchange):
        for n in range(201):
            await exchange.client.create_order(
                BTC, "limit", "buy", 0.0001, 50_000.0, {"client_order_id": f"grid-{n}"}
            )


async def test_start_up_does_not_wedge_on_it_the_pair_waits_and_the_kill_switch_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """pairpilot crashed with the buy NEW; at the restart the start-up reconciliation meets
    the same order: the service starts all the same (chat and kill switch work), the pair
    waits, the admins are alerted once (not again by the ticks after), and the holdings are
    not compared (the buy's coins would read as drift, or as the user's own at a first
    start)."""
    fake, start = await crashed_with_a_lost_buy(tmp_path, monkeypatch, btc_candles)
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, market, jobs):
        assert held_ids(trading.engine.executor, BTC) == ["pp1x1b"]
        health = health_text(await cockpit_on(trading, market, jobs).admin.health())
        assert "BTC/USDT 1h: last new candle not yet; <b>not traded</b>: order pp1x1b" in health
        for hours in (1, 2):
            market.at(start + timedelta(hours=hours))
            assert await trading.service.tick("1h") == 0  # BTC/USDT waits
        flattened = await trading.control.flatten()
        assert "pp1x1b" in flattened.problems[BTC]
        with pytest.raises(UserInputError, match="pp1x1b"):
            await trading.control.accept_holdings()
        with pytest.raises(UserInputError, match="pp1x1b"):
            await trading.control.stop(BTC)
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        assert len(await alerts_of(db, "order_unknown")) == 1
        assert await alerts_of(db, "reconciliation_drift") == []
        assert (await SqliteOrderRepository(db).require("pp1x1b")).status is OrderStatus.NEW


@pytest.mark.parametrize("outcome", ["filled", "never"])
async def test_order_settles_it_by_hand_and_the_pair_trades_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame, outcome: str
) -> None:
    """The way out: the admin says what the venue's website shows. Bad input is refused with
    the reason and changes nothing; then the order is booked (filled: the coins and their cost,
    as any fill) or closed (never), the pair ticks again, and a second /order is refused."""
    fake, start = await crashed_with_a_lost_buy(tmp_path, monkeypatch, btc_candles)
    ours = fake.orders[min(fake.orders)]
    price = ours.quote / ours.executed
    said = (
        ["pp1x1b", "filled", f"{ours.executed!r}", f"{price!r}"]
        if outcome == "filled"
        else ["pp1x1b", "never"]
    )
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, market, _):
        control = trading.control
        for bad, why in (
            (["pp1x1b", "sold"], "usage"),
            (["pp1x1b", "filled", "-1", "9"], "above 0"),
            (["pp1x1b", "filled", "x", "9"], "not a number"),
            (["pp1x1b", "filled", "nan", "9"], "not a number"),
            (["pp1x2b", "never"], "no order"),
            (["pp1x1b", "filled", "1", f"{price}"], "more than"),
        ):
            with pytest.raises(UserInputError, match=why):
                await control.settle_order(bad, "1001")
        assert (await trading.engine.executor.journal.get("pp1x1b")).status is OrderStatus.NEW
        assert "pp1x1b" in await control.order_preview(said)
        market.at(start + timedelta(minutes=30))  # the admin settles it later
        assert (await control.settle_order(said, "1001")).startswith("Done: ")
        order = await trading.engine.executor.journal.get("pp1x1b")
        position = trading.engine.portfolio.position(BTC)
        if outcome == "filled":
            assert (order.status, order.filled) == (OrderStatus.FILLED, ours.executed)
            assert position.amount == pytest.approx(ours.executed)
            [fill] = await SqliteFillRepository(trading.engine.executor.transactions).for_order(
                "pp1x1b"
            )
            assert fill.time == order.created_at == start  # the order's time, not /order's
        else:
            assert (order.status, position) == (OrderStatus.REJECTED, None)
        market.at(start + timedelta(hours=1))
        assert await trading.service.tick("1h") == 1  # BTC/USDT trades again
        with pytest.raises(UserInputError, match="settled already"):
            await control.settle_order(said, "1001")


async def test_order_is_an_admins_runs_only_after_a_confirm_and_bad_input_changes_nothing(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        assert "needs the admin role" in await chat.ask(VIEWER, "/order pp1x1b never")
        question = await chat.sent_back(ADMIN, "/order pp9x9b filled 1 2")
        assert "/order pp9x9b filled 1 2: nothing: no order 'pp9x9b'" in question.text
        before = len(chat.emulator.to(ADMIN))
        button = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        chat.emulator.press(ADMIN, question, button)
        result = await chat.emulator.reply(ADMIN, after=before)
        assert "no order 'pp9x9b'" in result.text
        usage = await chat.sent_back(ADMIN, "/order pp9x9b maybe")
        assert (
            "nothing: usage: /order ID venue VENUE_ORDER_ID | /order ID never | /order ID "
            "filled AMOUNT PRICE [FEE]"
        ) in usage.text
        audited = [(e.command, e.result) for e in await chat.audit.latest(20)]
        assert ("order", "refused: no order 'pp9x9b' in the journal") in audited


async def test_an_outage_on_a_venue_without_resting_stops_says_positions_are_not_protected(
    db: Database, btc_candles: pd.DataFrame
) -> None:
    """An outage stops the whole tick; on Coinbase no stop rests on the venue, so the alert
    must not say that open positions keep their stops."""
    async with connected(funded()) as (fake, exchange):
        clock = await with_run(db)
        engine = await engine_on(db, exchange, clock)
        btc = await SqlitePairRunRepository(db).latest_for(BTC)
        source = ReplaySource({BTC: btc_candles}, {BTC: "1h"})
        service = TradingService(
            engine=engine,
            source=source,
            clock=clock,
            runs=[btc],
            equity=SqliteEquityRepository(db),
            faults=strategy_faults(db, clock),
        )
        down = {"error": "unavailable"}
        fake.faults.append(Fault(ORDERS, 503, down, method="POST", after=True))
        fake.faults.append(Fault("/api/v3/brokerage/time", 503, down, times=99))
        with pytest.raises(ExchangeUnavailable):
            await engine.executor.execute(buy(500.0))
        clock.set(at_open(btc_candles, 200))
        assert await service.tick() == 0
        [alert] = await alerts_of(db, "exchange_error")
        assert "NOT protected" in alert
        assert "keep" not in alert


@pytest.mark.parametrize("readable_again", [False, True])
async def test_a_limit_entry_settled_by_hand_is_booked_once_and_its_pair_trades_again(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    btc_candles: pd.DataFrame,
    readable_again: bool,
) -> None:
    """Review i15 s17 H1. A limit entry is remembered as the run's pending entry before it is
    sent; its answer is lost behind a full window, and the admin settles it with /order. The
    run forgets the pending entry, and an order final in the journal is never looked up again:
    the pair ticks (its stops restored) whether the venue stays unreadable or becomes readable
    (then its fills would be booked a second time, and /stoppair would sell other coins)."""
    limit = dataclasses.replace(buy(500.0), limit_price=120_000.0, quote_amount=None)
    fake, start = await crashed_with_lost_orders(
        tmp_path,
        monkeypatch,
        btc_candles,
        [limit],
        {"pending_entry": "pp1x1b", "atr_distance": 500.0},
    )
    ours = fake.orders[min(fake.orders)]
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, market, _):
        control = trading.control
        assert "pp1x1b" in held_ids(trading.engine.executor, BTC)
        price = ours.quote / ours.executed
        await control.settle_order(["pp1x1b", "filled", f"{ours.executed!r}", f"{price!r}"], "1001")
        if readable_again:
            for order_id in [o for o in fake.orders if o != min(fake.orders)]:
                del fake.orders[order_id]
        acted = []
        for hours in (1, 2, 3):
            market.at(start + timedelta(hours=hours))
            acted.append(await trading.service.tick("1h"))
        assert acted == [1, 1, 1]
        position = trading.engine.portfolio.position(BTC)
        assert position is not None
        assert position.amount == pytest.approx(ours.executed)
        db = trading.engine.executor.transactions
        rows = await db.fetch_all("SELECT trade_id FROM fills WHERE client_order_id='pp1x1b'")
        assert [r[0] for r in rows] == ["by-hand-pp1x1b"]
        saved = await SqliteStateRepository(db).get(protection_key(BTC))
        assert saved == {"atr_distance": 500.0}  # no pending entry; its ATR stop distance kept
        assert await alerts_of(db, "exchange_error") == []


async def lost_pending_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> tuple[FakeCoinbase, datetime, int, float]:
    """The crash rig with the BTC/USDT run's pending limit entry pp1x1b lost, resting behind
    another bot's grid: the fake, when, the venue's order number and the entry's limit."""
    later = btc_candles.iloc[201:260]
    level = float(later["low"].min()) * 1.002  # reached within the next 2 days
    limit = dataclasses.replace(
        buy(500.0), limit_price=level, quote_amount=None, amount=round(500.0 / level, 5)
    )
    fake, start = await crashed_with_lost_orders(
        tmp_path,
        monkeypatch,
        btc_candles,
        [limit],
        {"pending_entry": "pp1x1b", "atr_distance": 500.0},
    )
    await another_bots_grid(fake)
    return fake, start, min(fake.orders), level


async def test_a_resting_limit_entry_is_read_by_the_venues_id_and_followed_not_closed_blind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17c H1. A limit entry below the market rests on Coinbase, its answer lost
    behind another bot's grid of 201 resting buys. ``never`` (as the admin sees it resting,
    unfilled) would close it in the journal while it lives on and fills later, unbooked: the
    alert recommends ``/order ID venue VENUE_ORDER_ID`` first, and the Confirm of ``never`` or
    ``filled`` for it warns plainly. Read by the venue's id (another order's id refused), it
    is journaled with that id and followed: the next candle's close cancels it and books what
    it did, so the journal and the books always agree with the venue."""
    fake, start, ours_id, level = await lost_pending_entry(tmp_path, monkeypatch, btc_candles)
    assert fake.orders[ours_id].status == "NEW"  # resting, nothing filled
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, market, _):
        control, executor = trading.control, trading.engine.executor
        db = executor.transactions
        assert held_ids(executor, BTC) == ["pp1x1b"]
        [alert] = await alerts_of(db, "order_unknown")
        assert alert.index("/order pp1x1b venue VENUE_ORDER_ID") < alert.index("pp1x1b never")
        for said in (["pp1x1b", "never"], ["pp1x1b", "filled", "0.001", f"{level!r}"]):
            assert "fill is NEVER booked" in await control.order_preview(said)
        with pytest.raises(UserInputError, match="not pp1x1b"):
            await control.settle_order(["pp1x1b", "venue", order_uuid(max(fake.orders))], "1001")
        assert held_ids(executor, BTC) == ["pp1x1b"]  # refused: nothing changed
        done = await control.settle_order(["pp1x1b", "venue", order_uuid(ours_id)], "1001")
        assert "open, 0 BTC filled" in done
        assert "followed by that id" in done
        journaled = await executor.journal.require("pp1x1b")
        assert (journaled.status, journaled.exchange_order_id) == (
            OrderStatus.OPEN,
            order_uuid(ours_id),
        )
        assert held_ids(executor, BTC) == []
        for index in range(201, 262):
            market.at(at_open(btc_candles, index) + timedelta(seconds=5))
            await trading.service.tick("1h")
        venue = fake.orders[ours_id]
        journaled = await executor.journal.require("pp1x1b")
        assert (venue.status, journaled.status) == ("CANCELED", OrderStatus.CANCELED)
        assert journaled.filled == pytest.approx(venue.executed)
        booked = sum(
            f.amount for f in await SqliteFillRepository(executor.transactions).for_order("pp1x1b")
        )
        assert booked == pytest.approx(venue.executed)


async def test_a_resting_order_read_by_the_venues_id_that_nothing_follows_is_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17c H1: a resting limit buy read by the venue's id that is not its run's
    pending entry (nothing would follow it, and a later fill would be unbooked) is cancelled on
    the venue at once and what it did booked; the journal agrees with the venue."""
    limit = dataclasses.replace(buy(500.0), limit_price=90_000.0, quote_amount=None, amount=0.005)
    fake, start = await crashed_with_lost_orders(tmp_path, monkeypatch, btc_candles, [limit])
    await another_bots_grid(fake)
    ours_id = min(fake.orders)
    assert fake.orders[ours_id].status == "NEW"  # resting far below the market
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, _, _):
        executor = trading.engine.executor
        done = await trading.control.settle_order(["pp1x1b", "venue", order_uuid(ours_id)], "1001")
        assert "canceled, 0 BTC filled and booked" in done
        assert fake.orders[ours_id].status == "CANCELED"
        assert (await executor.journal.require("pp1x1b")).status is OrderStatus.CANCELED
        assert held_ids(executor, BTC) == []
        assert trading.engine.portfolio.cash == 5000.0


async def test_a_resting_order_whose_cancel_fails_stays_held_until_the_venue_ends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17e H1: a resting limit buy read by the venue's id that nothing follows is
    cancelled FIRST. The cancel meets a 503 (an outage), then the venue refuses it (200,
    success false): each time /order refuses with the truth (it still rests, the pair stays
    held), nothing is journaled and the order stays held, never claimed followed. It fills
    on the venue meanwhile: the next /order reads it filled and books exactly that."""
    limit = dataclasses.replace(buy(500.0), limit_price=90_000.0, quote_amount=None, amount=0.005)
    fake, start = await crashed_with_lost_orders(tmp_path, monkeypatch, btc_candles, [limit])
    await another_bots_grid(fake)
    ours_id = min(fake.orders)
    refusal = {
        "results": [
            {
                "success": False,
                "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON",
                "order_id": order_uuid(ours_id),
            }
        ]
    }
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, _, _):
        control, executor = trading.control, trading.engine.executor
        said = ["pp1x1b", "venue", order_uuid(ours_id)]
        for fault in (
            Fault(CANCEL, 503, {"error": "unavailable"}, times=50),
            Fault(CANCEL, 200, refusal, times=50),
        ):
            fake.faults.append(fault)
            with pytest.raises(UserInputError, match="could not cancel it on the venue") as no:
                await control.settle_order(said, "1001")
            fake.faults.clear()
            assert "it still rests; BTC/USDT stays held" in str(no.value)
            assert "followed" not in str(no.value)
            journaled = await executor.journal.require("pp1x1b")
            assert (journaled.status, journaled.exchange_order_id) == (OrderStatus.NEW, None)
            assert held_ids(executor, BTC) == ["pp1x1b"]
            assert fake.orders[ours_id].status == "NEW"  # still resting on the venue
        fake.fill_limit(fake.orders[ours_id])  # the price came down to it
        venue = fake.orders[ours_id]
        assert venue.status == "FILLED"
        await executor.settle_unknown()  # a tick's look-up: still behind the grid, still held
        assert held_ids(executor, BTC) == ["pp1x1b"]
        done = await control.settle_order(said, "1001")
        assert f"filled, {venue.executed:.8g} BTC filled and booked" in done
        booked = sum(
            f.amount for f in await SqliteFillRepository(executor.transactions).for_order("pp1x1b")
        )
        assert booked == pytest.approx(venue.executed)
        assert trading.engine.portfolio.position(BTC).amount == pytest.approx(venue.executed)
        assert held_ids(executor, BTC) == []


async def test_a_lost_resting_stop_read_by_the_venues_id_is_adopted_as_the_stop_not_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17e M1: the lost resting order is the one the position's protection state
    names as its resting stop (bot/execution/resting_stops.py saves it before sending; on Bybit and
    Kraken a stop whose answer is lost is held like this). /order ID venue V keeps it resting
    (never cancelled: the position needs it), journals the venue's id, says so, and the
    resting stops follow it: what it does on the venue is booked on the next candle. The
    code path is venue-agnostic: stood up on Coinbase, the stop a resting limit order."""
    level = 90_000.0
    limit = dataclasses.replace(buy(500.0), limit_price=level, quote_amount=None, amount=0.005)
    fake, start = await crashed_with_lost_orders(
        tmp_path,
        monkeypatch,
        btc_candles,
        [limit],
        {"resting_stop": "pp1x1b", "resting_level": level, "entry": 100_000.0},
    )
    await another_bots_grid(fake)
    ours_id = min(fake.orders)
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, market, _):
        executor = trading.engine.executor
        done = await trading.control.settle_order(["pp1x1b", "venue", order_uuid(ours_id)], "1001")
        assert "open, 0 BTC filled and booked; it is the position's stop at 90000" in done
        assert "kept (not cancelled)" in done
        assert fake.orders[ours_id].status == "NEW"  # still resting on the venue
        journaled = await executor.journal.require("pp1x1b")
        assert (journaled.status, journaled.exchange_order_id) == (
            OrderStatus.OPEN,
            order_uuid(ours_id),
        )
        assert held_ids(executor, BTC) == []
        assert await trading.engine.resting_stop(BTC) == ("pp1x1b", level)
        fake.fill_limit(fake.orders[ours_id])  # the venue fills it
        market.at(at_open(btc_candles, 201) + timedelta(seconds=5))
        await trading.service.tick("1h")
        booked = sum(
            f.amount for f in await SqliteFillRepository(executor.transactions).for_order("pp1x1b")
        )
        assert booked > 0
        assert booked == pytest.approx(fake.orders[ours_id].executed)


async def test_one_attempt_is_the_asking_tasks_only_another_chats_read_keeps_its_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17e L1: /stoppair looks its pair's orders up with one attempt (the admin
    waits) while the venue is slow; another chat's /balance served meanwhile (its own task)
    meets one passing 503 and still retries: it reads its balances, as it would alone."""
    fake, start = await crashed_with_lost_orders(tmp_path, monkeypatch, btc_candles, [buy(500.0)])
    async with live_stack(tmp_path, fake, start, venue="coinbase", attempts=3) as (trading, _, _):
        exchange = trading.engine.executor.exchange
        fake.faults.append(Fault("/api/v3/brokerage/orders/historical/batch", delay=0.5, times=999))

        async def stoppair() -> str:
            try:
                await trading.control.stop(BTC)
            except BotError as error:
                return str(error)
            return "stopped"

        task = asyncio.create_task(stoppair())
        await asyncio.sleep(0.2)  # /stoppair awaits its look-up, within one_attempt()
        fake.faults.append(Fault("/api/v3/brokerage/accounts", 503, {"error": "x"}))
        balances = await asyncio.create_task(exchange.fetch_balances())  # another chat's read
        assert balances["USDT"] > 0
        assert not task.done()  # it was read while /stoppair waited
        fake.faults.clear()
        await task  # stopped, or refused as the look-up finds: not this test's matter


async def test_under_the_kill_switch_a_pending_entry_read_by_the_venues_id_is_cancelled_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17e L4: /flatten skips the blocked pair, so its pending limit entry is not
    cancelled. /order ID venue V then finds it resting: halted, it is cancelled at once (as
    the kill switch would have), not left buying for up to a candle; the run forgets it."""
    fake, start, ours_id, _ = await lost_pending_entry(tmp_path, monkeypatch, btc_candles)
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, _, _):
        control, executor = trading.control, trading.engine.executor
        assert BTC in (await control.flatten()).problems  # blocked: its entry left resting
        assert fake.orders[ours_id].status == "NEW"
        done = await control.settle_order(["pp1x1b", "venue", order_uuid(ours_id)], "1001")
        assert "canceled, 0 BTC filled and booked" in done
        assert "followed" not in done
        assert "pairpilot is halted" in done
        assert fake.orders[ours_id].status == "CANCELED"
        assert (await executor.journal.require("pp1x1b")).status is OrderStatus.CANCELED
        assert await trading.engine.pending_entry(BTC) is None
        assert held_ids(executor, BTC) == []


async def test_a_lost_market_buy_read_by_the_venues_id_is_booked_as_the_venue_filled_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17c H1, the common case: the market buy read by the id the venue's website
    shows is booked with the venue's own numbers (its fills and fee, no typing), its pair
    trades again; an id the venue does not have is refused and changes nothing."""
    fake, start = await crashed_with_a_lost_buy(tmp_path, monkeypatch, btc_candles)
    ours_id = min(fake.orders)
    ours = fake.orders[ours_id]
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, market, _):
        control, executor = trading.control, trading.engine.executor
        assert "may still rest" not in await control.order_preview(["pp1x1b", "never"])
        with pytest.raises(UserInputError, match="coinbase could not read order 'nope'"):
            await control.settle_order(["pp1x1b", "venue", "nope"], "1001")
        assert held_ids(executor, BTC) == ["pp1x1b"]
        done = await control.settle_order(["pp1x1b", "venue", order_uuid(ours_id)], "1001")
        assert f"filled, {ours.executed:.8g} BTC filled and booked; BTC/USDT trades again" in done
        journaled = await executor.journal.require("pp1x1b")
        assert (journaled.status, journaled.filled) == (OrderStatus.FILLED, ours.executed)
        fee = sum(float(fill["commission"]) for fill in ours.fills)
        assert trading.engine.portfolio.cash == pytest.approx(5000.0 - ours.quote - fee)
        market.at(start + timedelta(hours=1))
        assert await trading.service.tick("1h") == 1


@pytest.mark.parametrize("typo", ["price x10", "price /10", "fee"])
async def test_order_refuses_a_price_far_from_the_market_or_a_fee_too_high(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame, typo: str
) -> None:
    """Review i15 s17 H2: a PRICE one digit off (the books' cash then far from the venue's,
    the position's stops at the typo) or a FEE above 2% of the fill's value is refused with
    the reason, and nothing changes; the Confirm prompt shows the fill's value, its fee and
    what the books' cash becomes."""
    fake, start = await crashed_with_a_lost_buy(tmp_path, monkeypatch, btc_candles)
    ours = fake.orders[min(fake.orders)]
    price = ours.quote / ours.executed
    said = {
        "price x10": [f"{ours.executed!r}", f"{price * 10!r}"],
        "price /10": [f"{ours.executed!r}", f"{price / 10!r}"],
        "fee": [f"{ours.executed!r}", f"{price!r}", f"{ours.quote * 0.03!r}"],
    }[typo]
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, _, _):
        control, executor = trading.control, trading.engine.executor
        cash = trading.engine.portfolio.cash
        assert cash == 5000.0  # the books' first cash: the lost buy is not booked yet
        why = "FEE" if typo == "fee" else "PRICE"
        with pytest.raises(UserInputError, match=f"{why} .* a typo"):
            await control.order_preview(["pp1x1b", "filled", *said])
        with pytest.raises(UserInputError, match=f"{why} .* a typo"):
            await control.settle_order(["pp1x1b", "filled", *said], "1001")
        assert (await executor.journal.get("pp1x1b")).status is OrderStatus.NEW
        assert (trading.engine.portfolio.cash, trading.engine.portfolio.position(BTC)) == (
            cash,
            None,
        )
        assert held_ids(executor, BTC) == ["pp1x1b"]
        fee = ours.quote * 0.006
        preview = await control.order_preview(
            ["pp1x1b", "filled", f"{ours.executed!r}", f"{price!r}", f"{fee!r}"]
        )
        after = 5000.0 - ours.quote - fee
        for words in (
            f"worth {ours.quote:,.2f} USDT",
            f"fee {fee:.8g} USDT",
            f"cash goes from 5,000.00 to {after:,.2f}",
        ):
            assert words in preview


async def test_order_refuses_a_buy_worth_more_than_the_order_could_spend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17c M2. A market buy sized at 500 USDT (journaled 0.005 at 100,000; the
    venue filled 0.00465 at 107,402). AMOUNT (up to 1.2 x 0.005) and PRICE (20% of the last
    price) pass one by one, but 0.006 at 128,000, another order's line read off the website,
    is worth 768 USDT: refused, nothing changed; the true fill is taken."""
    fake, start = await crashed_with_a_lost_buy(tmp_path, monkeypatch, btc_candles)
    ours = fake.orders[min(fake.orders)]
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, _, _):
        control, executor = trading.control, trading.engine.executor
        with pytest.raises(
            UserInputError,
            match="worth 768.00 USDT, more than order pp1x1b "
            r"could spend \(500.00\)",
        ):
            await control.settle_order(["pp1x1b", "filled", "0.006", "128000"], "1001")
        assert (await executor.journal.require("pp1x1b")).status is OrderStatus.NEW
        assert trading.engine.portfolio.cash == 5000.0
        price = ours.quote / ours.executed
        fee = ours.quote * 0.006
        await control.settle_order(
            ["pp1x1b", "filled", f"{ours.executed!r}", f"{price!r}", f"{fee!r}"], "1001"
        )
        assert trading.engine.portfolio.cash == pytest.approx(5000.0 - ours.quote - fee)


@pytest.mark.parametrize("who", ["/stoppair", "a tick"])
async def test_a_held_order_readable_again_is_seen_soon_and_at_once_by_stoppair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame, who: str
) -> None:
    """Review i15 s17c M3. After a day of failed look-ups the venue becomes readable again
    (the other bot's orders gone). /stoppair looks the pair's held order up at once, whatever
    its back-off (it is booked and the pair stopped); a tick sees it within the longest wait,
    30 minutes (not 4 h, while the pair is not protected)."""
    fake, start = await crashed_with_a_lost_buy(tmp_path, monkeypatch, btc_candles)
    ours = min(fake.orders)
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, market, _):
        executor, control = trading.engine.executor, trading.control
        for hours in range(1, 25):  # a day of hourly ticks, the look-up failing when due
            market.at(start + timedelta(hours=hours))
            await trading.service.tick("1h")
        assert held_ids(executor, BTC) == ["pp1x1b"]
        for order_id in [o for o in fake.orders if o != ours]:
            del fake.orders[order_id]
        if who == "/stoppair":
            market.at(start + timedelta(hours=24, minutes=1))
            stopped = await control.stop(BTC)
            assert stopped.state is RunState.STOPPED
            assert trading.engine.portfolio.position(BTC) is None  # booked, then sold
        else:
            market.at(start + timedelta(hours=24, minutes=31))
            await trading.service.tick("1h")
        assert held_ids(executor, BTC) == []
        assert (await executor.journal.require("pp1x1b")).status is OrderStatus.FILLED


async def test_stoppair_in_an_outage_looks_up_its_pairs_orders_once_and_refuses_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17c M4. Three lost answers, then the venue's requests time out (0.3 s
    client timeout, 5 attempts: the production default of CcxtExchange.create). /stoppair
    makes one attempt, and its pair's first look-up that fails is the refusal: the admin's
    chat and the tick lock are not held for orders x attempts x timeout."""
    fake, start = await crashed_with_lost_orders(tmp_path, monkeypatch, btc_candles, [])
    async with live_stack(
        tmp_path, fake, start, venue="coinbase", attempts=5, client={"timeout": 300}
    ) as (trading, _, _):
        executor = trading.engine.executor
        for coid in ("pp1x3b", "pp1x4b", "pp1x5b"):
            fake.faults.append(
                Fault(ORDERS, 503, {"error": "unavailable"}, method="POST", after=True)
            )
            fake.faults.append(Fault(BATCH, 503, {"error": "unavailable"}, times=50))
            with pytest.raises(ExchangeUnavailable):
                await executor.execute(dataclasses.replace(buy(100.0, coid), created_at=start))
            fake.faults.clear()
        fake.faults.append(Fault("/api/v3/brokerage/time", delay=0.6, times=999))
        began = time.monotonic()
        with pytest.raises(UserInputError, match="BTC/USDT is not stopped"):
            await trading.control.stop(BTC)
        took = time.monotonic() - began
        fake.faults.clear()
        assert took < 3 * 0.3 * 2, f"/stoppair held the chat and the tick lock {took:.1f} s"


@pytest.mark.parametrize("way", ["/order after flatten", "read during flatten"])
async def test_after_flatten_the_settled_pair_is_said_held_not_trading_and_flatten_sells_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame, way: str
) -> None:
    """Review i15 s17c M1 + L2. /flatten halts and leaves the blocked pair. When the order is
    then settled (by /order, or read by the kill switch's own look-up) no message says the
    pair "trades again" while everything is halted: /order's Done says plainly that the
    position is held and that /flatten again sells it, which it does."""
    fake, start = await crashed_with_a_lost_buy(tmp_path, monkeypatch, btc_candles)
    ours_id = min(fake.orders)
    ours = fake.orders[ours_id]
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, market, _):
        control = trading.control
        db = trading.engine.executor.transactions
        if way == "read during flatten":
            for order_id in [o for o in fake.orders if o != ours_id]:
                del fake.orders[order_id]
        report = await control.flatten()
        if way == "/order after flatten":
            assert BTC in report.problems
            said = ["pp1x1b", "filled", f"{ours.executed!r}", f"{ours.quote / ours.executed!r}"]
            done = await control.settle_order(said, "1001")
            assert "pairpilot is halted (kill switch (flatten))" in done
            assert done.endswith("NOT sold: send /flatten again to sell it.")
            assert "trades again" not in done
            market.at(start + timedelta(hours=1))
            await trading.service.tick("1h")
            assert trading.engine.portfolio.position(BTC) is not None  # held, as said
            assert (await control.flatten()).closed == {BTC: pytest.approx(ours.executed)}
        else:
            assert report.closed == {BTC: pytest.approx(ours.executed)}
            [clear] = [t for t in await alerts_of(db, "order_unknown") if t.startswith("All")]
            assert "trades again" not in clear
        assert trading.engine.portfolio.position(BTC) is None


async def test_a_passing_error_during_flatten_keeps_the_pair_blocked_and_stoppair_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17 M1: the kill switch looks the order up again and meets an ordinary
    outage (503s on the list reads). The pair stays blocked (only an order final in the
    journal unblocks it), /order still takes the order, and /stoppair is refused (a run
    stopped now would own the coins /order books later, and nothing would tick them)."""
    fake, start = await crashed_with_a_lost_buy(tmp_path, monkeypatch, btc_candles)
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, market, _):
        executor, control = trading.engine.executor, trading.control
        market.at(start + timedelta(hours=6))  # any back-off is over: the look-up runs
        fake.faults.append(Fault(BATCH, 503, {"error": "unavailable"}, times=40))
        report = await control.flatten()
        assert "pp1x1b" in report.problems[BTC]
        assert held_ids(executor, BTC) == ["pp1x1b"]
        assert "pp1x1b" in await control.order_preview(["pp1x1b", "never"])
        with pytest.raises(UserInputError, match="pp1x1b"):
            await control.stop(BTC)
        fake.faults.clear()
        with pytest.raises(UserInputError, match="pp1x1b"):
            await control.stop(BTC)
        assert [run.pair for run in trading.service.runs()] == [BTC]


async def test_every_unknown_order_of_a_pair_is_held_until_each_is_settled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17 M3: two lost buys on BTC/USDT, both unknown. Both are alerted and held;
    /order takes either; settling one leaves the pair blocked (/health names the other,
    /stoppair refused) until the other is settled too."""
    two = [buy(200.0, "pp1x1b"), buy(200.0, "pp1x2b")]
    fake, start = await crashed_with_lost_orders(tmp_path, monkeypatch, btc_candles, two)
    first, second = (fake.orders[i] for i in sorted(fake.orders)[:2])
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, market, jobs):
        executor, control = trading.engine.executor, trading.control
        db = executor.transactions
        assert held_ids(executor, BTC) == ["pp1x1b", "pp1x2b"]
        assert len(await alerts_of(db, "order_unknown")) == 2
        for coid in ("pp1x1b", "pp1x2b"):
            assert coid in await control.order_preview([coid, "never"])
        price = second.quote / second.executed
        await control.settle_order(
            ["pp1x2b", "filled", f"{second.executed!r}", f"{price!r}"], "1001"
        )
        assert held_ids(executor, BTC) == ["pp1x1b"]
        health = health_text(await cockpit_on(trading, market, jobs).admin.health())
        assert "<b>not traded</b>: order pp1x1b" in health
        with pytest.raises(UserInputError, match="pp1x1b"):
            await control.stop(BTC)
        market.at(start + timedelta(hours=1))
        assert await trading.service.tick("1h") == 0  # still waits on pp1x1b
        price = first.quote / first.executed
        await control.settle_order(
            ["pp1x1b", "filled", f"{first.executed!r}", f"{price!r}"], "1001"
        )
        assert held_ids(executor, BTC) == []
        market.at(start + timedelta(hours=2))
        assert await trading.service.tick("1h") == 1
        position = trading.engine.portfolio.position(BTC)
        assert position.amount == pytest.approx(first.executed + second.executed)


async def test_a_held_order_is_looked_up_again_with_back_off_and_its_failure_holds_only_its_pair(
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    btc_candles: pd.DataFrame,
    eth_candles: pd.DataFrame,
) -> None:
    """Review i15 s17 M2: a held order's look-up reads a full window of list pages (50 and
    more requests on Coinbase). It is not repeated on every tick but after a growing wait; and
    when it fails (a rate limit those very reads provoke), only its pair waits: ETH/USDT still
    ticks, and no generic exchange-trouble alert goes out."""
    async with stuck(db, monkeypatch) as (fake, exchange, clock):
        engine = await engine_on(db, exchange, clock)
        runs = SqlitePairRunRepository(db)
        eth = await runs.add(
            pair=ETH,
            strategy="ema_cross",
            timeframe="1h",
            params={},
            capital_share=0.5,
            now=clock.now(),
        )
        btc = await runs.latest_for(BTC)
        source = ReplaySource({BTC: btc_candles, ETH: eth_candles}, {BTC: "1h", ETH: "1h"})
        service = TradingService(
            engine=engine,
            source=source,
            clock=clock,
            runs=[btc, eth],
            equity=SqliteEquityRepository(db),
            faults=strategy_faults(db, clock),
        )
        clock.set(at_open(btc_candles, 200))
        assert await service.tick() == 1  # found unknown: BTC/USDT held, ETH/USDT ticks
        before = len(fake.requests)
        for minutes in (1, 5, 9):  # within the first wait: the window is not read again
            clock.set(at_open(btc_candles, 200) + timedelta(minutes=minutes))
            await service.tick()
        assert [path for path, _ in fake.requests[before:] if path == BATCH] == []
        clock.set(at_open(btc_candles, 201))  # the wait is over: read again, rate limited
        fake.faults.append(Fault(BATCH, 429, {"error": "rate_limit_exceeded"}, times=3))
        assert await service.tick() == 1  # ETH/USDT ticks all the same
        fake.faults.clear()
        assert any(path == BATCH for path, _ in fake.requests[before:])
        assert held_ids(engine.executor, BTC) == ["pp1x1b"]
        assert await alerts_of(db, "exchange_error") == []
        before = len(fake.requests)  # the wait doubled: 20 minutes now
        clock.set(at_open(btc_candles, 201) + timedelta(minutes=15))
        await service.tick()
        assert [path for path, _ in fake.requests[before:] if path == BATCH] == []


async def test_the_look_ups_of_an_admins_command_share_one_bound_not_one_per_pair(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review i15 s17e L3: /flatten in an outage looks up each pair's lost order, each look-up
    hanging. They share ``NOW_BOUND`` in all (1 s here), not one each: the command goes on
    with the healthy pairs in about that time, whatever the number of blocked pairs; each
    pair not told is named with why (the one not reached: "not looked up")."""
    import bot.execution.executor as execution

    monkeypatch.setattr(execution, "NOW_BOUND", 1.0)
    async with stuck(db, monkeypatch) as (fake, exchange, clock):
        eth = dataclasses.replace(buy(500.0, "pp2x1b"), pair=ETH, created_at=clock.now())
        await SqliteOrderRepository(db).add(eth)
        executor = executor_on(db, exchange, clock, Portfolio(5000.0))
        fake.faults.append(Fault(BATCH, delay=3.0, times=999))  # every list hangs
        problems: dict[str, str] = {}
        began = time.monotonic()
        await executor.settle_unknown(problems, now=True)
        waited = time.monotonic() - began
        fake.faults.clear()
        assert waited < 1.7  # before: 1 s per pair, 2 s and more
        assert set(problems) == {BTC, ETH}
        assert sum("not looked up" in why for why in problems.values()) == 1
        assert all(o.status is OrderStatus.NEW for o in await executor.journal.not_final())


@pytest.mark.parametrize("found_by", ["tick", "restart"])
async def test_a_block_that_clears_by_itself_tells_the_admins_all_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame, found_by: str
) -> None:
    """Review i15 s17 L2: the venue's lists shrink again (the other bot's orders purged): the
    order is found and booked, the pair trades again, and the admins, told CRITICAL "not
    traded until settled, /order ...", get an all-clear naming the order and what was booked;
    also when it is found by the start-up reconciliation after a restart."""
    fake, start = await crashed_with_a_lost_buy(tmp_path, monkeypatch, btc_candles)
    ours = min(fake.orders)
    executed = fake.orders[ours].executed

    def purge() -> None:
        for order_id in [o for o in fake.orders if o != ours]:
            del fake.orders[order_id]

    if found_by == "restart":
        async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, _, _):
            assert held_ids(trading.engine.executor, BTC) == ["pp1x1b"]
        purge()
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, market, _):
        executor = trading.engine.executor
        if found_by == "tick":
            assert held_ids(executor, BTC) == ["pp1x1b"]
            purge()
        market.at(start + timedelta(hours=1))
        assert await trading.service.tick("1h") == 1
        assert (await executor.journal.get("pp1x1b")).status is OrderStatus.FILLED
        db = executor.transactions
        alert, clear = await alerts_of(db, "order_unknown")
        assert "/order pp1x1b never" in alert
        for words in (
            "All clear: order pp1x1b",
            f"{executed:.8g} BTC",
            "BTC/USDT no longer waits on an order",
        ):
            assert words in clear
        market.at(start + timedelta(hours=2))
        await trading.service.tick("1h")
        assert len(await alerts_of(db, "order_unknown")) == 2  # once


async def test_order_takes_a_price_near_the_orders_journaled_price_after_the_market_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """The journal keeps the price an order was sent or expected at (migration 0015): a fill
    settled long after, the market since moved more than 20%, is checked against it too, so a
    true PRICE is not refused as a typo; a price far from both is."""
    fake, start = await crashed_with_a_lost_buy(tmp_path, monkeypatch, btc_candles)
    ours = fake.orders[min(fake.orders)]
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, _, _):
        control = trading.control
        order = await trading.engine.executor.journal.get("pp1x1b")
        assert order.reference_price == 100_000.0  # the intent's: the market is at ~107,400
        far_from_the_market = 100_000.0 * 0.85
        assert "at 85000" in await control.order_preview(
            ["pp1x1b", "filled", f"{ours.executed!r}", f"{far_from_the_market!r}"]
        )
        with pytest.raises(UserInputError, match="price when journaled 100000: a typo"):
            await control.order_preview(["pp1x1b", "filled", f"{ours.executed!r}", "70000"])


async def test_stoppair_right_after_a_lost_buy_looks_it_up_and_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17 M1 (the stale-cache variant): a buy's answer is lost behind a full
    window and /stoppair comes before the next tick has held the pair. /stoppair looks the
    pair's orders up itself, under the tick lock: refused, the run not stopped."""
    fake, start = await crashed_with_lost_orders(tmp_path, monkeypatch, btc_candles, [])
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, _, _):
        executor = trading.engine.executor
        assert held_ids(executor, BTC) == []
        fake.faults.append(Fault(ORDERS, 503, {"error": "unavailable"}, method="POST", after=True))
        fake.faults.append(Fault(BATCH, 503, {"error": "unavailable"}, times=50))
        with pytest.raises(ExchangeUnavailable):
            await executor.execute(dataclasses.replace(buy(500.0, "pp1x3b"), created_at=start))
        fake.faults.clear()
        with pytest.raises(UserInputError, match="pp1x3b"):
            await trading.control.stop(BTC)
        assert [run.pair for run in trading.service.runs()] == [BTC]
        assert held_ids(executor, BTC) == ["pp1x3b"]


async def test_a_losing_sale_settled_by_hand_counts_toward_the_cooldown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """Review i15 s17 L1 (the day its PnL counts toward): a lost exit settled with /order
    closes its trade, and a loss counts toward the run's cooldown as a tick's sale does."""
    fake, start = await crashed_with_a_lost_buy(tmp_path, monkeypatch, btc_candles)
    ours = fake.orders[min(fake.orders)]
    price = ours.quote / ours.executed
    async with live_stack(tmp_path, fake, start, venue="coinbase") as (trading, _, _):
        executor, control = trading.engine.executor, trading.control
        await control.settle_order(["pp1x1b", "filled", f"{ours.executed!r}", f"{price!r}"], "1001")
        fake.faults.append(Fault(ORDERS, 503, {"error": "unavailable"}, method="POST", after=True))
        fake.faults.append(Fault(BATCH, 503, {"error": "unavailable"}, times=50))
        sell = OrderIntent("pp1x2s", 1, BTC, Side.SELL, ours.executed, price, start)
        with pytest.raises(ExchangeUnavailable):
            await executor.execute(sell)
        fake.faults.clear()
        await executor.settle_unknown()
        assert held_ids(executor, BTC) == ["pp1x2s"]
        await control.settle_order(
            ["pp1x2s", "filled", f"{ours.executed!r}", f"{price * 0.99!r}", "0.5"], "1001"
        )
        assert trading.engine.portfolio.position(BTC) is None
        db = executor.transactions
        run = await SqlitePairRunRepository(db).latest_for(BTC)
        assert (await SqliteStateRepository(db).get(f"cooldown:{run.id}"))["losses"] == 1

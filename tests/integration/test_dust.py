"""Dust conversion (/dust): Binance's Dust Transfer through unmodified ccxt against the fake, and
the whole command through the real python-telegram-bot client on the Bot API emulator.

Dust is made the way Binance makes it: fees taken from the coin bought leave a remainder under
the exchange's minimum after the exit (EMA 12/26 on the BTC/USDT sample enters at 05:00 and
exits at 08:00 on 2025-06-27).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pandas as pd
import pytest

from bot.app.bootstrap import Trading
from bot.app.chat_root import build_cockpit
from bot.chat.cockpit import Cockpit
from bot.chat.venue import Venue
from bot.core.domain import OrderIntent, Side, to_ms
from bot.core.errors import BotError, UserInputError
from bot.core.number_text import amount_text
from bot.exchange.venues import profile_for
from bot.market.history import ExchangeHistory
from bot.ops.scheduler import Jobs
from bot.portfolio.outside import OUTSIDE_KEY
from bot.portfolio.performance import round_trips
from bot.trading.dust import DustDesk
from bot.trading.dust_conversions import PENDING_KEY
from handlers.frontend import TelegramFrontend
from storage.alerts import SqliteAlertRepository
from storage.candles import SqliteCandleRepository
from storage.db import Database, open_database
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import SqliteStateRepository
from tests.doubles.fake_exchange import FakeBinance, Fault, binance_urls, serve
from tests.doubles.telegram_emulator import Sent, TelegramEmulator, running
from tests.rigs.chat_rig import ADMIN, VIEWER, chat_stack
from tests.rigs.invariants import Invariants
from tests.rigs.live_rig import HOUR, PAIR, Market, funded_fake, hourly, live_stack

START = datetime(2025, 6, 27, 4, 30, tzinfo=UTC)
ENTRY_TICK = datetime(2025, 6, 27, 5, 0, 5, tzinfo=UTC)
EXIT_TICK = datetime(2025, 6, 27, 8, 0, 5, tzinfo=UTC)
BNB_PRICE = 600.0
DUST_PATH = "/sapi/v1/asset/dust"
USERS = {ADMIN: "admin", VIEWER: "viewer"}
HOUR_MS = 3_600_000


def dusty_fake(candles: pd.DataFrame) -> FakeBinance:
    fake = funded_fake(candles)
    fake.fee_asset = "received"  # Binance's default: the fee is taken from the coins bought
    fake.prices["BNBUSDT"] = BNB_PRICE
    return fake


@dataclass
class LiveChat:
    emulator: TelegramEmulator
    trading: Trading
    cockpit: Cockpit
    market: Market
    db: Database

    async def ask(self, user: int, text: str) -> Sent:
        before = len(self.emulator.to(user))
        self.emulator.say(user, text)
        return await self.emulator.reply(user, after=before)

    async def confirm(self, question: Sent) -> Sent:
        """Press Confirm; the result's own message."""
        before = len(self.emulator.to(ADMIN))
        self.emulator.press(
            ADMIN, question, question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        )
        return await self.emulator.reply(ADMIN, after=before)


@asynccontextmanager
async def dusty_stack(
    tmp_path: Path, fake: FakeBinance, **options: Any
) -> AsyncIterator[tuple[Trading, Market, Jobs]]:
    """The live stack on the fake (``options``: live_stack's), traded until only dust is
    left, half an hour after the exit."""
    async with live_stack(tmp_path, fake, START, **options) as (trading, market, jobs):
        await hourly(trading, market, ENTRY_TICK, EXIT_TICK + HOUR)
        market.at(EXIT_TICK + HOUR / 2)  # the dust is converted a while after the exit
        yield trading, market, jobs


def cockpit_on(trading: Trading, market: Market, jobs: Jobs) -> Cockpit:
    """The cockpit the app builds, on the live stack's own connection."""
    db = trading.engine.executor.transactions
    return build_cockpit(
        db,
        Venue("live", "binance", "USDT"),
        trading.service,
        trading.engine,
        trading.control,
        ExchangeHistory(trading.engine.exchange, SqliteCandleRepository(db)),
        jobs,
        market.clock,
    )


@asynccontextmanager
async def live_chat(tmp_path: Path, fake: FakeBinance) -> AsyncIterator[LiveChat]:
    """The live stack on the fake, traded until only dust is left, with the chat on it."""
    emulator = TelegramEmulator()
    async with (
        running(emulator) as telegram,
        dusty_stack(tmp_path, fake) as (trading, market, jobs),
    ):
        db = trading.engine.executor.transactions
        cockpit = cockpit_on(trading, market, jobs)
        frontend = TelegramFrontend(
            token=emulator.token,
            api_base_url=telegram,
            users=USERS,
            cockpit=cockpit,
            outbox=trading.outbox,
            alerts=SqliteAlertRepository(db),
            clock=market.clock,
            poll_timeout=1,
        )
        frontend.start()
        await frontend.running.wait()
        try:
            yield LiveChat(emulator, trading, cockpit, market, db)
        finally:
            await frontend.stop()
            cockpit.charts.close()


def client_on(base: str, secret: str = "test-secret") -> ccxt_async.binance:
    return ccxt_async.binance(
        {
            "apiKey": "test-key",
            "secret": secret,
            "enableRateLimit": False,
            "urls": {"api": binance_urls(base)},
        }
    )


async def test_binance_dust_transfer_through_unmodified_ccxt() -> None:
    now = int(EXIT_TICK.timestamp() * 1000)
    fake = FakeBinance(
        now_ms=now, balances={"USDT": 100.0, "BTC": 0.000009, "ETH": 0.5, "LTC": 0.004, "BNB": 0.1}
    )
    fake.prices.update(
        {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "LTCUSDT": 80.0, "BNBUSDT": BNB_PRICE}
    )
    async with serve(fake) as base:
        client = client_on(base)
        try:
            listed = await client.sapiPostAssetDustBtc()
            # Worth under 0.001 BTC: BTC (0.54 USDT) and LTC (0.32); not USDT (100), ETH, BNB.
            assert [row["asset"] for row in listed["details"]] == ["BTC", "LTC"]
            assert listed["dribbletPercentage"] == "0.02"
            # ccxt maps Binance's -50xx codes in its 'spot' table, read only for api.binance.com
            # URLs: at a rewritten URL they arrive as plain ExchangeError (the adapter reads
            # them in that table: test_a_dust_refusal_is_a_refusal_at_any_url).
            with pytest.raises(ccxt.ExchangeError, match="-5004"):  # worth too much
                await client.sapiPostAssetDust({"asset": ["BTC", "ETH"]})
            with pytest.raises(ccxt.ExchangeError, match="-5003"):  # not held
                await client.sapiPostAssetDust({"asset": ["XRP"]})
            with pytest.raises(ccxt.AuthenticationError):  # signed: a wrong secret is refused
                await client_on(base, "wrong").sapiPostAssetDust({"asset": ["BTC"]})
            assert fake.balances["BTC"] == 0.000009  # nothing moved, all or nothing
            reply = await client.sapiPostAssetDust({"asset": ["BTC", "LTC"]})
            btc, ltc = reply["transferResult"]
            assert (btc["fromAsset"], btc["amount"]) == ("BTC", "0.00000900")
            assert float(btc["transferedAmount"]) == pytest.approx(0.54 / BNB_PRICE)
            assert float(btc["serviceChargeAmount"]) == pytest.approx(0.02 * 0.54 / BNB_PRICE)
            assert btc["tranId"] == ltc["tranId"]
            assert "BTC" not in fake.balances
            assert "LTC" not in fake.balances
            assert fake.balances["BNB"] == pytest.approx(0.1 + 0.98 * (0.54 + 0.32) / BNB_PRICE)
            fake.balances["BTC"] = 0.000005
            with pytest.raises(ccxt.ExchangeError, match="-5006"):  # once every 6 hours
                await client.sapiPostAssetDust({"asset": ["BTC"]})
            log = await client.sapiGetAssetDribblet({"startTime": now - 1})
            assert log["total"] == 1
            assert [
                d["fromAsset"] for d in log["userAssetDribblets"][0]["userAssetDribbletDetails"]
            ] == ["BTC", "LTC"]
            fake.now_ms = now + 6 * 3_600_000
            again = await client.sapiPostAssetDust({"asset": ["BTC"]})
            assert again["transferResult"][0]["amount"] == "0.00000500"
        finally:
            await client.close()
    assert not hasattr(ccxt.binance(), "convert_dust")  # no unified method: implicit ones
    assert profile_for("binance").dust_to == "BNB"
    assert [profile_for(v).dust_to for v in ("okx", "bybit", "kraken", "coinbase")] == [""] * 4


async def test_dust_is_shown_and_converted_after_a_confirm_and_booked_once(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = dusty_fake(btc_candles)
    async with live_chat(tmp_path, fake) as chat:
        engine = chat.trading.engine
        dust = engine.portfolio.position(PAIR)
        assert dust is not None  # the fee taken in BTC left a remainder under the minimum
        assert fake.balances["BTC"] == pytest.approx(dust.amount)
        cash = engine.portfolio.cash
        refused = await chat.ask(VIEWER, "/dust")
        assert refused.text == "/dust needs the admin role; you are viewer."
        question = await chat.ask(ADMIN, "/dust")
        assert question.text.startswith("/dust: Dust (too small to sell): BTC 0.0000")
        assert "USDT, BTC/USDT)" in question.text
        assert "Convert BTC to BNB on binance" in question.text
        assert [b["text"] for b in question.reply_markup["inline_keyboard"][0]] == [
            "Confirm",
            "Cancel",
        ]
        assert "BTC" in fake.balances  # nothing converted before the Confirm
        result = await chat.confirm(question)
        assert result.text.startswith(
            f"Dust converted: BTC {amount_text(dust.amount)} (BTC/USDT) -> "
        )
        assert "BNB is yours, outside pairpilot's books" in result.text
        assert "BTC" not in fake.balances
        received = 0.98 * dust.amount * fake.prices["BTCUSDT"] / BNB_PRICE
        assert fake.balances["BNB"] == pytest.approx(received)
        assert engine.portfolio.position(PAIR) is None  # closed in the books
        assert engine.portfolio.cash == pytest.approx(cash)  # pairpilot's cash got nothing
        fills = await SqliteFillRepository(chat.db).all()
        last = fills[-1]
        assert (last.side.value, last.amount) == ("sell", pytest.approx(dust.amount))
        assert last.fee == pytest.approx(last.amount * last.price)  # its value: a loss
        assert len(round_trips(fills, engine.exchange.too_small)) == 1  # no new trade
        row = await chat.db.fetch_one(
            "SELECT status, reason FROM orders WHERE client_order_id = ?", (last.client_order_id,)
        )
        assert (row["status"], row["reason"]) == ("filled", "dust_conversion")
        state = SqliteStateRepository(chat.db)
        assert await state.get(PENDING_KEY) is None
        assert "BNB" not in await state.get(OUTSIDE_KEY)  # not traded: never compared
        assert Invariants(fake, tmp_path / "pairpilot.sqlite").check("after /dust") == []
        again = await chat.ask(ADMIN, "/dust")
        assert again.text == "No dust: no position is under the exchange's minimum."
        assert again.reply_markup is None
        posts = len(fake.dust_log)
        assert await engine.executor.settle_unknown() == 0  # the journal has nothing open
    assert posts == 1


async def test_the_venues_refusal_within_its_window_changes_nothing(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = dusty_fake(btc_candles)
    async with live_chat(tmp_path, fake) as chat:
        fake.dust_log.append(
            {
                "operateTime": fake.now_ms - HOUR_MS,
                "transId": 1,
                "totalServiceChargeAmount": "0",
                "totalTransferedAmount": "0",
                "userAssetDribbletDetails": [],
            }
        )  # converted an hour ago
        dust = chat.trading.engine.portfolio.position(PAIR)
        question = await chat.ask(ADMIN, "/dust")
        reads = len([path for path, _ in fake.requests if path == LOG_PATH])
        result = await chat.confirm(question)
        # Binance's -5006 is read in its own code table (as ccxt does at api.binance.com): a
        # refusal, so nothing happened and there is nothing to look up in the dust log.
        assert result.text.startswith("⚠️ binance refused the conversion (OperationRejected: ")
        assert '"code": -5006' in result.text
        assert result.text.endswith("nothing changed")
        assert len([path for path, _ in fake.requests if path == LOG_PATH]) == reads
        assert chat.trading.engine.portfolio.position(PAIR) == dust
        assert fake.balances["BTC"] == pytest.approx(dust.amount)
        state = SqliteStateRepository(chat.db)
        assert await state.get(PENDING_KEY) is None  # refused: nothing left to settle
        again = await chat.ask(ADMIN, "/dust")
        assert again.text.startswith("/dust: Dust (too small to sell): BTC 0.0000")
        assert len(fake.dust_log) == 1
        fake.faults.append(
            Fault("/sapi/v1/asset/dust-btc", 503, {"code": -1000, "msg": "busy"}, times=2)
        )  # the list cannot be read
        down = await chat.ask(ADMIN, "/dust")
        assert down.text.startswith("/dust could not ask the exchange (")
        assert down.reply_markup is None
        extra = await chat.ask(ADMIN, "/dust extra")
        assert extra.text == "/dust takes no arguments; send /dust."


async def test_a_conversion_whose_answer_was_lost_is_booked_once_after_a_restart(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = dusty_fake(btc_candles)
    async with live_chat(tmp_path, fake) as chat:
        dust = chat.trading.engine.portfolio.position(PAIR)
        question = await chat.ask(ADMIN, "/dust")
        fake.faults += [
            Fault(DUST_PATH, 503, {"code": -1000, "msg": "busy"}, after=True),  # done, unheard
            Fault("/sapi/v1/asset/dribblet", 503, {"code": -1000, "msg": "busy"}, times=2),
        ]
        result = await chat.confirm(question)
        assert result.text.startswith("❌ The exchange did not answer")
        assert "BTC" not in fake.balances  # it was converted
        assert chat.trading.engine.portfolio.position(PAIR) == dust  # not booked yet
        assert await SqliteStateRepository(chat.db).get(PENDING_KEY) is not None
    # A restart settles it from the venue's dust log before comparing books and exchange.
    async with live_stack(tmp_path, fake, EXIT_TICK + 2 * HOUR) as (trading, _, _):
        assert trading.engine.portfolio.position(PAIR) is None
        assert trading.engine.portfolio.cash == pytest.approx(fake.balances["USDT"])
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        fills = await SqliteFillRepository(db).all()
        alerts = [a.text for a in await SqliteAlertRepository(db).pending(1000)]
    assert len([f for f in fills if f.client_order_id.startswith("dust-")]) == 1
    assert not [text for text in alerts if "Holdings differ" in text]  # no drift
    assert len([text for text in alerts if text.startswith("Dust converted: BTC")]) == 1
    assert len(fake.dust_log) == 1


async def test_a_venue_without_conversion_says_where_dust_goes(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        answer = await chat.sent_back(ADMIN, "/dust")
        assert answer.text == (
            "No dust: no position is under the exchange's minimum.\nThe "
            "paper exchange has no dust conversion; dust is swept into the "
            "next exit of its pair."
        )
        assert answer.reply_markup is None
        assert (await chat.ask(VIEWER, "/dust")) == "/dust needs the admin role; you are viewer."


async def test_the_users_own_coins_converted_along_are_said_and_leave_no_drift(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = dusty_fake(btc_candles)
    fake.balances["BTC"] = 0.000003  # the user's own, there before pairpilot's first start
    async with live_chat(tmp_path, fake) as chat:
        state = SqliteStateRepository(chat.db)
        assert (await state.get(OUTSIDE_KEY))["BTC"] == pytest.approx(0.000003)
        dust = chat.trading.engine.portfolio.position(PAIR)
        question = await chat.ask(ADMIN, "/dust")
        assert "the whole free balance of each (your own BTC 0.000003 too)" in question.text
        result = await chat.confirm(question)
        assert "0.000003 of it your own" in result.text
        assert "BTC" not in fake.balances
        assert (await state.get(OUTSIDE_KEY))["BTC"] == 0.0  # theirs went too
        assert chat.trading.engine.portfolio.position(PAIR) is None
        assert dust is not None
    async with live_stack(tmp_path, fake, EXIT_TICK + 2 * HOUR):
        pass  # a restart compares books and exchange
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        alerts = [a.text for a in await SqliteAlertRepository(db).pending(1000)]
    assert not [text for text in alerts if "Holdings differ" in text]


def desk_on(trading: Trading, market: Market) -> DustDesk:
    """The desk the cockpit builds, on the live stack's own connection and tick lock."""
    db = trading.engine.executor.transactions
    return DustDesk(
        db=db,
        state=SqliteStateRepository(db),
        orders=SqliteOrderRepository(db),
        runs=SqlitePairRunRepository(db),
        engine=trading.engine,
        clock=market.clock,
        venue="binance",
        prices=lambda: trading.service.prices,
        lock=trading.service.tick_lock,
    )


BUSY = {"code": -1000, "msg": "busy"}
LOG_PATH = "/sapi/v1/asset/dribblet"


async def test_dust_is_never_converted_with_the_bots_own_unbooked_coins(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """Binance converts an asset's whole free balance, and its dust threshold (0.001 BTC) is
    far above its order minimum: a buy whose answer was lost sits in the same balance."""
    fake = dusty_fake(btc_candles)
    async with dusty_stack(tmp_path, fake) as (trading, market, _):
        dust = trading.engine.portfolio.position(PAIR)
        assert dust is not None
        price = fake.prices["BTCUSDT"]
        fake.faults += [
            Fault("/api/v3/order", 503, BUSY, after=True, method="POST"),
            Fault("/api/v3/order", 503, BUSY, method="GET", times=20),
        ]
        intent = OrderIntent(
            "pp-lost-entry",
            trading.service.runs()[0].id,
            PAIR,
            Side.BUY,
            50.0 / price,
            price,
            market.clock.now(),
            reason="entry",
            quote_amount=50.0,
        )
        with contextlib.suppress(BotError):
            await trading.engine.executor.execute(intent)  # placed; its answer is lost
        fake.faults.clear()
        held = fake.balances["BTC"]
        assert held > dust.amount
        assert trading.engine.portfolio.position(PAIR) == dust
        desk = desk_on(trading, market)
        with pytest.raises(UserInputError, match=r"BTC: an order of BTC/USDT is not settled"):
            await desk.convert()
        assert fake.balances["BTC"] == held
        assert fake.dust_log == []
        assert (
            await SqliteStateRepository(trading.engine.executor.transactions).get(PENDING_KEY)
            is None
        )
        assert await trading.engine.executor.settle_unknown() == 1  # the next tick books it
    # Coins on the account that neither the books nor the user's record explain: kept.
    (tmp_path / "b").mkdir()
    fake = dusty_fake(btc_candles)
    async with dusty_stack(tmp_path / "b", fake) as (trading, market, _):
        dust = trading.engine.portfolio.position(PAIR)
        fake.balances["BTC"] = dust.amount + 0.00001  # e.g. a limit entry filled since the tick
        with pytest.raises(UserInputError, match=r"BTC: the exchange holds 0\.0000154, more "):
            await desk_on(trading, market).convert()
        assert fake.dust_log == []
        assert trading.engine.portfolio.position(PAIR) == dust


async def test_a_timed_out_conversion_the_venue_completes_later_is_booked(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """Binance: a timeout means the outcome is unknown, the request may still be processed.
    The journal stays until the dust log shows it (here: at the next start)."""
    fake = dusty_fake(btc_candles)
    async with dusty_stack(tmp_path, fake, client={"timeout": 1000}) as (trading, market, _):
        dust = trading.engine.portfolio.position(PAIR)
        assert dust is not None
        # carried out 2 s on, answered after the client's timeout
        fake.faults.append(Fault(DUST_PATH, method="POST", late=2.0, delay=10.0))
        report = await desk_on(trading, market).convert()
        assert report.unknown
        assert not report.converted
        state = SqliteStateRepository(trading.engine.executor.transactions)
        assert await state.get(PENDING_KEY) is not None
        await asyncio.gather(*fake.late_requests)  # the venue finishes the request
        assert "BTC" not in fake.balances
        assert len(fake.dust_log) == 1
    async with live_stack(tmp_path, fake, EXIT_TICK + HOUR / 2 + timedelta(minutes=2)) as (
        trading,
        _,
        _,
    ):
        assert trading.engine.portfolio.position(PAIR) is None
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        alerts = [a.text for a in await SqliteAlertRepository(db).pending(1000)]
        assert await SqliteStateRepository(db).get(PENDING_KEY) is None
    assert not [text for text in alerts if "Holdings differ" in text]
    assert len([text for text in alerts if text.startswith("Dust converted: BTC")]) == 1


async def test_dust_settles_a_conversion_whose_outcome_was_unknown_first(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = dusty_fake(btc_candles)
    async with live_chat(tmp_path, fake) as chat:
        question = await chat.ask(ADMIN, "/dust")
        fake.faults += [
            Fault(DUST_PATH, 503, BUSY, after=True),
            Fault(LOG_PATH, 503, BUSY, times=2),
        ]
        result = await chat.confirm(question)
        assert "/dust checks again" in result.text
        assert "BTC" not in fake.balances  # converted on the venue
        again = await chat.ask(ADMIN, "/dust")  # as the answer said; the log is readable again
        assert again.text.startswith("Dust converted: BTC 0.0000")
        assert again.text.endswith("No dust: no position is under the exchange's minimum.")
        assert again.reply_markup is None
        assert await SqliteStateRepository(chat.db).get(PENDING_KEY) is None
        assert chat.trading.engine.portfolio.position(PAIR) is None


async def test_an_unreadable_dust_log_does_not_stop_the_start(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = dusty_fake(btc_candles)
    async with dusty_stack(tmp_path, fake) as (trading, market, _):
        fake.faults += [
            Fault(DUST_PATH, 503, BUSY, after=True),
            Fault(LOG_PATH, 503, BUSY, times=2),
        ]
        assert (await desk_on(trading, market).convert()).unknown
    fake.faults.append(Fault(LOG_PATH, 503, BUSY, times=50))  # the wallet's maintenance
    async with live_stack(tmp_path, fake, EXIT_TICK + 2 * HOUR) as (trading, market, _):
        await trading.service.tick("1h")  # it trades
        fake.faults.clear()
        assert (await desk_on(trading, market).settle()).converted  # settled later
        assert trading.engine.portfolio.position(PAIR) is None
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        alerts = [a.text for a in await SqliteAlertRepository(db).pending(1000)]
    assert (
        len([t for t in alerts if t.startswith("A dust conversion's outcome is still unknown")])
        == 1
    )


async def test_a_restart_between_booking_and_clearing_does_not_alert_again(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = dusty_fake(btc_candles)
    async with live_chat(tmp_path, fake) as chat:
        price = chat.trading.service.prices[PAIR]
        at = to_ms(chat.market.clock.now())
        result = await chat.confirm(await chat.ask(ADMIN, "/dust"))
        assert result.text.startswith("Dust converted")
        await SqliteStateRepository(chat.db).set(  # the journal, as a kill would leave it
            PENDING_KEY,
            {"at": at, "assets": {"BTC": {"pair": PAIR, "price": price}}},
            chat.market.clock.now(),
        )
    async with live_stack(tmp_path, fake, EXIT_TICK + 2 * HOUR):
        pass
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        alerts = [a.text for a in await SqliteAlertRepository(db).pending(1000)]
        assert await SqliteStateRepository(db).get(PENDING_KEY) is None
    assert len([t for t in alerts if t.startswith("Dust converted")]) == 1


async def test_the_reason_keeps_asset_names(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    fake = dusty_fake(btc_candles)
    fake.balances["BTC"] = 0.5  # the user's own BTC makes the free balance worth too much
    async with live_chat(tmp_path, fake) as chat:
        answer = await chat.ask(ADMIN, "/dust")
        assert "\nBinance converts none of the dust now (BTC: worth too much" in answer.text


async def test_the_daily_report_does_not_count_dust_as_a_position(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = dusty_fake(btc_candles)
    async with live_chat(tmp_path, fake) as chat:
        assert chat.trading.engine.portfolio.position(PAIR) is not None  # dust only
        report = await chat.cockpit.research.daily_report()
        assert "0 open position(s) (and dust in 1 pair(s)), 1 pair(s) running" in report.caption


async def test_a_slow_dust_log_does_not_stall_the_tick(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """The tick lock covers deciding, asking once and booking; the dust log's retried reads
    after a lost answer run outside it."""
    fake = dusty_fake(btc_candles)
    async with dusty_stack(tmp_path, fake, client={"timeout": 1000}, attempts=5) as (
        trading,
        market,
        _,
    ):
        market.at(EXIT_TICK + HOUR)  # a candle closed: the tick has work to do
        fake.faults += [
            Fault(DUST_PATH, 503, BUSY, after=True),
            Fault(LOG_PATH, 200, {}, delay=3.0, times=10),
        ]
        converting = asyncio.create_task(desk_on(trading, market).convert())
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await trading.service.tick("1h")
        assert time.monotonic() - started < 1.5
        assert (await converting).unknown


async def test_a_conversion_made_on_the_venues_own_site_is_booked_once(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """The user presses Binance's own 'Convert Small Balance to BNB': its dust log has it."""
    fake = dusty_fake(btc_candles)
    async with live_chat(tmp_path, fake) as chat:
        dust = chat.trading.engine.portfolio.position(PAIR)
        assert dust is not None
        async with serve(fake) as base:  # the Binance app, on the same account
            app = client_on(base)
            try:
                await app.sapiPostAssetDust({"asset": ["BTC"]})
            finally:
                await app.close()
        answer = await chat.ask(ADMIN, "/dust")
        assert answer.text.startswith(f"Dust converted: BTC {amount_text(dust.amount)} ")
        assert answer.text.endswith("No dust: no position is under the exchange's minimum.")
        assert chat.trading.engine.portfolio.position(PAIR) is None
        again = await chat.ask(ADMIN, "/dust")
        assert again.text == "No dust: no position is under the exchange's minimum."
    async with live_stack(tmp_path, fake, EXIT_TICK + 2 * HOUR) as (trading, _, _):
        assert trading.engine.portfolio.position(PAIR) is None
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        alerts = [a.text for a in await SqliteAlertRepository(db).pending(1000)]
        fills = await SqliteFillRepository(db).all()
    assert not [text for text in alerts if "Holdings differ" in text]
    assert len([t for t in alerts if t.startswith("Converted on the exchange outside")]) == 1
    assert len([f for f in fills if f.client_order_id.startswith("dust-")]) == 1


async def test_the_periodic_check_settles_a_pending_conversion(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = dusty_fake(btc_candles)
    async with dusty_stack(tmp_path, fake) as (trading, market, _):
        desk = desk_on(trading, market)
        fake.faults += [
            Fault(DUST_PATH, 503, BUSY, after=True),
            Fault(LOG_PATH, 503, BUSY, times=4),
        ]
        assert (await desk.convert()).unknown
        await desk.settle_pending()  # the log is still down: kept for the next check
        state = SqliteStateRepository(trading.engine.executor.transactions)
        assert await state.get(PENDING_KEY) is not None
        reads = len(fake.requests)
        await desk.settle_pending()  # readable again
        assert trading.engine.portfolio.position(PAIR) is None
        assert await state.get(PENDING_KEY) is None
        await desk.settle_pending()  # nothing pending: nothing is asked
        assert len(fake.requests) == reads + 1


async def test_the_survey_keeps_declared_dust_at_a_price_where_it_would_be_worth_the_minimum(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """Dust declared stays dust until an entry resets it (Engine.is_dust): the /dust survey
    and the daily report agree with the engine, whatever the price does."""
    fake = funded_fake(btc_candles)
    fake.prices["BNBUSDT"] = BNB_PRICE
    async with live_stack(tmp_path, fake, START) as (trading, market, jobs):
        await hourly(trading, market, ENTRY_TICK, EXIT_TICK)
        rest = 0.00003  # three lot steps: about 3.2 USDT, under the 5 USDT minimum
        held = trading.engine.portfolio.position(PAIR).amount
        fake.faults.append(Fault("/api/v3/order", method="POST", fill_share=1 - rest / held))
        await hourly(trading, market, EXIT_TICK, EXIT_TICK + 2 * HOUR)  # exit, then its rest
        dust = trading.engine.portfolio.position(PAIR)
        assert dust.amount == pytest.approx(rest, abs=1e-5)
        trading.service.prices[PAIR] = 200_000.0  # worth 6 USDT now, over the minimum
        assert trading.engine.exchange.too_small(PAIR, dust.amount, 200_000.0) is None
        survey = await desk_on(trading, market).survey()
        assert [(h.pair, h.amount, h.price) for h in survey.holdings] == [
            (PAIR, dust.amount, 200_000.0)
        ]
        assert [h.asset for h in survey.convertible] == ["BTC"]  # the venue would take it
        cockpit = cockpit_on(trading, market, jobs)
        try:
            report = await cockpit.research.daily_report()
        finally:
            cockpit.charts.close()
        assert "0 open position(s) (and dust in 1 pair(s))" in report.caption

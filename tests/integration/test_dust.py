"""Dust conversion (/dust): Binance's Dust Transfer through unmodified ccxt against the fake, and
the whole command through the real python-telegram-bot client on the Bot API emulator.

Dust is made the way Binance makes it: fees taken from the coin bought leave a remainder under
the exchange's minimum after the exit (EMA 12/26 on the BTC/USDT sample enters at 05:00 and
exits at 08:00 on 2025-06-27).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import ccxt
import ccxt.async_support as ccxt_async
import pandas as pd
import pytest

from bot.app import build_cockpit
from bot.cockpit import Cockpit, Venue
from bot.dust import PENDING_KEY
from bot.exchange.venues import profile_for
from bot.exchange_service import ExchangeTrading
from bot.history import ExchangeHistory
from bot.metrics import round_trips
from bot.outside import OUTSIDE_KEY
from handlers.frontend import TelegramFrontend
from storage.alerts import SqliteAlertRepository
from storage.candles import SqliteCandleRepository
from storage.db import Database, open_database
from storage.fills import SqliteFillRepository
from storage.state import SqliteStateRepository
from tests.chat_rig import ADMIN, VIEWER, chat_stack
from tests.fake_exchange import FakeBinance, Fault, binance_urls, serve
from tests.live_rig import HOUR, PAIR, Market, funded_fake, hourly, live_stack
from tests.telegram_emulator import Sent, TelegramEmulator, running

START = datetime(2025, 6, 27, 4, 30, tzinfo=UTC)
ENTRY_TICK = datetime(2025, 6, 27, 5, 0, 5, tzinfo=UTC)
EXIT_TICK = datetime(2025, 6, 27, 8, 0, 5, tzinfo=UTC)
BNB_PRICE = 600.0
DUST_PATH = "/sapi/v1/asset/dust"
USERS = {ADMIN: "admin", VIEWER: "viewer"}


def dusty_fake(candles: pd.DataFrame) -> FakeBinance:
    fake = funded_fake(candles)
    fake.fee_asset = "received"  # Binance's default: the fee is taken from the coins bought
    fake.prices["BNBUSDT"] = BNB_PRICE
    return fake


@dataclass
class LiveChat:
    emulator: TelegramEmulator
    trading: ExchangeTrading
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
        self.emulator.press(ADMIN, question, question.reply_markup["inline_keyboard"][0][0]
                            ["callback_data"])  # fmt: skip
        return await self.emulator.reply(ADMIN, after=before)


@asynccontextmanager
async def live_chat(tmp_path: Path, fake: FakeBinance) -> AsyncIterator[LiveChat]:
    """The live stack on the fake, traded until only dust is left, with the chat on it."""
    emulator = TelegramEmulator()
    async with (
        running(emulator) as telegram,
        live_stack(tmp_path, fake, START) as (trading, market, jobs),
    ):
        await hourly(trading, market, ENTRY_TICK, EXIT_TICK + HOUR)
        db = trading.engine.executor._transactions  # noqa: SLF001  the stack's own connection
        cockpit = build_cockpit(
            db, Venue("live", "binance", "USDT"), trading.service, trading.engine,
            trading.control, ExchangeHistory(trading.engine.exchange, SqliteCandleRepository(db)),
            jobs, market.clock,
        )  # fmt: skip
        frontend = TelegramFrontend(
            token=emulator.token, api_base_url=telegram, users=USERS, cockpit=cockpit,
            outbox=trading.outbox, alerts=SqliteAlertRepository(db), clock=market.clock,
            poll_timeout=1,
        )  # fmt: skip
        frontend.start()
        await frontend.running.wait()
        try:
            yield LiveChat(emulator, trading, cockpit, market, db)
        finally:
            await frontend.stop()
            cockpit.charts.close()


def client_on(base: str, secret: str = "test-secret") -> ccxt_async.binance:
    return ccxt_async.binance({"apiKey": "test-key", "secret": secret, "enableRateLimit": False,
                               "urls": {"api": binance_urls(base)}})  # fmt: skip


async def test_binance_dust_transfer_through_unmodified_ccxt() -> None:
    now = int(EXIT_TICK.timestamp() * 1000)
    fake = FakeBinance(now_ms=now, balances={"USDT": 100.0, "BTC": 0.000009, "ETH": 0.5,
                                             "LTC": 0.004, "BNB": 0.1})  # fmt: skip
    fake.prices.update({"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "LTCUSDT": 80.0,
                        "BNBUSDT": BNB_PRICE})  # fmt: skip
    async with serve(fake) as base:
        client = client_on(base)
        try:
            listed = await client.sapiPostAssetDustBtc()
            # Worth under 0.001 BTC: BTC (0.54 USDT) and LTC (0.32); not USDT (100), ETH, BNB.
            assert [row["asset"] for row in listed["details"]] == ["BTC", "LTC"]
            assert listed["dribbletPercentage"] == "0.02"
            # ccxt maps Binance's -50xx codes in its 'spot' table, read only for api.binance.com
            # URLs: at a rewritten URL they arrive as plain ExchangeError (the adapter then reads
            # the dust log before saying anything).
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
            assert "BTC" not in fake.balances and "LTC" not in fake.balances
            assert fake.balances["BNB"] == pytest.approx(0.1 + 0.98 * (0.54 + 0.32) / BNB_PRICE)
            fake.balances["BTC"] = 0.000005
            with pytest.raises(ccxt.ExchangeError, match="-5006"):  # once every 6 hours
                await client.sapiPostAssetDust({"asset": ["BTC"]})
            log = await client.sapiGetAssetDribblet({"startTime": now - 1})
            assert log["total"] == 1
            assert [d["fromAsset"] for d in log["userAssetDribblets"][0]
                    ["userAssetDribbletDetails"]] == ["BTC", "LTC"]  # fmt: skip
            fake.now_ms = now + 6 * 3_600_000
            again = await client.sapiPostAssetDust({"asset": ["BTC"]})
            assert again["transferResult"][0]["amount"] == "0.00000500"
        finally:
            await client.close()
    assert not hasattr(ccxt.binance(), "convert_dust")  # no unified method: implicit ones
    assert profile_for("binance").dust_to == "BNB"
    assert [profile_for(v).dust_to for v in ("okx", "bybit", "kraken", "coinbase")] == [""] * 4

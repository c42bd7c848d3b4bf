"""Canary secrets as the exchange keys and the bot token: they must show up nowhere.

The service trades live on the fake exchange (which checks the canary keys) with Telegram on
the emulator (whose token is the canary), logs at DEBUG, fails on purpose, and answers
commands. Then every output is searched: the logs with their tracebacks, every chat message,
the database files, the /health reply.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bot.app.bootstrap import assemble_on_exchange, credentials
from bot.app.chat_root import build_cockpit
from bot.app.config import Settings
from bot.app.secret_values import Secrets
from bot.chat.venue import Venue
from bot.core.clock import FakeClock
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.market.history import ExchangeHistory
from bot.market.streaming import StreamingFeed
from bot.ops.redaction import MASK, install
from bot.ops.scheduler import Jobs
from handlers.frontend import TelegramFrontend
from storage.alerts import SqliteAlertRepository
from storage.candles import SqliteCandleRepository
from storage.db import open_database
from tests.doubles.fake_exchange import FakeBinance, Fault, binance_urls, serve
from tests.doubles.telegram_emulator import TelegramEmulator, running
from tests.rigs.checked import check_configured

CANARY = "CANARY"
KEY, SECRET, TOKEN = "key-CANARY-7f3a09", "secret-CANARY-91bd4e", "123456:CANARY-token-55aa"
ADMIN = 1001


def settings(tmp_path: Path, base: str) -> Settings:
    return Settings.model_validate(
        {
            "mode": "live",
            "data_dir": tmp_path,
            "exchange": {
                "name": "binance",
                "ccxt_config": {"urls": {"api": binance_urls(base)}, "enableRateLimit": False},
            },
            "market_data": {"source": "exchange"},
            "pairs": [{"pair": "BTC/USDT", "capital_share": 0.5, "params": {"stop_loss": 0.02}}],
        }
    )


async def test_canary_secrets_appear_in_no_log_message_database_or_reply(
    tmp_path: Path, btc_candles: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = Secrets(telegram_token=TOKEN, exchange_key=KEY, exchange_secret=SECRET)
    undo = install(secrets.values())
    caplog.set_level(logging.DEBUG)
    fake = FakeBinance(now_ms=0, api_key=KEY, secret=SECRET, balances={"USDT": 1000.0})
    fake.add_candles("BTCUSDT", "1h", btc_candles)
    emulator = TelegramEmulator(token=TOKEN)
    clock = FakeClock(datetime(2025, 6, 23, 9, 30, tzinfo=UTC))
    try:
        async with serve(fake) as base, running(emulator) as telegram:
            config = settings(tmp_path, base)
            exchange = CcxtExchange.create(
                "binance",
                config.exchange.ccxt_config,
                credentials=credentials(config, secrets),
                attempts=2,
                backoff=0.01,
            )
            feed = StreamingFeed(exchange)
            await exchange.load_markets()
            async with open_database(config.database_path) as db:
                await check_configured(db, config)  # the user ran `strategy check` on them
                jobs = Jobs(clock)
                trading = await assemble_on_exchange(db, config, exchange, feed, clock, jobs)
                cockpit = build_cockpit(
                    db,
                    Venue("live", "binance", "USDT"),
                    trading.service,
                    trading.engine,
                    trading.control,
                    ExchangeHistory(exchange, SqliteCandleRepository(db)),
                    jobs,
                    clock,
                )
                frontend = TelegramFrontend(
                    token=TOKEN,
                    api_base_url=telegram,
                    users={ADMIN: "admin"},
                    cockpit=cockpit,
                    outbox=trading.outbox,
                    alerts=SqliteAlertRepository(db),
                    clock=clock,
                    poll_timeout=1,
                )
                frontend.start()
                await frontend.running.wait()
                moment = datetime(2025, 6, 23, 10, 0, 5, tzinfo=UTC)
                for hour in range(24 * 6):
                    clock.set(moment + timedelta(hours=hour))
                    fake.now_ms = int(clock.now().timestamp() * 1000)
                    forming = btc_candles[btc_candles["timestamp"] <= fake.now_ms].iloc[-1]
                    fake.prices["BTCUSDT"] = float(forming["open"])
                    if hour == 30:  # an outage, logged with its traceback
                        fake.faults.append(Fault("/api/v3/klines", 500, {"code": -1000}, times=9))
                    await trading.service.tick("1h")
                for command in ("/status", "/balance", "/health", "/orders", "/audit"):
                    before = len(emulator.to(ADMIN))
                    emulator.say(ADMIN, command)
                    await emulator.reply(ADMIN, after=before)
                await frontend.stop()
            await feed.close()
            await exchange.close()
    finally:
        undo()
    assert fake.orders, "the service never traded: the search below would prove little"
    logged = "\n".join(caplog.text.splitlines())
    assert MASK in logged  # httpx logged the token-bearing URLs: redacted
    assert CANARY not in logged
    assert all(CANARY not in message.text for message in emulator.sent)
    files = sorted(tmp_path.glob("pairpilot.sqlite*"))  # noqa: ASYNC240
    assert files
    for path in files:
        assert CANARY.encode() not in path.read_bytes(), path.name
    assert CANARY not in repr(secrets)

"""The service process the crash soak kills: live mode on the fake exchange, Telegram on.

    python -m tests.soaks.crash_child EXCHANGE_URL TELEGRAM_URL DATA_DIR [VENUE]

The real stack (ccxt adapter, journal, engine, SQLite, the PTB front end and the alert
dispatcher), stepped by the fake exchange's clock instead of the scheduler's: each step moves
the fake an hour on, ticks, and drains the alerts. After start-up (reconciliation included) it
prints one JSON line with what it loaded, then waits for one command line on stdin: ``go``,
optionally with ``halt``, ``resume``, ``pause`` or ``unpause`` before the trading starts. It
trades until it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import aiohttp

from bot.app.bootstrap import Trading, assemble_on_exchange, credentials
from bot.app.chat_root import build_cockpit
from bot.app.config import Settings, telegram_options
from bot.app.notifications import notifications
from bot.app.secret_values import Secrets
from bot.chat.venue import Venue
from bot.core.clock import FakeClock
from bot.core.domain import from_ms
from bot.core.errors import UserInputError
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.market.history import ExchangeHistory
from bot.market.streaming import StreamingFeed
from bot.ops.scheduler import Jobs
from handlers.frontend import telegram_factory
from storage.alerts import SqliteAlertRepository
from storage.candles import SqliteCandleRepository
from storage.db import open_database
from tests.rigs.checked import check_configured
from tests.rigs.live_rig import SECRETS, VENUES, venue_secrets

ADMIN = 1001
TOKEN = "123456:TEST-TOKEN"
PAIR = "BTC/USDT"
HOUR_MS = 3_600_000


def soak_settings(
    exchange_url: str, telegram_url: str, data_dir: Path, venue: str = "binance"
) -> Settings:
    ccxt_config = {**VENUES[venue].config(exchange_url), "enableRateLimit": False}
    return Settings.model_validate(
        {
            "mode": "live",
            "data_dir": data_dir,
            "exchange": {"name": venue, "ccxt_config": ccxt_config},
            "market_data": {"source": "exchange"},
            "risk": {"max_position_fraction": 1.0, "max_drawdown": 0},
            "telegram": {"api_base_url": telegram_url, "users": [{"id": ADMIN, "role": "admin"}]},
            "pairs": [
                {
                    "pair": PAIR,
                    "capital_share": 0.5,
                    "params": {"fast": 3, "slow": 7, "stop_loss": 0.02},
                }
            ],
        }
    )


async def main(exchange_url: str, telegram_url: str, data_dir: Path, venue: str) -> None:
    settings = soak_settings(exchange_url, telegram_url, data_dir, venue)
    secrets = venue_secrets(
        venue,
        Secrets(
            exchange_key=SECRETS.exchange_key,
            exchange_secret=SECRETS.exchange_secret,
            exchange_password=SECRETS.exchange_password,
            telegram_token=TOKEN,
        ),
    )
    exchange = CcxtExchange.create(
        venue,
        settings.exchange.ccxt_config,
        credentials=credentials(settings, secrets),
        attempts=3,
        backoff=0.01,
    )
    feed = StreamingFeed(exchange)
    async with aiohttp.ClientSession(exchange_url) as http:
        await exchange.load_markets()
        async with http.post("/_test/advance", params={"ms": 0}) as answer:  # the fake's clock
            clock = FakeClock(from_ms((await answer.json())["serverTime"]))
        async with open_database(settings.database_path) as db:
            await check_configured(db, settings)  # the user ran `strategy check` on them
            jobs = Jobs(clock)
            trading = await assemble_on_exchange(db, settings, exchange, feed, clock, jobs)
            cockpit = build_cockpit(
                db,
                Venue("live", venue, "USDT"),
                trading.service,
                trading.engine,
                trading.control,
                ExchangeHistory(exchange, SqliteCandleRepository(db)),
                jobs,
                clock,
            )
            chat = telegram_factory(telegram_options(settings, secrets))
            async with notifications(
                SqliteAlertRepository(db),
                cockpit,
                trading.outbox,
                clock,
                chat,
                print,
                simulated=True,
            ) as dispatcher:
                halt = await trading.engine.guard.halted()
                runs = [[run.pair, run.state.value] for run in trading.service.runs()]
                print(json.dumps({"halted": halt is not None, "runs": runs}), flush=True)
                command = await asyncio.to_thread(sys.stdin.readline)
                await _apply(command.split(), trading, clock)
                while True:
                    async with http.post("/_test/advance", params={"ms": HOUR_MS}) as answer:
                        clock.set(from_ms((await answer.json())["serverTime"]))
                    await trading.service.tick("1h")
                    await dispatcher.drain()


async def _apply(words: list[str], trading: Trading, clock: FakeClock) -> None:
    """The operator's actions between restarts, through the same calls the chat makes."""
    guard, control = trading.engine.guard, trading.control
    with contextlib.suppress(UserInputError):  # pausing a paused pair and the like
        if "halt" in words:
            await guard.halt("crash soak", clock.now())
        if "resume" in words:
            await guard.resume(trading.engine.portfolio.equity(trading.service.prices), clock.now())
        if "pause" in words:
            await control.pause(PAIR)
        if "unpause" in words:
            await control.resume(PAIR)


if __name__ == "__main__":
    venue = sys.argv[4] if len(sys.argv) > 4 else "binance"
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), venue))

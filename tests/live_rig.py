"""The live stack on the fake exchange: the real service, ccxt and SQLite, on a test clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from bot.clock import FakeClock
from bot.config import Secrets, Settings
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.exchange_service import ExchangeTrading, assemble_on_exchange, credentials
from bot.scheduler import Jobs
from bot.stream_feed import StreamingFeed
from storage.db import open_database
from tests.fake_exchange import FakeBinance, binance_urls, serve

PAIR = "BTC/USDT"
HOUR = timedelta(hours=1)
SECRETS = Secrets(exchange_key="test-key", exchange_secret="test-secret")


def live_settings(
    tmp_path: Path, base: str, params: dict[str, float] | None = None,
    client: dict[str, Any] | None = None, risk: dict[str, float] | None = None,
) -> Settings:  # fmt: skip
    """``client``: more ccxt options (a short timeout, say); ``risk``: limits to change."""
    # No client-side pacing against a local fake: it only makes the suite slower.
    ccxt_config = {"urls": {"api": binance_urls(base)}, "enableRateLimit": False, **(client or {})}
    return Settings.model_validate({
        "mode": "live", "data_dir": tmp_path,
        "exchange": {"name": "binance", "ccxt_config": ccxt_config},
        "market_data": {"source": "exchange"},
        "risk": {"max_position_fraction": 1.0, **(risk or {})},
        "pairs": [{"pair": PAIR, "capital_share": 0.5, "params": params or {}}],
    })  # fmt: skip


def funded_fake(candles: pd.DataFrame) -> FakeBinance:
    """The fake exchange with 1,000 USDT in the account and ``candles`` as BTC/USDT 1h."""
    fake = FakeBinance(now_ms=0, balances={"USDT": 1000.0})
    fake.add_candles("BTCUSDT", "1h", candles)
    return fake


class Market:
    """The fake exchange and the test clock moved together, prices at the forming candle."""

    def __init__(self, fake: FakeBinance, clock: FakeClock) -> None:
        self.fake, self.clock = fake, clock

    def at(self, moment: datetime) -> None:
        self.clock.set(moment)
        self.fake.move_to(int(moment.timestamp() * 1000))


@asynccontextmanager
async def live_stack(
    tmp_path: Path, fake: FakeBinance, start: datetime, params: dict[str, float] | None = None,
    *, client: dict[str, Any] | None = None, risk: dict[str, float] | None = None,
    attempts: int = 2,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> AsyncIterator[tuple[ExchangeTrading, Market, Jobs]]:  # fmt: skip
    """``attempts`` and ``sleep``: the adapter's retries and how it waits between them."""
    clock = FakeClock(start)
    market = Market(fake, clock)
    market.at(start)
    async with serve(fake) as base:
        settings = live_settings(tmp_path, base, params, client, risk)
        exchange = CcxtExchange.create(
            "binance", settings.exchange.ccxt_config, credentials=credentials(settings, SECRETS),
            attempts=attempts, backoff=0.01, **({"sleep": sleep} if sleep else {}),
        )  # fmt: skip
        feed = StreamingFeed(exchange)
        try:
            await exchange.load_markets()
            async with open_database(settings.database_path) as db:
                jobs = Jobs(clock)
                yield (
                    await assemble_on_exchange(db, settings, exchange, feed, clock, jobs),
                    market,
                    jobs,
                )
        finally:
            await feed.close()
            await exchange.close()


async def hourly(trading: ExchangeTrading, market: Market, start: datetime, end: datetime) -> None:
    moment = start
    while moment < end:
        market.at(moment)
        await trading.service.tick("1h")
        moment += HOUR

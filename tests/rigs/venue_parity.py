"""The venue parity rig: the live stack on a venue's exchange fake (unmodified ccxt over
loopback, a real SQLite file) trading given pairs, ticked at each close of a window after its
first WARM candles. tests/integration/test_venue_parity.py (one pair, each venue) and
test_venue_portfolio_parity.py (a portfolio) compare it with the kernels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bot.app.bootstrap import Trading, assemble_on_exchange, credentials
from bot.app.config import Settings
from bot.core.clock import FakeClock
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.market.streaming import StreamingFeed
from bot.ops.scheduler import Jobs
from storage.db import Database, open_database
from tests.doubles.fake_exchange import FakeBinance, serve
from tests.rigs.checked import check_configured
from tests.rigs.live_rig import Market, funded_fake, live_settings, venue_secrets

# History before the live run starts: OKX's candle pages (300) must reach back into the data
# from the window the engine asks for, and the kernel gets the same history (``trade_from``).
WARM = 300
TRADED = 300  # candles the live engine trades through
FIRST = 300  # the sample's candle the window starts at: its second 300 trade every case often
BALANCE = 1_000_000.0
LOT = 0.00001  # the fakes' lot step (BTC)


def at(candles: pd.DataFrame, index: int) -> datetime:
    return pd.Timestamp(int(candles["timestamp"].iloc[index]), unit="ms", tz="UTC").to_pydatetime()


def venue_settings(
    tmp_path: Path,
    base: str,
    venue: str,
    pairs: list[dict[str, Any]],
    risk: dict[str, float] | None = None,
) -> Settings:
    """live_rig's ``live_settings`` trading ``pairs`` (each a [[pairs]] entry's fields)."""
    settings = live_settings(tmp_path, base, venue=venue, risk=risk)
    runs = [settings.pairs[0].model_copy(update=pair) for pair in pairs]
    return settings.model_copy(update={"pairs": runs})


@asynccontextmanager
async def venue_stack(
    tmp_path: Path,
    fake: FakeBinance,
    start: datetime,
    venue: str,
    pairs: list[dict[str, Any]],
    risk: dict[str, float] | None = None,
) -> AsyncIterator[tuple[Trading, Market, CcxtExchange]]:
    """The live stack on ``fake`` trading ``pairs`` (``venue_settings``; live_rig's
    ``live_stack`` trades its default strategy with half of the account)."""
    clock = FakeClock(start)
    market = Market(fake, clock)
    market.at(start)
    async with serve(fake) as base:
        settings = venue_settings(tmp_path, base, venue, pairs, risk)
        keys = credentials(settings, venue_secrets(venue))
        exchange = CcxtExchange.create(
            venue, settings.exchange.ccxt_config, credentials=keys, attempts=2, backoff=0.01
        )
        feed = StreamingFeed(exchange)
        try:
            await exchange.load_markets()
            async with open_database(settings.database_path) as db:
                await check_configured(db, settings)  # the user ran `strategy check` on them
                trading = await assemble_on_exchange(
                    db, settings, exchange, feed, clock, Jobs(clock)
                )
                yield trading, market, exchange
        finally:
            await feed.close()
            await exchange.close()


def venue_fake(candles: pd.DataFrame, venue: str, **realism: Any) -> FakeBinance:
    """``venue``'s fake holding BALANCE USDT, ``candles`` as BTC/USDT 1h, the market walking
    each candle; ``realism``: more of the fake's settings (split, fee_asset)."""
    fake = funded_fake(candles, venue)
    fake.balances["USDT"] = BALANCE
    fake.walks = True
    for name, value in realism.items():
        setattr(fake, name, value)
    return fake


@asynccontextmanager
async def traded(
    tmp_path: Path,
    fake: FakeBinance,
    candles: pd.DataFrame,
    venue: str,
    pairs: list[dict[str, Any]],
    risk: dict[str, float] | None = None,
) -> AsyncIterator[tuple[Trading, CcxtExchange, Database]]:
    """``venue_stack`` ticked at each close of ``candles`` after the first WARM; then its
    database, to read back."""
    async with venue_stack(tmp_path, fake, at(candles, WARM), venue, pairs, risk) as (
        trading,
        market,
        exchange,
    ):
        for index in range(WARM + 1, len(candles)):
            market.at(at(candles, index))
            await trading.service.tick("1h")
        async with open_database(tmp_path / "pairpilot.sqlite") as db:
            yield trading, exchange, db

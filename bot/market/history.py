"""Past candles for a backtest started while the service runs (from chat).

In a replay they come from the replay's own files, up to the replay's now. On an exchange they
are downloaded into the candle store first (kept for next time), then read from it; the live
feed's caches are left alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from bot.core.errors import DataError
from bot.core.ports import CandleFeed, CandleRepository
from bot.core.timeframes import timeframe_seconds
from bot.market.candle_files import ReplaySource
from bot.market.store import download


class ReplayHistory:
    def __init__(self, source: ReplaySource) -> None:
        self._source = source

    async def candles(self, pair: str, timeframe: str, days: int, now: datetime) -> pd.DataFrame:
        self._source.check_timeframe(pair, timeframe)
        limit = days * 86_400 // timeframe_seconds(timeframe)
        frame = await self._source.closed_candles(pair, now, limit, timeframe)
        if frame.empty:
            raise DataError(f"the replay has no {pair} candles before {now:%Y-%m-%d %H:%M}")
        return frame.reset_index(drop=True)


class ExchangeHistory:
    def __init__(self, feed: CandleFeed, store: CandleRepository) -> None:
        self._feed = feed
        self._store = store

    async def candles(self, pair: str, timeframe: str, days: int, now: datetime) -> pd.DataFrame:
        since = now - timedelta(days=days)
        await download(
            self._feed,
            self._store,
            pair=pair,
            timeframe=timeframe,
            since=since,
            until=None,
            now=now,
        )
        frame = await self._store.frame(self._feed.name, pair, timeframe, since=since)
        if frame.empty:
            raise DataError(f"{self._feed.name} returned no {pair} {timeframe} candles")
        return frame

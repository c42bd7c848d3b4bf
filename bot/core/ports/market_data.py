"""Ports of market data: prices and closed candles for the engine, candle downloads, candles
kept on disk. Adapters: bot/market/, bot/exchange/, storage/candles.py."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd


class PriceFeed(Protocol):
    async def price(self, pair: str, now: datetime) -> float: ...

    async def candle_after(self, pair: str, since: datetime, now: datetime) -> pd.Series | None:
        """The first candle opening at or after ``since`` that has closed by ``now``, if any."""
        ...

    async def volume(self, pair: str, now: datetime) -> float | None:
        """The base volume an order at ``now`` trades into: the forming candle's in a replay,
        the last closed candle's live; None when not known."""
        ...

    async def fill_time(self, pair: str, now: datetime) -> datetime:
        """When an order sent at ``now`` trades: ``now``, but inside a gap of this pair's data
        in a replay (another pair's candle still forming), when its trading resumed."""
        ...


class CandleSource(PriceFeed, Protocol):
    async def closed_candles(
        self, pair: str, now: datetime, limit: int, timeframe: str | None = None
    ) -> pd.DataFrame: ...


class CandleRepository(Protocol):
    """Candles kept on disk, per exchange, pair and timeframe (timestamps in ms)."""

    async def add_frame(self, exchange: str, pair: str, timeframe: str, frame: pd.DataFrame) -> int:
        """Store candles from a frame with our columns; returns how many were new."""
        ...

    async def frame(
        self,
        exchange: str,
        pair: str,
        timeframe: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """Candles opening in [since, until), oldest first, as a frame with our columns."""
        ...

    async def last_timestamp(self, exchange: str, pair: str, timeframe: str) -> int | None: ...

    async def timestamps(
        self, exchange: str, pair: str, timeframe: str
    ) -> npt.NDArray[np.int64]: ...


class CandleHistory(Protocol):
    async def candles(self, pair: str, timeframe: str, days: int, now: datetime) -> pd.DataFrame:
        """Closed candles of the last ``days`` before ``now``, oldest first."""
        ...


class CandleFeed(Protocol):
    """Where candles are downloaded from (an exchange's OHLCV, page by page)."""

    name: str

    def check_pair(self, pair: str) -> None: ...

    def check_timeframe(self, timeframe: str) -> None: ...

    @property
    def ohlcv_limit(self) -> int: ...

    async def fetch_candles(self, pair: str, timeframe: str, since_ms: int) -> pd.DataFrame: ...


class LiveFeed(Protocol):
    """An exchange's candles and last price, for the service trading on it."""

    async def fetch_candles(self, pair: str, timeframe: str, since_ms: int) -> pd.DataFrame: ...

    @property
    def ohlcv_limit(self) -> int: ...  # the most candles one page holds

    async def fetch_price(self, pair: str) -> float: ...

    def check_pair(self, pair: str) -> None: ...

    def check_timeframe(self, timeframe: str) -> None: ...

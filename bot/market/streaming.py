"""Candles and prices pushed by the exchange's streams, with REST as the fallback.

One watcher task per (pair, timeframe) and per pair's ticker, started on first use (so runs
started at runtime stream too). A watcher that loses its connection reconnects with exponential
backoff and full jitter, and forgets what it had cached: candles after a reconnect may follow a
hole, so the range across it is fetched over REST, where the history is whole (that is the gap
check after a reconnect). A candle is served from the stream only once a later candle has
arrived on the same connection: by then its final update has been received.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from bot.core.errors import ExchangeUnavailable
from bot.core.ports import LiveFeed
from bot.core.timeframes import timeframe_seconds
from bot.market.candle_files import COLUMNS

log = logging.getLogger(__name__)


class StreamingExchange(LiveFeed, Protocol):
    @property
    def streams(self) -> bool: ...

    async def watch_candles(self, pair: str, timeframe: str) -> pd.DataFrame: ...

    async def watch_price(self, pair: str) -> float: ...


@dataclass
class StreamStats:
    """What the streams did: served from the stream, fell back to REST, reconnects."""

    candles_streamed: int = 0
    candles_fetched: int = 0
    prices_streamed: int = 0
    prices_fetched: int = 0
    reconnects: int = 0
    stopped: list[str] = field(default_factory=list)  # streams given up on, with the reason


class StreamingFeed:
    """A LiveFeed that serves from the exchange's streams and falls back to REST."""

    def __init__(
        self,
        exchange: StreamingExchange,
        *,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
        price_fresh_seconds: float = 10.0,
        keep: int = 1000,
    ) -> None:
        self._exchange = exchange
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._price_fresh = price_fresh_seconds
        self._keep = keep
        self._candles: dict[tuple[str, str], dict[int, tuple[float, ...]]] = {}
        self._prices: dict[str, tuple[float, float]] = {}  # pair -> (price, loop time received)
        self._tasks: dict[tuple[str, ...], asyncio.Task[None]] = {}
        self.stats = StreamStats()

    def check_pair(self, pair: str) -> None:
        self._exchange.check_pair(pair)

    @property
    def ohlcv_limit(self) -> int:
        return self._exchange.ohlcv_limit

    def check_timeframe(self, timeframe: str) -> None:
        self._exchange.check_timeframe(timeframe)

    async def fetch_candles(self, pair: str, timeframe: str, since_ms: int) -> pd.DataFrame:
        """Closed-and-confirmed streamed candles from ``since_ms`` on, else the REST page."""
        key = (pair, timeframe)
        self._start(("candles", pair, timeframe), lambda: self._watch_candles(key))
        streamed = self._confirmed_from(key, since_ms, timeframe_seconds(timeframe) * 1000)
        if streamed is not None:
            self.stats.candles_streamed += len(streamed)
            return streamed
        page = await self._exchange.fetch_candles(pair, timeframe, since_ms)
        self.stats.candles_fetched += len(page)
        return page

    async def fetch_price(self, pair: str) -> float:
        """The last pushed price if it is fresh, else the ticker over REST."""
        self._start(("price", pair), lambda: self._watch_price(pair))
        pushed = self._prices.get(pair)
        if pushed and asyncio.get_running_loop().time() - pushed[1] <= self._price_fresh:
            self.stats.prices_streamed += 1
            return pushed[0]
        self.stats.prices_fetched += 1
        return await self._exchange.fetch_price(pair)

    def holds(self, pair: str, timeframe: str, stamp_ms: int) -> bool:
        """Whether the candle stream pushed the candle opening at ``stamp_ms`` (closed or
        forming): a candle it holds is served from the stream once a successor confirms it."""
        return stamp_ms in self._candles.get((pair, timeframe), {})

    def pushed_price(self, pair: str) -> float | None:
        """The last price the ticker stream pushed for ``pair``, fresh or not; None before the
        first push (``fetch_price`` serves it only while fresh)."""
        pushed = self._prices.get(pair)
        return pushed[0] if pushed else None

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _confirmed_from(
        self, key: tuple[str, str], since_ms: int, step: int
    ) -> pd.DataFrame | None:
        cached = self._candles.get(key)
        if not cached or since_ms not in cached:
            return None
        rows, stamp = [], since_ms
        while stamp in cached and stamp + step in cached:  # a successor: the candle is final
            rows.append(cached[stamp])
            stamp += step
        if not rows:
            return None
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        return frame.astype({"timestamp": "int64"})

    def _start(self, name: tuple[str, ...], watch: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._exchange.streams and name not in self._tasks:
            self._tasks[name] = asyncio.create_task(self._keep_watching(name, watch))

    async def _keep_watching(
        self, name: tuple[str, ...], watch: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        delay = self._backoff
        while True:
            try:
                await watch()
            except ExchangeUnavailable as error:
                self.stats.reconnects += 1
                self._forget(name)
                pause = random.uniform(0, delay)  # noqa: S311  # full jitter, so reconnects do not stampede
                log.warning("%s stream lost (%s); reconnecting in %.2f s", name, error, pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, self._max_backoff)
            except Exception as error:  # refused, unsupported or a bug: REST serves from now on
                self.stats.stopped.append(f"{' '.join(name)}: {error}")
                log.warning("%s stream stopped (%s); using REST", name, error, exc_info=True)
                self._forget(name)
                return
            else:
                delay = self._backoff

    def _forget(self, name: tuple[str, ...]) -> None:
        if name[0] == "candles":
            self._candles.pop((name[1], name[2]), None)
        else:
            self._prices.pop(name[1], None)

    async def _watch_candles(self, key: tuple[str, str]) -> None:
        """Merges one update into the cache; returns so a healthy stream resets the backoff."""
        update = await self._exchange.watch_candles(*key)
        cached = self._candles.setdefault(key, {})
        for row in update.itertuples(index=False, name=None):
            cached[int(row[0])] = (int(row[0]), *map(float, row[1:]))
        for stamp in sorted(cached)[: max(0, len(cached) - self._keep)]:
            del cached[stamp]

    async def _watch_price(self, pair: str) -> None:
        price = await self._exchange.watch_price(pair)
        self._prices[pair] = (price, asyncio.get_running_loop().time())

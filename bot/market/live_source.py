"""Closed candles and prices from an exchange, for the service running live (paper or real).

Candles are fetched incrementally per pair and kept in memory (the strategy's history window).
A candle is handed out only once its close time has passed; the one still forming is dropped.
Gaps are detected and logged, never filled.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import pandas as pd

from bot.core.domain import to_ms
from bot.core.ports import LiveFeed
from bot.core.timeframes import timeframe_seconds
from bot.market.store import find_gaps

log = logging.getLogger(__name__)


class ExchangeCandleSource:
    """The CandleSource, PriceFeed and MarketCatalog of the service on a live exchange."""

    def __init__(
        self, feed: LiveFeed, on_gap: Callable[[str, str], Awaitable[object]] | None = None
    ) -> None:
        self._feed = feed
        self._on_gap = on_gap
        self._frames: dict[str, pd.DataFrame] = {}
        self._steps: dict[str, int] = {}  # pair -> its candles' length in ms
        self._depths: dict[str, int] = {}  # pair -> the most candles ever asked: kept

    def check_pair(self, pair: str) -> None:
        self._feed.check_pair(pair)

    def check_timeframe(self, pair: str, timeframe: str) -> None:
        self._feed.check_pair(pair)
        self._feed.check_timeframe(timeframe)

    async def price(self, pair: str, now: datetime) -> float:
        return await self._feed.fetch_price(pair)

    async def fill_time(self, pair: str, now: datetime) -> datetime:
        return now

    async def candle_after(self, pair: str, since: datetime, now: datetime) -> pd.Series | None:
        """From the candles the service fetched for its ticks (the pair's run timeframe)."""
        frame, step = self._frames.get(pair), self._steps.get(pair)
        if frame is None or step is None:
            return None
        stamps = frame["timestamp"]
        chosen = frame[(stamps >= to_ms(since)) & (stamps + step <= to_ms(now))]
        return None if chosen.empty else chosen.iloc[0]

    async def volume(self, pair: str, now: datetime) -> float | None:
        """The last closed candle's: the forming one's is not known until it closes."""
        frame = self._frames.get(pair)
        return float(frame["volume"].iloc[-1]) if frame is not None and len(frame) else None

    async def closed_candles(
        self, pair: str, now: datetime, limit: int, timeframe: str | None = None
    ) -> pd.DataFrame:
        """The last ``limit`` candles closed by ``now``, fetching only what is new."""
        if timeframe is None:
            raise ValueError("an exchange serves every timeframe: say which")
        step = timeframe_seconds(timeframe) * 1000
        self._steps[pair] = step
        frame = kept = self._frames.get(pair)
        if frame is not None and limit > self._depths.get(pair, 0):
            # Asked deeper than it was fetched (a paused or held pair is fetched a few candles
            # for its stops; resumed, its strategy wants its whole window): fetched again,
            # once, rather than handing the strategy a short history until the window refills.
            frame = None
        depth = self._depths[pair] = max(self._depths.get(pair, 0), limit)
        since = (
            int(frame["timestamp"].iloc[-1]) + step
            if frame is not None and len(frame)
            else to_ms(now) - (limit + 1) * step
        )
        pages = []
        while since + step <= to_ms(now):
            page = await self._feed.fetch_candles(pair, timeframe, since)
            page = page[(page["timestamp"] >= since) & (page["timestamp"] + step <= to_ms(now))]
            if page.empty and since + (span := self._feed.ohlcv_limit * step) + step <= to_ms(now):
                # Nothing in this page's span: a venue that answers a bounded span of time (OKX)
                # has none before a pair's first candle, where later spans have them.
                since += span
                continue
            if page.empty:
                break
            pages.append(page)
            since = int(page["timestamp"].iloc[-1]) + step
        if pages:
            new = pd.concat(pages, ignore_index=True)
            joined = new if frame is None else pd.concat([frame, new], ignore_index=True)
            await self._report_gaps(pair, joined, frame, step)
            frame = joined.iloc[-depth:].reset_index(drop=True)
            self._frames[pair] = frame
        frame = kept if frame is None else frame  # nothing fetched: what it had
        if frame is None:
            return pd.DataFrame(columns=["timestamp"])
        return frame if len(frame) <= limit else frame.iloc[-limit:].reset_index(drop=True)

    async def _report_gaps(
        self, pair: str, joined: pd.DataFrame, before: pd.DataFrame | None, step: int
    ) -> None:
        start = max(0, len(before) - 1) if before is not None else 0
        for gap in find_gaps(joined["timestamp"].to_numpy()[start:], step):
            text = (
                f"{pair}: {gap.missing} candle(s) missing between {gap.after:%Y-%m-%d %H:%M}"
                f" and {gap.before:%Y-%m-%d %H:%M} UTC; not filled"
            )
            log.warning(text)
            if self._on_gap:
                await self._on_gap(pair, text)

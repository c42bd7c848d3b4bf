"""Stored candles: download from an exchange (resumable), import from files, list with gaps.

Gaps are found and reported, never filled: a missing candle stays missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from bot.core.domain import from_ms, to_ms
from bot.core.errors import UserInputError
from bot.core.ports import CandleFeed, CandleRepository
from bot.core.timeframes import timeframe_seconds
from bot.market.candle_files import validate_candles


@dataclass(frozen=True, slots=True)
class Gap:
    after: datetime  # open time of the last candle before the gap
    before: datetime  # open time of the first candle after it
    missing: int


@dataclass(frozen=True, slots=True)
class SeriesReport:
    exchange: str
    pair: str
    timeframe: str
    count: int
    first: datetime | None
    last: datetime | None
    gaps: list[Gap]
    added: int = 0  # candles this run stored that were not stored before


def find_gaps(stamps: npt.NDArray[np.int64], step_ms: int) -> list[Gap]:
    """Places where consecutive open times are more than one step apart."""
    steps = np.diff(stamps)
    return [
        Gap(from_ms(int(stamps[i])), from_ms(int(stamps[i + 1])), int(steps[i] // step_ms) - 1)
        for i in np.flatnonzero(steps > step_ms)
    ]


async def describe(
    repo: CandleRepository, exchange: str, pair: str, timeframe: str, added: int = 0
) -> SeriesReport:
    stamps = await repo.timestamps(exchange, pair, timeframe)
    return SeriesReport(
        exchange,
        pair,
        timeframe,
        len(stamps),
        from_ms(int(stamps[0])) if len(stamps) else None,
        from_ms(int(stamps[-1])) if len(stamps) else None,
        find_gaps(stamps, timeframe_seconds(timeframe) * 1000),
        added,
    )


async def download(
    feed: CandleFeed,
    repo: CandleRepository,
    *,
    pair: str,
    timeframe: str,
    since: datetime,
    until: datetime | None,
    now: datetime,
    progress: Callable[[int], object] = lambda _: None,
) -> SeriesReport:
    """Fetch closed candles in [since, until) page by page, resuming after what is stored."""
    feed.check_pair(pair)
    feed.check_timeframe(timeframe)
    step = timeframe_seconds(timeframe) * 1000
    end = min(to_ms(until) if until else to_ms(now), to_ms(now) - step + 1)  # closed only
    if to_ms(since) >= end:
        raise UserInputError(f"nothing to download: {since:%Y-%m-%d %H:%M} is not before the end")
    cursor = to_ms(since)
    stored_last = await repo.last_timestamp(feed.name, pair, timeframe)
    if stored_last is not None and stored_last >= cursor:
        cursor = stored_last + step  # resume
    added = 0
    while cursor < end:
        page = await feed.fetch_candles(pair, timeframe, cursor)
        page = page[(page["timestamp"] >= cursor) & (page["timestamp"] < end)]
        if page.empty:  # a hole longer than a page, or the end of the exchange's history
            cursor += step * feed.ohlcv_limit
            progress(step * feed.ohlcv_limit)
            continue
        validate_candles(page, f"{feed.name} {pair} {timeframe} page from {from_ms(cursor)}")
        added += await repo.add_frame(feed.name, pair, timeframe, page)
        next_cursor = int(page["timestamp"].iloc[-1]) + step
        progress(min(next_cursor, end) - cursor)
        cursor = next_cursor
    return await describe(repo, feed.name, pair, timeframe, added)

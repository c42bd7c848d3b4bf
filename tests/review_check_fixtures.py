"""Strategies that get past `pairpilot strategy check` (review of issue 18): each peeks,
depends on something the live engine hands it differently, or is not deterministic across
processes, the way a careless user's code is, and each passes the check on the sample candles
at main 12bf92b. The tests in tests/unit/test_review_check_*.py assert the check catches them.
"""

from __future__ import annotations

import time
from typing import ClassVar

import pandas as pd

from strategies.base import (
    ParamSpec,
    Strategy,
    crossed_above,
    crossed_below,
    crossings,
    signal_series,
)


class _Attack(Strategy):
    description = "a review fixture"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self) -> int:
        return 51


def sma_cross(close: pd.Series) -> tuple[pd.Series, pd.Series]:
    """SMA(10) crossing SMA(50): (crossed above, crossed below)."""
    fast, slow = close.rolling(10).mean(), close.rolling(50).mean()
    return crossed_above(fast, slow), crossed_below(fast, slow)


class SkipDrops(_Attack):
    """An SMA cross that skips an entry when the NEXT candle drops more than 0.5%: a filter
    on the future. On the whole history it drops the losing entries; live the next candle is
    unknown, ``NaN < x`` is False, the negation True, and every entry is taken. The signal
    exists live and not in the backtest, on candles no prefix of the check ends at."""

    name = "review_skip_drops"

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        up, down = sma_cross(close)
        drops = close.shift(-1) < close * 0.995
        return signal_series(up & ~drops, down)


PLAIN_CROSS_NAME = "review_plain_cross"


class PlainCross(_Attack):
    """What SkipDrops does live: the same cross without the filter."""

    name = PLAIN_CROSS_NAME

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        up, down = sma_cross(candles["close"])
        return signal_series(up, down)


_LINES: dict[int, pd.Series] = {}


class CachedCentred(_Attack):
    """Crosses a centred SMA(9) (it peeks four candles ahead), computed once per series and
    reused for a shorter frame of the same series: a "don't recompute" cache keyed on the
    first candle. The check computes the whole history first, then prefixes of it on the same
    process: every prefix is served from the cache and equals the whole history. Live, each
    tick's window starts one candle later: no hit, and the last four candles see no future."""

    name = "review_cached_centred"

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        key = int(candles["timestamp"].iloc[0])
        line = _LINES.get(key)
        if (
            line is None
            or len(line) < len(candles)
            or line.index[len(candles) - 1] != (candles.index[-1])
        ):
            line = candles["close"].rolling(9, center=True, min_periods=1).mean()
            _LINES[key] = line
        return crossings(candles["close"], line.iloc[: len(candles)])


class SetOrder(_Attack):
    """Picks its SMA length from the first of a set of names: a set's order of strings
    depends on the process's hash seed (PYTHONHASHSEED), the same within one process."""

    name = "review_set_order"

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        first = next(iter({"fast", "slow"}))
        length = 10 if first == "fast" else 20
        return crossings(close, close.rolling(length).mean())


class HourlySeed(_Attack):
    """Decides by the clock's hour: two runs within one hour agree."""

    name = "review_hourly_seed"

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        # The hour's parity picks the length: a shift by an odd number of hours exactly (one of
        # the check's is 25 h) changes it. (A seeded draw of 45 lengths gave the same one for h
        # and h + 25 in about one hour of 45: the test failed then.)
        hour = int(time.time() // 3600)
        close = candles["close"]
        length = 10 if hour % 2 == 0 else 20
        return crossings(close, close.rolling(length).mean())


class ByIndexLabel(_Attack):
    """Samples a "4h close" out of 1h candles by the frame's index label (``index % 4``).
    The check's prefixes and cuts keep the whole history's labels; live frames are
    re-indexed from 0 at every tick (bot/market/live_source.py), so the phase moves each
    candle and the strategy decides on other candles than in its backtest."""

    name = "review_by_index"

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        four_hourly = close.where(candles.index % 4 == 3).ffill()
        return crossings(four_hourly, close.rolling(40).mean())


class EmaTrend(Strategy):
    """Long above EMA(length), flat below; declares 100 candles of warm-up and no smoothing
    length, so its live window is 100 candles whatever the length."""

    name = "review_ema_trend"
    description = "a review fixture"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("length", int, 10, 2, 200, "EMA length, in candles"),
    )

    @property
    def warmup(self) -> int:
        return 100

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        return crossings(close, close.ewm(span=int(self.params["length"]), adjust=False).mean())

"""Misbehaving strategies for the strategy check's tests (issue 18): each breaks one rule of
the interface (strategies/base.py) the way a user's code does."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pandas_ta as ta

from strategies.base import ENTER, EXIT, ParamSpec, Strategy, crossed_above, crossings


class _Fixture(Strategy):
    description = "a test fixture"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self) -> int:
        return 11


class NextClose(_Fixture):
    """Decides on the next candle's close: ``shift(-1)``."""

    name = "peek_next_close"

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        return crossings(close.shift(-1), close.rolling(10).mean())


class CentredWindow(_Fixture):
    """A centred rolling mean: each value averages four candles still to come."""

    name = "peek_centred"

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        return crossings(close, close.rolling(9, center=True).mean())


class WholeSeriesMean(_Fixture):
    """Compares each close with the whole series' mean: every row knows the future."""

    name = "peek_whole_mean"

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        return crossings(close / close.mean(), pd.Series(1.0, index=candles.index))


class BackFilled(_Fixture):
    """Fills gaps in an indicator backwards (``bfill``): a missing value takes a later one."""

    name = "peek_bfill"

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        average = close.rolling(10).mean()
        sparse = average.where(candles.index % 5 == 0).bfill()
        return crossings(close, sparse)


class ShortWarmup(_Fixture):
    """Long above SMA(50), flat below, yet declares 10 candles of warm-up (it needs 50)."""

    name = "short_warmup"

    @property
    def warmup(self) -> int:
        return 10

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        above = close > close.rolling(50).mean()
        codes = np.where(above, ENTER, EXIT).astype(np.int8)
        return pd.Series(codes, index=candles.index)


class CoinFlip(_Fixture):
    """Unseeded randomness: two runs differ."""

    name = "coin_flip"

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        codes = np.random.default_rng().integers(-1, 2, len(candles)).astype(np.int8)
        return pd.Series(codes, index=candles.index)


class Garbage(_Fixture):
    """Returns one kind of garbage, chosen by ``KIND`` (set per test)."""

    name = "garbage"
    kind = "nan"

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        rsi = ta.rsi(candles["close"], length=14)
        good = pd.Series(
            np.where(crossed_above(rsi, 30.0), ENTER, 0).astype(np.int8), index=candles.index
        )
        broken: dict[str, Any] = {
            "short": good.iloc[:-1],
            "nan": good.astype(float).where(good.index != len(good) - 3),
            "inf": good.astype(float).where(good.index != 40, np.inf),
            "index": good.set_axis(good.index + 1),
            "value": good.where(good.index != 50, 2),
            "array": good.to_numpy(),
        }
        if self.kind == "raises":
            raise KeyError("vwap")
        if self.kind == "mutates":
            candles["hl2"] = (candles["high"] + candles["low"]) / 2
            return good
        result: pd.Series = broken[self.kind]
        return result


def garbage(kind: str) -> Garbage:
    strategy = Garbage()
    strategy.kind = kind
    return strategy

"""Misbehaving strategies for the strategy check's tests (issue 18): each breaks one rule of
the interface (strategies/base.py) the way a user's code does."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pandas_ta as ta

from strategies.base import (
    ENTER,
    EXIT,
    ParamSpec,
    Strategy,
    crossed_above,
    crossed_below,
    crossings,
    hold_everywhere,
    require_below,
    signal_series,
)


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


class UserTrend(Strategy):
    """A well-behaved user strategy (issue 18's parity for user code): parameters with bounds,
    two pandas-ta indicators, its own exit policy. Tests copy this class's source into a
    strategies folder and into an installed package (``user_strategy_source``), and load it
    through the real loading path; it must use only the names ``USER_HEADER`` imports."""

    name = "user_trend"
    description = "Long when the close crosses above its SMA with RSI under a cap; out on RSI."
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("length", int, 30, 5, 300, "SMA length, in candles"),
        ParamSpec("rsi_length", int, 14, 2, 100, "RSI length, in candles"),
        ParamSpec("rsi_cap", float, 70.0, 50.0, 95.0, "no entry with RSI at or above this"),
        ParamSpec("rsi_exit", float, 78.0, 55.0, 99.0, "leave when RSI crosses above this"),
        ParamSpec("rsi_floor", float, 45.0, 5.0, 50.0, "leave when RSI crosses below this"),
    )
    exit_defaults: ClassVar[dict[str, float]] = {"stop_loss": 0.015, "take_profit": 0.03}

    def check_params(self) -> None:
        require_below(self.params, "rsi_floor", "rsi_cap")
        require_below(self.params, "rsi_cap", "rsi_exit")

    @property
    def warmup(self) -> int:
        return max(int(self.params["length"]), int(self.params["rsi_length"])) + 1

    @property
    def smoothing_length(self) -> int:
        return max(int(self.params["rsi_length"]), super().smoothing_length)

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        lines = self.indicators(candles)
        if len(lines) < 2:  # pandas-ta gives None on too few candles
            return hold_everywhere(candles)
        close, sma, rsi = candles["close"], lines["SMA"], lines["RSI"]
        enter = crossed_above(close, sma) & (rsi < float(self.params["rsi_cap"]))
        leave = crossed_below(rsi, float(self.params["rsi_floor"])) | crossed_above(
            rsi, float(self.params["rsi_exit"])
        )
        return signal_series(enter, leave)

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        sma = ta.sma(candles["close"], length=int(self.params["length"]))
        rsi = ta.rsi(candles["close"], length=int(self.params["rsi_length"]))
        return {} if sma is None or rsi is None else {"SMA": sma, "RSI": rsi}


USER_HEADER = """from __future__ import annotations

from typing import ClassVar

import pandas as pd
import pandas_ta as ta

from strategies.base import (
    ParamSpec,
    Strategy,
    crossed_above,
    crossed_below,
    hold_everywhere,
    require_below,
    signal_series,
)
"""


def user_strategy_source(cls: type[Strategy] = UserTrend) -> str:
    """``cls`` as a user's file holds it: the imports, then the class's own source."""
    return f"{USER_HEADER}\n\n{inspect.getsource(cls)}"

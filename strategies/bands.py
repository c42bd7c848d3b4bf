"""Bollinger-band strategies (breakout and mean reversion) and a range-bound grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas_ta as ta

from strategies.base import (
    ParamSpec,
    Strategy,
    crossed_above,
    crossed_below,
    hold_everywhere,
    signal_series,
)

_BAND_PARAMS = (
    ParamSpec("length", int, 20, 2, 500, "moving-average length, in candles"),
    ParamSpec("std", float, 2.0, 0.5, 5.0, "band width, in standard deviations"),
)


def _bands(candles: pd.DataFrame, length: int, std: float) -> pd.DataFrame | None:
    """Lower, middle, upper band columns (pandas-ta names them by version; take by position)."""
    frame = ta.bbands(candles["close"], length=length, lower_std=std, upper_std=std)
    if frame is None:
        return None
    return frame.iloc[:, :3].set_axis(["lower", "middle", "upper"], axis=1)


class _BandStrategy(Strategy):
    """Bollinger bands over the close; subclasses say which crossings enter and exit."""

    param_specs = _BAND_PARAMS

    @property
    def warmup(self) -> int:
        return int(self.params["length"]) + 1

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        bands = _bands(candles, int(self.params["length"]), float(self.params["std"]))
        if bands is None:
            return hold_everywhere(candles)
        return signal_series(*self.decide(candles["close"], bands))

    def decide(self, close: pd.Series, bands: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """(enter, exit) flags per candle."""
        raise NotImplementedError

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        bands = _bands(candles, int(self.params["length"]), float(self.params["std"]))
        return {} if bands is None else {f"{name} band": bands[name] for name in bands}


class BollingerBreakout(_BandStrategy):
    name = "bollinger_breakout"
    description = "Long when the close breaks above the upper band; flat below the middle band."

    def decide(self, close: pd.Series, bands: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        return crossed_above(close, bands["upper"]), crossed_below(close, bands["middle"])


class BollingerReversion(_BandStrategy):
    name = "bollinger_reversion"
    description = (
        "Long when the close drops below the lower band; flat when it climbs back above "
        "the middle band."
    )

    def decide(self, close: pd.Series, bands: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        return crossed_below(close, bands["lower"]), crossed_above(close, bands["middle"])


class Grid(Strategy):
    """A single-position grid: buy each time the price falls through a grid line below the
    moving centre, sell when it climbs back over the centre. Its take-profit and stop-loss are
    the exit policy's (1% and 5% by default), whatever the spacing of the lines."""

    name = "grid"
    description = (
        "Range trading: buy when the close falls through one of `levels` lines spaced "
        "`spacing` apart below SMA(lookback); flat when it closes back above the centre. "
        "Take-profit and stop-loss are `take_profit` and `stop_loss` (default 1% and 5% from "
        "the entry), independent of `spacing`."
    )
    param_specs = (
        ParamSpec("lookback", int, 48, 5, 1000, "candles in the moving centre of the range"),
        ParamSpec("levels", int, 3, 1, 20, "grid lines below the centre"),
        ParamSpec("spacing", float, 0.01, 0.001, 0.2, "distance between lines, fraction"),
    )
    exit_defaults = {"take_profit": 0.01, "stop_loss": 0.05}

    @property
    def warmup(self) -> int:
        return int(self.params["lookback"]) + 1

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        centre = ta.sma(candles["close"], length=int(self.params["lookback"]))
        if centre is None:
            return hold_everywhere(candles)
        close = candles["close"]
        spacing = float(self.params["spacing"])
        enter = pd.Series(np.zeros(len(candles), dtype=bool), index=candles.index)
        for level in range(1, int(self.params["levels"]) + 1):
            enter |= crossed_below(close, centre * (1 - level * spacing))
        return signal_series(enter, crossed_above(close, centre))

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        centre = ta.sma(candles["close"], length=int(self.params["lookback"]))
        if centre is None:
            return {}
        spacing = float(self.params["spacing"])
        lines = {"centre": centre}
        for level in range(1, int(self.params["levels"]) + 1):
            lines[f"line {level}"] = centre * (1 - level * spacing)
        return lines

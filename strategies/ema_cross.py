"""Moving-average crossovers: long when the fast average crosses above the slow one."""

from __future__ import annotations

import pandas as pd
import pandas_ta as ta

from strategies.base import ParamSpec, Strategy, crossings, hold_everywhere, require_below


class _Crossover(Strategy):
    def check_params(self) -> None:
        require_below(self.params, "fast", "slow")

    @property
    def warmup(self) -> int:
        return int(self.params["slow"]) + 1

    def average(self, close: pd.Series, length: int) -> pd.Series | None:
        raise NotImplementedError

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        lines = self.indicators(candles)
        if not lines:  # pandas-ta returns None when the series is too short
            return hold_everywhere(candles)
        fast, slow = lines.values()
        return crossings(fast, slow)

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        kind = self.name.split("_")[0].upper()
        fast = self.average(candles["close"], int(self.params["fast"]))
        slow = self.average(candles["close"], int(self.params["slow"]))
        if fast is None or slow is None:
            return {}
        return {f"{kind} {self.params['fast']}": fast, f"{kind} {self.params['slow']}": slow}


class EmaCross(_Crossover):
    name = "ema_cross"
    description = "Long when EMA(fast) crosses above EMA(slow); flat when it crosses below."
    param_specs = (
        ParamSpec("fast", int, 12, 2, 200, "fast EMA length, in candles"),
        ParamSpec("slow", int, 26, 3, 500, "slow EMA length, in candles"),
    )

    def average(self, close: pd.Series, length: int) -> pd.Series | None:
        return ta.ema(close, length=length)

    @property
    def smoothing_length(self) -> int:
        return max(int(self.params["slow"]), super().smoothing_length)


class SmaCross(_Crossover):
    name = "sma_cross"
    description = "Long when SMA(fast) crosses above SMA(slow); flat when it crosses below."
    param_specs = (
        ParamSpec("fast", int, 20, 2, 200, "fast SMA length, in candles"),
        ParamSpec("slow", int, 50, 3, 500, "slow SMA length, in candles"),
    )

    def average(self, close: pd.Series, length: int) -> pd.Series | None:
        return ta.sma(close, length=length)

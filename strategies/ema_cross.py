"""EMA crossover: enter when the fast EMA crosses above the slow one, exit when it crosses below."""

from __future__ import annotations

import pandas as pd
import pandas_ta as ta

from strategies.base import ParamSpec, Strategy, StrategyConfigError, crossings

# An EMA seeded this many slow periods back equals a full-history EMA to float precision:
# the seed's weight (1 - 2/(n+1))**(20*(n+1)) is below 1e-17 for every n.
_SETTLE_PERIODS = 20


class EmaCross(Strategy):
    name = "ema_cross"
    description = "Long when EMA(fast) crosses above EMA(slow); flat when it crosses below."
    param_specs = (
        ParamSpec("fast", int, 12, 2, 200, "fast EMA length, in candles"),
        ParamSpec("slow", int, 26, 3, 500, "slow EMA length, in candles"),
    )

    def check_params(self) -> None:
        if self.params["fast"] >= self.params["slow"]:
            raise StrategyConfigError(
                f"fast={self.params['fast']} must be below slow={self.params['slow']}"
            )

    @property
    def warmup(self) -> int:
        return int(self.params["slow"]) + 1

    @property
    def history(self) -> int:
        return _SETTLE_PERIODS * (int(self.params["slow"]) + 1)

    def signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        fast = ta.ema(close, length=self.params["fast"])
        slow = ta.ema(close, length=self.params["slow"])
        if fast is None or slow is None:  # pandas-ta returns None when the series is too short
            return pd.Series(0, index=candles.index, dtype="int8")
        return crossings(fast, slow)

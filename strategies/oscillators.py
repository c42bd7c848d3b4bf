"""Oscillator strategies: RSI oversold/overbought and the MACD signal-line cross."""

from __future__ import annotations

import pandas as pd
import pandas_ta as ta

from strategies.base import (
    ParamSpec,
    Strategy,
    crossed_above,
    crossed_below,
    crossings,
    hold_everywhere,
    require_below,
    signal_series,
)


class RsiReversal(Strategy):
    name = "rsi"
    description = (
        "Long when RSI climbs back above the oversold level; flat when it falls back below "
        "the overbought level."
    )
    param_specs = (
        ParamSpec("length", int, 14, 2, 100, "RSI length, in candles"),
        ParamSpec("oversold", float, 30.0, 1.0, 50.0, "RSI level that counts as oversold"),
        ParamSpec("overbought", float, 70.0, 50.0, 99.0, "RSI level that counts as overbought"),
    )

    def check_params(self) -> None:
        require_below(self.params, "oversold", "overbought")

    @property
    def warmup(self) -> int:
        return int(self.params["length"]) + 2

    @property
    def smoothing_length(self) -> int:
        return max(int(self.params["length"]), super().smoothing_length)

    indicator_panel = "lower"

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        rsi = ta.rsi(candles["close"], length=int(self.params["length"]))
        if rsi is None:
            return {}
        level = pd.Series(1.0, index=candles.index)
        return {
            f"RSI {self.params['length']}": rsi,
            "oversold": level * self.params["oversold"],
            "overbought": level * self.params["overbought"],
        }

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        rsi = ta.rsi(candles["close"], length=int(self.params["length"]))
        if rsi is None:
            return hold_everywhere(candles)
        return signal_series(
            crossed_above(rsi, self.params["oversold"]),
            crossed_below(rsi, self.params["overbought"]),
        )


class MacdCross(Strategy):
    name = "macd"
    description = "Long when MACD crosses above its signal line; flat when it crosses below."
    param_specs = (
        ParamSpec("fast", int, 12, 2, 100, "fast EMA length"),
        ParamSpec("slow", int, 26, 3, 300, "slow EMA length"),
        ParamSpec("signal", int, 9, 2, 100, "signal-line EMA length"),
    )

    def check_params(self) -> None:
        require_below(self.params, "fast", "slow")

    @property
    def warmup(self) -> int:
        return int(self.params["slow"]) + int(self.params["signal"]) + 1

    @property
    def smoothing_length(self) -> int:
        own = int(self.params["slow"]) + int(self.params["signal"])
        return max(own, super().smoothing_length)

    indicator_panel = "lower"

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        frame = ta.macd(
            candles["close"],
            fast=int(self.params["fast"]),
            slow=int(self.params["slow"]),
            signal=int(self.params["signal"]),
        )
        if frame is None:
            return {}
        return {"MACD": frame.iloc[:, 0], "signal": frame.iloc[:, 2]}  # columns by position

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        lines = self.indicators(candles)
        if not lines:
            return hold_everywhere(candles)
        return crossings(lines["MACD"], lines["signal"])

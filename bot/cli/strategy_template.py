"""The file `pairpilot strategy new NAME` writes: a small, working, commented strategy."""

from __future__ import annotations

TEMPLATE = '''"""{name}: a pairpilot user strategy (its interface and rules: docs/strategies.md).

The rules, which make a backtest and live trading take the same decisions:
- closed candles only: the signal on candle i may use candles 0..i, never later ones
  (no shift(-1), no centred rolling windows, nothing computed over the whole history);
- vectorised: compute_signals returns the whole series at once, one code per candle;
- no I/O, no clock, no randomness: the same candles and parameters give the same signals.

Try it:  pairpilot backtest --config YOUR_CONFIG --strategy {name} --data CANDLES.csv.gz
         pairpilot strategy list --config YOUR_CONFIG
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import pandas_ta as ta

from strategies.base import ParamSpec, Strategy, crossings, hold_everywhere


class {cls}(Strategy):
    # The name configs and commands use ([[pairs]] strategy = "{name}", --strategy {name});
    # it must differ from every other strategy's, built-in or user.
    name = "{name}"
    description = "Long when the close crosses above its SMA(length); flat when it crosses below."
    # Every tunable parameter: name, type (int or float), default, lowest, highest, help.
    # A value outside the bounds is refused with an error naming the parameter. The exit
    # policy's parameters (stop_loss, take_profit, trailing_stop, atr_stop, atr_length,
    # entry_offset) come with every strategy; exit_defaults below sets their defaults.
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("length", int, 20, 2, 400, "SMA length, in candles"),
    )
    exit_defaults: ClassVar[dict[str, float]] = {{"stop_loss": 0.05}}  # 5% below the entry

    @property
    def warmup(self) -> int:
        """Candles before the first signal can appear: the SMA needs `length` closes, a
        crossing one more. Candles before it are HOLD whatever compute_signals says."""
        return int(self.params["length"]) + 1

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        """ENTER (1), EXIT (-1) or HOLD (0) per candle, as int8, on the index of `candles`
        (columns: open, high, low, close, volume; one row per closed candle)."""
        line = self.indicators(candles).get("SMA")
        if line is None:  # pandas-ta gives None when there are fewer candles than `length`
            return hold_everywhere(candles)
        return crossings(candles["close"], line)

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        """The lines the strategy decides on, by label (drawn on charts)."""
        sma = ta.sma(candles["close"], length=int(self.params["length"]))
        return {{}} if sma is None else {{"SMA": sma}}
'''


def strategy_source(name: str) -> str:
    """The template for a strategy called ``name`` (a valid strategy name)."""
    cls = "".join(part.capitalize() for part in name.split("_") if part)
    return TEMPLATE.format(name=name, cls=cls)

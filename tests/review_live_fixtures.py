"""Hostile user strategies for the live review (tests/integration/test_review_live_*.py) and
the isolation tests (test_strategy_isolation.py shares the preamble and "steady"):
written into a strategies folder and loaded through the real loader, as a user's would be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.app.strategy_loading import load_strategies
from strategies import Strategy, install, strategy_registry

# What every strategy file of these tests starts with: the imports and the six-hour signal.
SIX_HOURLY = """from typing import ClassVar

import numpy as np
import pandas as pd

from strategies.base import ParamSpec, Strategy


def every_six_hours(candles: pd.DataFrame) -> pd.Series:
    hour = (candles["timestamp"] // 3_600_000) % 6
    codes = np.where(hour == 0, 1, np.where(hour == 3, -1, 0)).astype(np.int8)
    return pd.Series(codes, index=candles.index)
"""
# "steady": enters every 6th hour, exits 3 hours later, never breaks.
STEADY = """

class Steady(Strategy):
    name = "steady"
    description = "every six hours"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self) -> int:
        return 2

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        return every_six_hours(candles)
"""

# "hostile" enters every 6th hour and exits 3 hours later, and breaks the way ``mode`` says
# from the candle ``from_ms`` on; ``calls`` counts compute_signals.
HOSTILE = (
    "\nimport time\n"
    + SIX_HOURLY
    + '''

class Unprintable(Exception):
    """An exception whose message cannot be made: str() raises."""

    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class Hostile(Strategy):
    name = "hostile"
    description = "every six hours; breaks as told"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()
    calls = 0
    mode = ""
    from_ms = 0

    @property
    def warmup(self) -> int:
        return 2

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        type(self).calls += 1
        codes = every_six_hours(candles)
        if not self.mode or int(candles["timestamp"].iloc[-1]) < self.from_ms:
            return codes
        mode = self.mode
        if mode == "system_exit":
            raise SystemExit(3)
        if mode == "keyboard_interrupt":
            raise KeyboardInterrupt
        if mode == "generator_exit":
            raise GeneratorExit
        if mode == "unprintable":
            raise Unprintable()
        if mode == "huge":
            raise ValueError("x" * 200_000)  # a frame's repr, say; measured at 10 MB too
        if mode == "slow":  # a heavy indicator, or a blocking call
            type(self).slow_started = True
            time.sleep(3.0)
            return codes
        if mode == "markup":
            raise ValueError("<b>PAY</b> <a href='https://evil.example'>here</a> *bold* _x_ `c`")
        if mode == "datetime_stamps":  # a common convenience, done in place on its input
            candles["timestamp"] = pd.to_datetime(candles["timestamp"], unit="ms")
            return codes
        if mode == "smooth_in_place":  # de-noising the input, in place
            candles["close"] = candles["close"].ewm(span=5).mean()
            candles["low"] = candles["low"].ewm(span=5).mean()
            return codes
        raise AssertionError(mode)
'''
    + STEADY
)


def load_folder(folder: Path, files: dict[str, str]) -> None:
    """Write ``files`` (name: source) into ``folder`` and install what it loads."""
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    loaded = load_strategies(folder, explicit=True)
    assert not loaded.problems, loaded.problems
    install(loaded.registry)


def strategy_class(name: str) -> Any:
    """The installed class of ``name`` (Any: the tests read and set its own attributes)."""
    cls: type[Strategy] = strategy_registry()[name]
    return cls


# A user strategy trading as ema_cross does, counting its calls (what ran is read from
# behaviour); ``{version}`` makes each version its own source.
COUNTING = """
from strategies.ema_cross import EmaCross

VERSION = "{version}"


class Counting(EmaCross):
    name = "{name}"
    calls = 0

    def compute_signals(self, candles):
        type(self).calls += 1
        return super().compute_signals(candles)
"""


def counting(version: str, name: str = "mine") -> str:
    return COUNTING.format(version=version, name=name)

"""The strategy interface: a pure function of closed candles, parameters declared with bounds."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, SupportsFloat, SupportsInt

import numpy as np
import pandas as pd
import pandas_ta as ta

ENTER = 1
EXIT = -1
HOLD = 0


class StrategyConfigError(ValueError):
    """A strategy was asked for with a parameter it does not accept."""


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One tunable parameter: its type, default and inclusive bounds."""

    name: str
    kind: type[int] | type[float]
    default: int | float
    minimum: int | float
    maximum: int | float
    help: str = ""

    def coerce(self, raw: object) -> int | float:
        """Turn a config or command-line value into this parameter's type, within bounds."""
        value = self._parse(raw)
        if not self.minimum <= value <= self.maximum:
            raise StrategyConfigError(
                f"parameter {self.name}={value} is out of bounds: expected "
                f"{self.minimum} <= {self.name} <= {self.maximum}"
            )
        return value

    def _parse(self, raw: object) -> int | float:
        if isinstance(raw, bool):
            raise StrategyConfigError(f"parameter {self.name}={raw!r}: expected a number")
        try:
            if self.kind is int:
                if isinstance(raw, float) and not raw.is_integer():
                    raise ValueError
                if isinstance(raw, str):
                    return int(raw.strip())
                if not isinstance(raw, SupportsInt):
                    raise TypeError
                return int(raw)
            if not isinstance(raw, str | SupportsFloat):
                raise TypeError
            value = float(raw)
        except (TypeError, ValueError):
            expected = "a whole number" if self.kind is int else "a number"
            raise StrategyConfigError(
                f"parameter {self.name}={raw!r}: expected {expected}"
            ) from None
        if not np.isfinite(value):
            raise StrategyConfigError(f"parameter {self.name}={raw!r}: expected a finite number")
        return value


@dataclass(frozen=True, slots=True)
class ExitPolicy:
    """Protective exits checked inside every candle while a position is open; 0 means off.

    Fractions are of the entry price: stop_loss=0.05 exits 5% below it, take_profit=0.1 10%
    above it, trailing_stop=0.03 3% below the highest high since entry. atr_stop=2 exits two
    ATR(atr_length) below the entry, the ATR taken on the candle that gave the entry signal.
    """

    stop_loss: float = 0.0
    take_profit: float = 0.0
    trailing_stop: float = 0.0
    atr_stop: float = 0.0
    atr_length: int = 14
    entry_offset: float = 0.0  # > 0: enter by a limit buy this far under the close (one candle)


EXIT_PARAM_SPECS = (
    ParamSpec("stop_loss", float, 0.0, 0.0, 0.5, "stop-loss below entry, fraction (0 = off)"),
    ParamSpec("take_profit", float, 0.0, 0.0, 10.0, "take-profit above entry, fraction (0 = off)"),
    ParamSpec("trailing_stop", float, 0.0, 0.0, 0.5, "trailing stop below the peak (0 = off)"),
    ParamSpec("atr_stop", float, 0.0, 0.0, 20.0, "stop this many ATRs below entry (0 = off)"),
    ParamSpec("atr_length", int, 14, 2, 200, "ATR length for atr_stop, in candles"),
    ParamSpec(
        "entry_offset",
        float,
        0.0,
        0.0,
        0.05,
        "enter by a limit buy this fraction under the close, good for one candle (0 = at market)",
    ),
)


# What the backtest, `strategy check` and the live engine call on every strategy: defined by
# the interface alone, so what trades live runs the code that was checked and backtested. A
# subclass (built-in or user) implements compute_signals, warmup and the optional hooks.
FINAL = (
    "__init__",
    "__init_subclass__",
    "__getattribute__",
    "__setattr__",
    "specs",
    "exit_policy",
    "atr",
    "history",
    "ready_after",
    "signals",
    "remembered_signals",
)


class Strategy(ABC):
    """A pure function of a candle frame: no I/O, no clock, no state beyond its parameters.

    ``signals`` returns, for every candle, ENTER, EXIT or HOLD decided once that candle has
    closed. Row i may depend only on rows <= i (tests check this on real data), which is what
    lets the backtester compute the whole series at once and the live engine read its last row
    and still take the same decisions.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    param_specs: ClassVar[tuple[ParamSpec, ...]]
    exit_defaults: ClassVar[Mapping[str, float]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        redefined = redefined_finals(cls)
        if redefined:
            raise TypeError("; ".join(redefined))

    def __setattr__(self, name: str, value: object) -> None:
        if name in FINAL:  # an instance attribute would hide the interface's own
            raise AttributeError(f"{type(self).__name__}.{name} is the interface's own")
        super().__setattr__(name, value)

    @classmethod
    def specs(cls) -> tuple[ParamSpec, ...]:
        """Every parameter: the strategy's own, then the exit policy's (with its defaults)."""
        exits = tuple(
            dataclasses.replace(spec, default=cls.exit_defaults.get(spec.name, spec.default))
            for spec in EXIT_PARAM_SPECS
        )
        return cls.param_specs + exits

    def __init__(self, params: Mapping[str, object] | None = None) -> None:
        given = dict(params or {})
        specs = {spec.name: spec for spec in self.specs()}
        unknown = sorted(set(given) - set(specs))
        if unknown:
            raise StrategyConfigError(
                f"{self.name} has no parameter {', '.join(unknown)}; "
                f"it takes {', '.join(specs) or 'none'}"
            )
        self.params: dict[str, Any] = {
            name: spec.coerce(given[name]) if name in given else spec.default
            for name, spec in specs.items()
        }
        self.check_params()
        self._remembered: tuple[pd.DataFrame, pd.Series] | None = None

    def check_params(self) -> None:  # noqa: B027  (optional hook, not abstract)
        """Reject parameter combinations that are each in bounds but make no sense together."""

    @property
    def exit_policy(self) -> ExitPolicy:
        return ExitPolicy(
            stop_loss=float(self.params["stop_loss"]),
            take_profit=float(self.params["take_profit"]),
            trailing_stop=float(self.params["trailing_stop"]),
            atr_stop=float(self.params["atr_stop"]),
            atr_length=int(self.params["atr_length"]),
            entry_offset=float(self.params["entry_offset"]),
        )

    def atr(self, candles: pd.DataFrame) -> pd.Series:
        """ATR(atr_length) per candle (NaN until it exists), for the ATR-multiple stop."""
        length = int(self.params["atr_length"])
        values = ta.atr(candles["high"], candles["low"], candles["close"], length=length)
        if values is None:
            return pd.Series(np.nan, index=candles.index)
        return values

    @property
    def history(self) -> int:
        """Candles to hand the strategy live so its indicators equal a full-history run.

        Exponential smoothing (EMA, RSI, ATR) forgets its seed after about 20 lengths:
        (1 - 2/(n+1))**(20*(n+1)) < 1e-17, below float precision.
        """
        return max(self.warmup, 20 * (self.smoothing_length + 1))

    @property
    def smoothing_length(self) -> int:
        """The longest exponential smoothing the strategy uses (ATR included when on)."""
        return int(self.params["atr_length"]) if self.params["atr_stop"] else 0

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Candles needed before the first signal can appear."""

    def signals(self, candles: pd.DataFrame) -> pd.Series:
        """ENTER / EXIT / HOLD per candle (int8), aligned with ``candles``'s index.

        The one warm-up rule, for the backtest and the live engine alike: a candle decides only
        once ``ready_after`` candles have closed (itself included); before that it is HOLD,
        whatever the indicators say (pandas-ta's RSI, for one, has values from the second).
        """
        codes = self.compute_signals(candles)
        if self.ready_after > 1 and len(codes):
            codes = codes.copy()
            codes.iloc[: self.ready_after - 1] = HOLD
        return codes

    def remembered_signals(self, candles: pd.DataFrame) -> pd.Series:
        """``signals`` of the very frame object last asked about, computed once: the live
        engine and its paper twin decide on the frame a tick fetched (bot/trading/twin.py),
        which nothing changes in between. The strategy computes on a copy: user code changing
        its input in place (``candles["close"] = ...``) must not change the candles the tick
        trades on, nor the candle source's cache the next ticks read (~20 us for 700 rows,
        bench/strategy_input_copy.py)."""
        if self._remembered is None or self._remembered[0] is not candles:
            self._remembered = (candles, self.signals(candles.copy()))
        return self._remembered[1]

    @property
    def ready_after(self) -> int:
        """Candles before the first decision: the strategy's warm-up, or the ATR's when the
        ATR stop is on and needs longer (an entry must never run without the stop it was
        configured with)."""
        atr = int(self.params["atr_length"]) if self.params["atr_stop"] else 0
        return max(self.warmup, atr)

    @abstractmethod
    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        """The strategy's own ENTER / EXIT / HOLD codes (int8), before the warm-up rule."""

    # Where the indicators are drawn: over the price, or in a panel of their own (oscillators).
    indicator_panel = "price"

    def indicators(self, candles: pd.DataFrame) -> dict[str, pd.Series]:
        """The lines the strategy decides on, by label, for charts (empty when too short)."""
        return {}


def redefined_finals(cls: type) -> list[str]:
    """Why ``cls`` may not be a strategy: each FINAL member a class of its MRO above Strategy
    defines, with its file and line (empty: none)."""
    found = []
    for klass in cls.__mro__[: cls.__mro__.index(Strategy)]:
        for name in FINAL:
            if name in vars(klass):
                found.append(
                    f"{klass.__qualname__}.{name} ({_where(vars(klass)[name], klass)}) "
                    f"redefines Strategy.{name}, which the backtest, the check and live trading "
                    "call as the interface defines it: implement compute_signals and warmup "
                    "instead (docs/strategies.md, The interface)"
                )
    return found


def _where(member: object, klass: type) -> str:
    function = getattr(member, "fget", None) or getattr(member, "__func__", member)
    code = getattr(function, "__code__", None)
    if code is None:
        return klass.__module__
    return f"{code.co_filename}:{code.co_firstlineno}"


def require_below(params: Mapping[str, Any], low: str, high: str) -> None:
    """Refuse parameters where ``low`` is not below ``high`` (a fast length above a slow one)."""
    if params[low] >= params[high]:
        raise StrategyConfigError(f"{low}={params[low]} must be below {high}={params[high]}")


def crossings(fast: pd.Series, slow: pd.Series) -> pd.Series:
    """ENTER where ``fast`` crosses above ``slow``, EXIT where it crosses below."""
    return signal_series(crossed_above(fast, slow), crossed_below(fast, slow))


def crossed_above(series: pd.Series, level: pd.Series | float) -> pd.Series:
    """True on the candle where ``series`` goes from at or below ``level`` to above it."""
    spread = series - level
    return (spread > 0) & (spread.shift(1) <= 0)


def crossed_below(series: pd.Series, level: pd.Series | float) -> pd.Series:
    spread = series - level
    return (spread < 0) & (spread.shift(1) >= 0)


def signal_series(enter: pd.Series, exit_: pd.Series) -> pd.Series:
    """ENTER/EXIT/HOLD codes; a candle that is both is HOLD (the strategy cannot decide)."""
    codes = np.where(enter & ~exit_, ENTER, np.where(exit_ & ~enter, EXIT, HOLD))
    return pd.Series(codes.astype(np.int8), index=enter.index)


def hold_everywhere(candles: pd.DataFrame) -> pd.Series:
    """The signal series of a strategy whose indicators do not exist yet."""
    return pd.Series(np.zeros(len(candles), dtype=np.int8), index=candles.index)

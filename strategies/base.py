"""The strategy interface: a pure function of closed candles, parameters declared with bounds."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

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
                f"parameter {self.name}={raw!r} is out of bounds: expected "
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
                return int(raw) if not isinstance(raw, str) else int(raw.strip())
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            expected = "a whole number" if self.kind is int else "a number"
            raise StrategyConfigError(
                f"parameter {self.name}={raw!r}: expected {expected}"
            ) from None
        if not np.isfinite(value):
            raise StrategyConfigError(f"parameter {self.name}={raw!r}: expected a finite number")
        return value


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

    def __init__(self, params: Mapping[str, object] | None = None) -> None:
        given = dict(params or {})
        specs = {spec.name: spec for spec in self.param_specs}
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

    def check_params(self) -> None:  # noqa: B027  (optional hook, not abstract)
        """Reject parameter combinations that are each in bounds but make no sense together."""

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Candles needed before the first signal can appear."""

    @property
    def history(self) -> int:
        """Candles to hand the strategy live so its indicators equal a full-history run."""
        return self.warmup

    @abstractmethod
    def signals(self, candles: pd.DataFrame) -> pd.Series:
        """ENTER / EXIT / HOLD per candle (int8), aligned with ``candles``'s index."""


def crossings(fast: pd.Series, slow: pd.Series) -> pd.Series:
    """ENTER where ``fast`` crosses above ``slow``, EXIT where it crosses below."""
    spread = fast - slow
    previous = spread.shift(1)
    result = np.where(
        (spread > 0) & (previous <= 0), ENTER, np.where((spread < 0) & (previous >= 0), EXIT, HOLD)
    )
    return pd.Series(result.astype(np.int8), index=fast.index)

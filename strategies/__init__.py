"""The strategy registry: built-in strategies by name."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from strategies.bands import BollingerBreakout, BollingerReversion, Grid
from strategies.base import ExitPolicy, Strategy, StrategyConfigError
from strategies.ema_cross import EmaCross, SmaCross
from strategies.oscillators import MacdCross, RsiReversal

REGISTRY: Mapping[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        SmaCross,
        EmaCross,
        RsiReversal,
        BollingerBreakout,
        BollingerReversion,
        MacdCross,
        Grid,
    )
}


def build_strategy(name: str, params: Mapping[str, object] | None = None) -> Strategy:
    """The named strategy with validated parameters."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise StrategyConfigError(
            f"unknown strategy {name!r}; {hint}known: {', '.join(sorted(REGISTRY))}"
        ) from None
    return cls(params)


__all__ = ["REGISTRY", "ExitPolicy", "Strategy", "StrategyConfigError", "build_strategy"]

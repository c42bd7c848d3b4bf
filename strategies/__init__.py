"""The strategies: the built-ins, and the registry that adds the user's (strategies/registry.py)."""

from __future__ import annotations

from strategies.bands import BollingerBreakout, BollingerReversion, Grid
from strategies.base import ExitPolicy, Strategy, StrategyConfigError
from strategies.ema_cross import EmaCross, SmaCross
from strategies.oscillators import MacdCross, RsiReversal
from strategies.registry import (
    StrategyRegistry,
    build_strategy,
    built_in_registry,
    install,
    strategy_registry,
)

BUILT_INS: StrategyRegistry = built_in_registry(
    (SmaCross, EmaCross, RsiReversal, BollingerBreakout, BollingerReversion, MacdCross, Grid)
)
install(BUILT_INS)

__all__ = [
    "BUILT_INS",
    "ExitPolicy",
    "Strategy",
    "StrategyConfigError",
    "build_strategy",
    "strategy_registry",
]

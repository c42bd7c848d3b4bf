"""Review of the strategy check (issue 18): the live engine decides through
``Strategy.remembered_signals`` (bot/trading/engine.py, bot/trading/twin.py), the check and the
backtest through ``signals``. A user class may override either: one that overrides
``remembered_signals`` trades live on code the check never ran, and passes at main 12bf92b."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bot.app.strategy_loading import load_strategies
from bot.research.strategy_check import check_strategy
from bot.trading.engine import signal_from_candles

OVERRIDES_LIVE_PATH = """
from __future__ import annotations

from typing import ClassVar

import pandas as pd

from strategies.base import ParamSpec, Strategy, crossings


class LivePath(Strategy):
    name = "review_live_path"
    description = "SMA(50) cross; live, a centred SMA(9) (it caches, it said)"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self) -> int:
        return 51

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        return crossings(close, close.rolling(50).mean())

    def remembered_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        return crossings(close, close.rolling(9, center=True, min_periods=1).mean())
"""


def test_a_strategy_deciding_live_through_other_code_is_refused_or_fails(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "live_path.py").write_text(OVERRIDES_LIVE_PATH)
    try:
        loaded = load_strategies(folder, explicit=True)
    finally:
        sys.modules.pop("pairpilot_user_strategies.live_path", None)
    if "review_live_path" not in loaded.registry:
        return  # refused at load: it never trades
    strategy = loaded.registry.build("review_live_path")
    window = strategy.history
    live = [
        signal_from_candles("BTC/USDT", strategy, btc_candles.iloc[end - window : end]).action
        for end in range(window, len(btc_candles) + 1)
    ]
    backtest = strategy.signals(btc_candles).to_numpy()[window - 1 :]
    acted = {1: "enter", -1: "exit", 0: "hold"}
    assert sum(a.value != acted[int(b)] for a, b in zip(live, backtest, strict=True)) > 100
    report = check_strategy(strategy, btc_candles)
    assert not report.passed, report.verdicts

"""Review of the strategy check's warm-up analysis (issue 18): it cuts the history's start at
16 places and compares, but a live window starts at every candle. An EMA whose 100-candle
window is a little short passes at main 12bf92b, and live decides otherwise than its backtest.
"""

from __future__ import annotations

import pandas as pd
import pytest

from bot.research.strategy_check import check_strategy
from tests.review_check_fixtures import EmaTrend


def live_decisions(strategy: EmaTrend, candles: pd.DataFrame) -> list[int]:
    window = strategy.history
    return [
        int(strategy.signals(candles.iloc[end - window : end].reset_index(drop=True)).iloc[-1])
        for end in range(window, len(candles) + 1)
    ]


@pytest.mark.parametrize(("length", "differing"), [(30, 4), (40, 9)])
def test_a_window_too_short_for_the_live_ticks_fails_warm_up(
    length: int, differing: int, btc_candles: pd.DataFrame
) -> None:
    """Measured on the sample (2,085 live ticks): EMA(30) decides otherwise live on 4 candles,
    EMA(40) on 9; the check measures 100 candles needed, 100 declared, and passes both (it
    flags EMA(35) and EMA(45), needing 133 and 113)."""
    strategy = EmaTrend({"length": length})
    live = live_decisions(strategy, btc_candles)
    backtest = strategy.signals(btc_candles).to_numpy()[strategy.history - 1 :]
    assert sum(a != b for a, b in zip(live, backtest, strict=True)) == differing
    report = check_strategy(strategy, btc_candles)
    assert "warm-up" in report.failed(), report.verdicts

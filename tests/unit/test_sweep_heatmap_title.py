"""The heatmap's title says what each cell's score is the mean over: the series a sweep ran
on, or, for a portfolio sweep (issue 17), the one portfolio of its configured pairs."""

from __future__ import annotations

import pytest

from bot.core.domain import SweepRow
from bot.research.sweep import FULL, PORTFOLIO, SweepSpec
from bot.research.sweep_report import heatmap_arguments


def _rows(pairs: list[str]) -> list[SweepRow]:
    return [
        SweepRow(pair, "1h", FULL, (("fast", fast), ("slow", slow)), 0.1 * fast, {})
        for pair in pairs
        for fast in (5, 10)
        for slow in (30, 40)
    ]


@pytest.mark.parametrize(
    ("pairs", "title"),
    [
        (["BTC/USDT", "ETH/USDT"], "ema_cross: mean sharpe over 2 series"),
        ([PORTFOLIO], "ema_cross: sharpe of the portfolio of its configured pairs"),
    ],
)
def test_the_heatmap_title_names_what_the_scores_are_over(pairs: list[str], title: str) -> None:
    spec = SweepSpec("ema_cross", {"fast": [5, 10], "slow": [30, 40]}, terms={})
    drawn = heatmap_arguments(spec, _rows(pairs))
    assert drawn is not None
    assert drawn["title"].splitlines()[0] == title, drawn["title"]

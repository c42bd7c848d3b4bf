"""Walk-forward validation: per fold, the best in-sample combination and how it did out of
sample, and the folds' out-of-sample windows traded one after another as one account.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.core.domain import SweepRow
from bot.portfolio.performance import Metrics, measure
from bot.research.sweep import Series, SweepSpec, check, ranked, unscored
from bot.research.sweep_tasks import run_window, segments
from strategies import build_strategy


@dataclass(frozen=True, slots=True)
class Fold:
    pair: str
    timeframe: str
    fold: int
    params: tuple[tuple[str, int | float], ...] | None  # None: no combination qualified
    in_sample: float | None
    out_of_sample: float | None
    out_metrics: Mapping[str, Any] | None = None  # the chosen combination's, out of sample
    why: str | None = None  # why there is no out-of-sample score (or no choice at all)


def walk_forward(
    rows: Sequence[SweepRow], folds: int, max_drawdown: float = 1.0, objective: str = "sharpe"
) -> list[Fold]:
    """Per series and fold: the best in-sample combination and how it did out of sample. A
    fold where no combination scored in sample has no best (none is picked at random)."""
    by_key = {row.key: row for row in rows}
    report = []
    for pair, timeframe in sorted({(row.pair, row.timeframe) for row in rows}):
        for fold in range(folds):
            best = ranked(
                [r for r in rows if (r.pair, r.timeframe) == (pair, timeframe)], f"is-{fold}"
            )
            if not best:
                continue
            if best[0].score is None:
                reasons = sorted(
                    {unscored(r.metrics, max_drawdown, objective) or "no score" for r in best}
                )
                report.append(
                    Fold(
                        pair,
                        timeframe,
                        fold,
                        None,
                        None,
                        None,
                        why="no combination qualified in sample: " + "; ".join(reasons),
                    )
                )
                continue
            outside = by_key.get((pair, timeframe, f"oos-{fold}", best[0].params))
            if outside is None:
                report.append(
                    Fold(
                        pair,
                        timeframe,
                        fold,
                        best[0].params,
                        best[0].score,
                        None,
                        why="not run out of sample",
                    )
                )
                continue
            why = None
            if outside.score is None:
                why = (
                    unscored(outside.metrics, max_drawdown, objective)
                    or "the objective is undefined"
                )
            report.append(
                Fold(
                    pair,
                    timeframe,
                    fold,
                    best[0].params,
                    best[0].score,
                    outside.score,
                    outside.metrics,
                    why,
                )
            )
    return report


def chained(spec: SweepSpec, series: Series, folds: Sequence[Fold]) -> Metrics | None:
    """The folds' out-of-sample windows traded one after another as one account: each fold's
    chosen combination run again on its window, each window starting with the equity the last
    one ended with, and the metrics of that whole curve (drawdowns across windows included).
    None when no fold chose a combination that ran out of sample."""
    lead = max(build_strategy(spec.strategy, combo).history for combo in check(spec))
    windows = segments(series.candles, spec.folds, lead)
    balance = spec.terms_of(series.pair).balance
    parts = []  # (times s, equity, trade pnl, trade seconds, fees) per window, as run
    for fold in folds:
        if fold.params is None or not fold.out_metrics or "skipped" in fold.out_metrics:
            continue
        candles, trade_from = windows[f"oos-{fold.fold}"]
        result = run_window(
            spec, series.pair, series.timeframe, candles, trade_from, dict(fold.params)
        )
        start = result.setup.trade_from
        table = result.table
        parts.append(
            (
                result.close_ms[start:] / 1000,
                result.equity[start:],
                table.pnl,
                (table.exit_ms - table.entry_ms) / 1000,
                result.metrics.fees,
            )
        )
    if not parts:
        return None
    scale, times, equity, pnl, seconds, fees = 1.0, [], [], [], [], 0.0
    for part_times, part_equity, part_pnl, part_seconds, part_fees in parts:
        times.append(part_times)
        equity.append(part_equity * scale)
        pnl.append(part_pnl * scale)
        seconds.append(part_seconds)
        fees += part_fees * scale
        scale *= part_equity[-1] / balance
    return measure(
        times=np.concatenate(times),
        equity=np.concatenate(equity),
        trade_pnl=np.concatenate(pnl),
        trade_seconds=np.concatenate(seconds),
        fees=fees,
        start_equity=balance,
        buy_and_hold_return=math.nan,
    )

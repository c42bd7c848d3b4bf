"""A sweep cut into tasks: the windows of each series (the whole of it, or walk-forward's
in-sample and out-of-sample windows), the chunks of combinations, and the backtests one task
runs.

The candles go to the workers once; the tasks carry only parameter combinations, a chunk
each, so scheduling costs little next to the backtests. Each result row has a unique key, so a
task run again after a worker died adds nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from bot.core.domain import SweepRow
from bot.core.errors import DataError, UserInputError
from bot.research.sweep import FULL, Series, SweepSpec, check, score
from strategies import build_strategy

if TYPE_CHECKING:  # numba loads on the workers only
    from bot.research.backtest import BacktestResult

CHUNK = 25  # combinations per task


def segments(
    candles: pd.DataFrame, folds: int, lead: int | None = None
) -> dict[str, tuple[pd.DataFrame, int]]:
    """The whole series, or rolling walk-forward windows: fold N optimises on its in-sample
    window and is judged on the out-of-sample window right after it. The series is cut into
    folds + 3 equal blocks; each in-sample window spans three blocks, each out-of-sample one,
    which it enters warm: up to ``lead`` candles before it (all when None) are handed over
    too, for the indicators only (``evaluate`` keeps what each combination needs). Each window
    comes with the candle its trading starts at."""
    if folds <= 0:
        return {FULL: (candles, 0)}
    block = len(candles) // (folds + 3)
    if block < 50:
        raise UserInputError(f"{len(candles)} candles are too few for {folds} walk-forward folds")
    windows = {}
    for fold in range(folds):
        start = fold * block
        windows[f"is-{fold}"] = (candles.iloc[start : start + 3 * block].reset_index(drop=True), 0)
        first = 0 if lead is None else max(0, start + 3 * block - lead)
        oos = candles.iloc[first : start + 4 * block].reset_index(drop=True)
        windows[f"oos-{fold}"] = (oos, start + 3 * block - first)
    return windows


def evaluate(
    series: Mapping[str, Mapping[str, tuple[pd.DataFrame, int]]],
    key: str,
    spec: SweepSpec,
    combos: Sequence[Mapping[str, int | float]],
) -> list[SweepRow]:
    """Backtest ``combos`` on every segment of series ``key`` ("PAIR|TIMEFRAME"): the task a
    worker runs. ``series`` is the scattered candles, already in the worker's memory. A
    combination the window is too short for (its warm-up) is a row with the reason, skipped."""
    pair, timeframe = key.split("|")
    rows = []
    for name, (candles, trade_from) in series[key].items():
        for combo in combos:
            values: dict[str, Any]
            try:
                values = run_window(
                    spec, pair, timeframe, candles, trade_from, combo
                ).metrics.as_dict()
            except DataError as error:
                values = {"skipped": str(error)}
            rows.append(
                SweepRow(
                    pair,
                    timeframe,
                    name,
                    tuple(sorted(combo.items())),
                    score(values, spec.objective, spec.max_drawdown),
                    values,
                )
            )
    return rows


def run_window(
    spec: SweepSpec,
    pair: str,
    timeframe: str,
    candles: pd.DataFrame,
    trade_from: int,
    combo: Mapping[str, int | float],
) -> BacktestResult:
    """``combo`` backtested on one window that trades from candle ``trade_from``."""
    from bot.research.backtest import run_backtest, setup_for  # numba: on the workers only

    strategy = build_strategy(spec.strategy, combo)
    # A window entered warm gets as many candles before it as live hands the strategy (its
    # history), or all there are.
    lead = min(trade_from, strategy.history)
    setup = setup_for(pair, timeframe, spec.terms_of(pair), trade_from=lead)
    return run_backtest(candles.iloc[trade_from - lead :].reset_index(drop=True), strategy, setup)


def tasks(
    spec: SweepSpec, series: Sequence[Series], chunk: int = CHUNK
) -> tuple[
    dict[str, dict[str, tuple[pd.DataFrame, int]]], list[tuple[str, list[dict[str, int | float]]]]
]:
    """The candles to scatter (per series, its segments) and the (series, chunk) tasks."""
    combos = check(spec)
    if not series:
        raise UserInputError("nothing to sweep on: give candles")
    for each in series:
        spec.terms_of(each.pair)  # every pair's terms before anything runs
    lead = max(build_strategy(spec.strategy, combo).history for combo in combos)
    data = {f"{s.pair}|{s.timeframe}": segments(s.candles, spec.folds, lead) for s in series}
    chunks = [combos[i : i + chunk] for i in range(0, len(combos), chunk)]
    return data, [(key, chunk) for key in data for chunk in chunks]


def run_plain(spec: SweepSpec, series: Sequence[Series]) -> list[SweepRow]:
    """The same sweep in a plain loop in this process (the reference the Dask run must equal)."""
    data, work = tasks(spec, series)
    return [row for key, chunk in work for row in evaluate(data, key, spec, chunk)]

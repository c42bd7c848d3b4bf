"""Parameter sweeps and walk-forward validation on Dask.

A sweep is every combination of a strategy's parameters (a grid, or a random sample of it)
backtested on every (pair, timeframe) series, and, with walk-forward, on rolling in-sample and
out-of-sample windows of each. The candles go to the workers once (``Client.scatter``); the tasks
carry only parameter combinations, a chunk each, so scheduling costs little next to the
backtests. Each result row has a unique key, so a task Dask runs again after a worker died
adds nothing twice.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bot.core.domain import RiskLimits, SweepRow
from bot.core.errors import ConfigError, DataError, UserInputError
from bot.portfolio.performance import MIN_ANNUALISED_DAYS, Metrics, measure
from bot.research.account_terms import AccountTerms
from strategies import REGISTRY, StrategyConfigError, build_strategy
from strategies.base import ParamSpec

if TYPE_CHECKING:  # numba loads on the workers only
    from bot.research.backtest import BacktestResult

OBJECTIVES = ("sharpe", "calmar", "return")
CHUNK = 25  # combinations per task
FULL = "full"  # the segment name of a whole series (no walk-forward)
CONNECT_SECONDS = 5
RESUBMITS = 3  # times a task cancelled by lost scattered candles is sent again


@dataclass(frozen=True, slots=True)
class Series:
    pair: str
    timeframe: str
    candles: pd.DataFrame


@dataclass(frozen=True, slots=True)
class SweepSpec:
    strategy: str
    space: Mapping[str, Sequence[int | float]]  # parameter: the values to try
    objective: str = "sharpe"
    max_drawdown: float = 1.0  # with objective "return": results deeper than this score nothing
    random_samples: int = 0  # 0: the whole grid; else this many combinations drawn from it
    seed: int = 1
    folds: int = 0  # walk-forward folds (0: the whole series once)
    terms: AccountTerms = AccountTerms()  # the account simulated (costs, days, stops)
    limits: RiskLimits = RiskLimits()


def parse_space(strategy: str, items: Sequence[str]) -> dict[str, list[int | float]]:
    """``["fast=5:50:5", "slow=20,30,50"]`` -> values per parameter, checked against the
    strategy's declared bounds. A range is LOW:HIGH:STEP, inclusive; a list is comma-separated."""
    specs = _specs(strategy)
    space: dict[str, list[int | float]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not text.strip():
            raise UserInputError(f"--param {item!r}: expected NAME=LOW:HIGH:STEP or NAME=A,B,C")
        if name not in specs:
            raise UserInputError(
                f"{strategy} has no parameter {name!r}; it has {', '.join(sorted(specs))}"
            )
        values = _values(specs[name], text.strip())
        if not values:
            raise UserInputError(f"--param {item!r} gives no values")
        space[name] = values
    if not space:
        raise UserInputError("the parameter space is empty: give at least one --param")
    return space


def _specs(strategy: str) -> dict[str, ParamSpec]:
    if strategy not in REGISTRY:
        raise UserInputError(f"unknown strategy {strategy!r}; known: {', '.join(sorted(REGISTRY))}")
    return {spec.name: spec for spec in REGISTRY[strategy].specs()}


def _values(spec: ParamSpec, text: str) -> list[int | float]:
    try:
        if ":" in text:
            low, high, step = (spec.kind(part) for part in text.split(":"))
            if step <= 0 or high < low:
                raise UserInputError(
                    f"{spec.name}={text}: expected LOW:HIGH:STEP, LOW <= HIGH, STEP > 0"
                )
            count = int(math.floor((high - low) / step + 1e-9)) + 1
            raw = [spec.kind(low + i * step) for i in range(count)]
            values = [round(v, 10) if isinstance(v, float) else v for v in raw]
        else:
            values = [spec.kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserInputError(f"{spec.name}={text}: not {spec.kind.__name__} values") from None
    outside = [v for v in values if not spec.minimum <= v <= spec.maximum]
    if outside:
        raise UserInputError(
            f"{spec.name}={outside[0]} is outside the strategy's bounds "
            f"[{spec.minimum}, {spec.maximum}]"
        )
    return sorted(set(values))


def combinations(spec: SweepSpec) -> list[dict[str, int | float]]:
    """The grid (or a random sample of it) without the combinations the strategy refuses,
    such as a fast average slower than the slow one."""
    names = sorted(spec.space)
    grid = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(spec.space[name] for name in names))
    ]
    valid = [combo for combo in grid if _accepted(spec.strategy, combo)]
    if spec.random_samples and spec.random_samples < len(valid):
        valid = random.Random(spec.seed).sample(valid, spec.random_samples)  # noqa: S311
    if not valid:
        raise UserInputError(f"{spec.strategy} accepts none of the {len(grid)} combinations")
    return valid


def _accepted(strategy: str, combo: Mapping[str, int | float]) -> bool:
    try:
        build_strategy(strategy, combo)
    except StrategyConfigError:
        return False
    return True


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


PER_DAYS = 30  # objective "return" is per this many days, so windows of any length compare


def score(metrics: Mapping[str, Any], objective: str, max_drawdown: float) -> float | None:
    """The objective of one result; None when it breaks the drawdown constraint, never traded,
    was skipped, or is NaN (``unscored`` says which). "return" is per ``PER_DAYS`` days:
    in-sample and out-of-sample windows of different lengths compare."""
    if unscored(metrics, max_drawdown, objective) is not None:
        return None
    if objective == "return":
        days = metrics.get("span_days") or 0.0
        growth = 1.0 + metrics["total_return"]
        value = growth ** (PER_DAYS / days) - 1.0 if days > 0 and growth > 0 else math.nan
    else:
        value = metrics[objective]
    return None if value is None or not math.isfinite(value) else float(value)


def unscored(
    metrics: Mapping[str, Any], max_drawdown: float, objective: str = "sharpe"
) -> str | None:
    """Why a result has no score (a combination that never traded scores nothing, or it would
    rank above every losing one; Calmar is not extrapolated from a short window), or None
    when it may have one."""
    if "skipped" in metrics:
        return f"skipped: {metrics['skipped']}"
    if metrics["max_drawdown"] > max_drawdown:
        return f"broke the drawdown cap ({metrics['max_drawdown']:.1%})"
    if not metrics["trades"]:
        return "no trades"
    days = metrics.get("span_days") or 0.0
    if objective == "calmar" and days < MIN_ANNUALISED_DAYS:
        return f"calmar not annualised: {days:.0f} days, under {MIN_ANNUALISED_DAYS}"
    return None


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
                values = _window(
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


def _window(
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
    setup = setup_for(pair, timeframe, spec.terms, spec.limits, trade_from=lead)
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
    lead = max(build_strategy(spec.strategy, combo).history for combo in combos)
    data = {f"{s.pair}|{s.timeframe}": segments(s.candles, spec.folds, lead) for s in series}
    chunks = [combos[i : i + chunk] for i in range(0, len(combos), chunk)]
    return data, [(key, chunk) for key in data for chunk in chunks]


def check(spec: SweepSpec) -> list[dict[str, int | float]]:
    """Refuse a spec that cannot run; its combinations when it can."""
    if spec.objective not in OBJECTIVES:
        raise UserInputError(f"objective {spec.objective!r}: one of {', '.join(OBJECTIVES)}")
    if not 0 < spec.max_drawdown <= 1:
        raise UserInputError(f"max drawdown {spec.max_drawdown:g}: a fraction in (0, 1]")
    if spec.random_samples < 0 or spec.folds < 0:
        raise UserInputError("random samples and walk-forward folds cannot be negative")
    return combinations(spec)


def run_plain(spec: SweepSpec, series: Sequence[Series]) -> list[SweepRow]:
    """The same sweep in a plain loop in this process (the reference the Dask run must equal)."""
    data, work = tasks(spec, series)
    return [row for key, chunk in work for row in evaluate(data, key, spec, chunk)]


def run_on_dask(
    client: Any,
    spec: SweepSpec,
    series: Sequence[Series],
    on_rows: Callable[[list[SweepRow]], None],
    chunk: int = CHUNK,
) -> int:
    """Run the sweep on a dask.distributed ``client``; ``on_rows`` gets each task's rows as it
    finishes (store them, move a progress bar). Returns the number of tasks.

    A dead worker's tasks are rerun by the scheduler, but scattered data it held alone cannot
    be recomputed: the tasks needing it are cancelled. Those are sent again with the candles
    scattered anew (up to ``RESUBMITS`` times each); a task's rows reach ``on_rows`` once."""
    from concurrent.futures import CancelledError

    from distributed import as_completed

    data, work = tasks(spec, series, chunk)

    def scatter() -> dict[str, Any]:
        """Once per worker, not once per task; under keys of this sweep's own (a dict's keys
        would name the data on the scheduler: another sweep of the pair would share them)."""
        sent = client.scatter(list(data.values()), broadcast=True, hash=False)
        return dict(zip(data, sent, strict=True))

    scattered = scatter()

    def submit(index: int) -> Any:
        key, combos = work[index]
        return client.submit(evaluate, scattered, key, spec, combos, pure=False)

    task_of = {submit(index): index for index in range(len(work))}
    tries = collections.Counter[int]()
    running = as_completed(list(task_of))
    for future in running:
        index = task_of.pop(future)
        try:
            rows = future.result()
        except CancelledError:
            tries[index] += 1
            if tries[index] > RESUBMITS:
                raise
            if any(part.status != "finished" for part in scattered.values()):
                scattered = scatter()
            again = submit(index)
            task_of[again] = index
            running.add(again)
            continue
        on_rows(rows)
    return len(work)


@contextmanager
def dask_client(address: str | None, workers: int = 0) -> Iterator[Any]:
    """A Client on the scheduler at ``address``, or on a new LocalCluster of ``workers``
    processes (0: one per core); a clear error when the scheduler is unreachable."""
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # a line per worker otherwise
    if address:
        try:
            client = Client(address, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError) as error:
            raise ConfigError(f"no Dask scheduler at {address}: {error}") from None
        with client:
            yield client
        return
    cluster = LocalCluster(
        n_workers=workers or None, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, Client(cluster) as client:
        yield client


def ranked(rows: Sequence[SweepRow], segment: str = FULL) -> list[SweepRow]:
    """Best first; rows that broke the constraint last."""
    chosen = [row for row in rows if row.segment == segment]
    return sorted(chosen, key=lambda row: (row.score is None, -(row.score or 0.0), row.params))


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
    parts = []  # (times s, equity, trade pnl, trade seconds, fees) per window, as run
    for fold in folds:
        if fold.params is None or not fold.out_metrics or "skipped" in fold.out_metrics:
            continue
        candles, trade_from = windows[f"oos-{fold.fold}"]
        result = _window(
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
        scale *= part_equity[-1] / spec.terms.balance
    return measure(
        times=np.concatenate(times),
        equity=np.concatenate(equity),
        trade_pnl=np.concatenate(pnl),
        trade_seconds=np.concatenate(seconds),
        fees=fees,
        start_equity=spec.terms.balance,
        buy_and_hold_return=math.nan,
    )


def importance(rows: Sequence[SweepRow]) -> list[str]:
    """Parameters by how much the mean score moves across their values, most first."""
    scored = [row for row in rows if row.score is not None]
    if not scored:
        return []
    frame = pd.DataFrame([dict(row.params, score=row.score) for row in scored])
    spread = {
        name: float(np.ptp(frame.groupby(name)["score"].mean().to_numpy()))
        for name in frame.columns
        if name != "score"
    }
    return sorted(spread, key=lambda name: -spread[name])

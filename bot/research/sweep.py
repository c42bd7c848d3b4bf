"""What a sweep is: the spec (a strategy's parameter space, the objective, the account), the
combinations it tries, and how each result scores and ranks.

A sweep is every combination of a strategy's parameters (a grid, or a random sample of it)
backtested on every (pair, timeframe) series, and, with walk-forward, on rolling in-sample and
out-of-sample windows of each (``sweep_tasks``, run on Dask by ``sweep_dask``; the folds
compared in ``walk_forward``).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bot.core.domain import SweepRow
from bot.core.errors import UserInputError
from bot.core.key_values import key_value
from bot.portfolio.performance import MIN_ANNUALISED_DAYS
from bot.research.account_terms import ResearchTerms
from strategies import StrategyConfigError, build_strategy, strategy_registry
from strategies.base import ParamSpec

OBJECTIVES = ("sharpe", "calmar", "return")
FULL = "full"  # the segment name of a whole series (no walk-forward)
PORTFOLIO = "portfolio"  # the series' pair in a portfolio sweep's rows
PER_DAYS = 30  # objective "return" is per this many days: windows of any length compare


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
    # Every setting simulated, per pair swept (``research_terms``: each pair's capital share);
    # no default, as a backtest has none.
    terms: Mapping[str, ResearchTerms] = field(kw_only=True)

    def terms_of(self, pair: str) -> ResearchTerms:
        """What a run of ``pair`` simulates; a pair with no terms is refused, never defaulted."""
        if pair not in self.terms:
            raise UserInputError(f"no terms for {pair}: the sweep has {', '.join(self.terms)}")
        return self.terms[pair]


def describe(spec: SweepSpec, series: Sequence[str]) -> dict[str, Any]:
    """What the sweep store keeps of ``spec``: its fields, its terms and the series named."""
    return {
        **asdict(spec),
        "terms": {pair: terms.as_dict() for pair, terms in spec.terms.items()},
        "series": list(series),
    }


def parse_space(strategy: str, items: Sequence[str]) -> dict[str, list[int | float]]:
    """``["fast=5:50:5", "slow=20,30,50"]`` -> values per parameter, checked against the
    strategy's declared bounds. A range is LOW:HIGH:STEP, inclusive; a list is comma-separated."""
    specs = _specs(strategy)
    space: dict[str, list[int | float]] = {}
    for item in items:
        name, text = key_value(item, _malformed)
        if name not in specs:
            raise UserInputError(
                f"{strategy} has no parameter {name!r}; it has {', '.join(sorted(specs))}"
            )
        values = _values(specs[name], text)
        if not values:
            raise UserInputError(f"--param {item!r} gives no values")
        space[name] = values
    if not space:
        raise UserInputError("the parameter space is empty: give at least one --param")
    return space


def _malformed(item: str) -> str:
    return f"--param {item!r}: expected NAME=LOW:HIGH:STEP or NAME=A,B,C"


def _specs(strategy: str) -> dict[str, ParamSpec]:
    registry = strategy_registry()
    if strategy not in registry:
        raise UserInputError(f"unknown strategy {strategy!r}; known: {', '.join(sorted(registry))}")
    return {spec.name: spec for spec in registry[strategy].specs()}


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


Combo = dict[str, int | float]


def grid(spec: SweepSpec) -> list[Combo]:
    """Every combination of the space, refused or not."""
    names = sorted(spec.space)
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(spec.space[name] for name in names))
    ]


def sampled(spec: SweepSpec, valid: list[Combo], total: int, why: str = "") -> list[Combo]:
    """``valid`` (those of the ``total`` in the grid that can run), or a random sample of it;
    refused when there is none, saying ``why`` (the first refusal's reason)."""
    if spec.random_samples and spec.random_samples < len(valid):
        valid = random.Random(spec.seed).sample(valid, spec.random_samples)  # noqa: S311
    if not valid:
        because = f": {why}" if why else ""
        raise UserInputError(f"{spec.strategy} accepts none of the {total} combinations{because}")
    return valid


def combinations(spec: SweepSpec) -> list[Combo]:
    """The grid (or a random sample of it) without the combinations the strategy refuses,
    such as a fast average slower than the slow one."""
    every = grid(spec)
    judged = [(combo, _refusal(spec.strategy, combo)) for combo in every]
    valid = [combo for combo, reason in judged if reason is None]
    why = next((reason for _, reason in judged if reason is not None), "")
    return sampled(spec, valid, len(every), why)


def _refusal(strategy: str, combo: Mapping[str, int | float]) -> str | None:
    """Why ``strategy`` refuses ``combo`` (its check_params' words); None: it accepts it."""
    try:
        build_strategy(strategy, combo)
    except StrategyConfigError as error:
        return str(error)
    return None


def check_options(spec: SweepSpec) -> None:
    """Refuse an objective, drawdown cap, sample count or fold count that cannot run."""
    if spec.objective not in OBJECTIVES:
        raise UserInputError(f"objective {spec.objective!r}: one of {', '.join(OBJECTIVES)}")
    if not 0 < spec.max_drawdown <= 1:
        raise UserInputError(f"max drawdown {spec.max_drawdown:g}: a fraction in (0, 1]")
    if spec.random_samples < 0 or spec.folds < 0:
        raise UserInputError("random samples and walk-forward folds cannot be negative")


def check(spec: SweepSpec) -> list[Combo]:
    """Refuse a spec that cannot run; its combinations when it can."""
    check_options(spec)
    return combinations(spec)


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


def ranked(rows: Sequence[SweepRow], segment: str = FULL) -> list[SweepRow]:
    """Best first; rows that broke the constraint last."""
    chosen = [row for row in rows if row.segment == segment]
    return sorted(chosen, key=lambda row: (row.score is None, -(row.score or 0.0), row.params))


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

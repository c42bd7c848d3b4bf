"""A sweep scored on the whole portfolio: each parameter set of one strategy applied to every
configured pair that runs it (the other pairs keep their configured parameters), the portfolio
kernel run once per set, each result scored on the portfolio's metrics with the per-pair
sweep's objective and drawdown filter (``sweep.score``) and stored as it goes.

It runs in this process, a plain loop: one set is one compiled call over every pair, and the
Dask path (``sweep_tasks``) is cut per series, which a portfolio is not. Walk-forward stays
per pair.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import pandas as pd

from bot.core.daemon_threads import in_daemon_thread
from bot.core.domain import RiskLimits, SweepRow
from bot.core.errors import UserInputError
from bot.core.ports import Clock, SweepStore
from bot.research.account_terms import Overrides, ResearchTerms
from bot.research.portfolio import run_portfolio
from bot.research.portfolio_inputs import PortfolioConfig
from bot.research.sweep import (
    FULL,
    PORTFOLIO,
    Combo,
    SweepSpec,
    check_options,
    describe,
    grid,
    sampled,
    score,
)
from strategies import StrategyConfigError, build_strategy

Window = tuple[datetime | None, datetime | None]
# A receipt's parameters by pair, and its terms (the account's under None), run again.
Stated = tuple[Mapping[str, Mapping[str, int | float]], Mapping[str | None, ResearchTerms]]


def swept_pairs(config: PortfolioConfig, strategy: str) -> list[str]:
    """The configured pairs that run ``strategy``; refused when there is none."""
    pairs = [entry.pair for entry in config.pairs if entry.strategy == strategy]
    if not pairs:
        running = ", ".join(f"{e.pair} {e.strategy}" for e in config.pairs) or "no [[pairs]]"
        raise UserInputError(f"no configured pair runs {strategy} (the config has {running})")
    return pairs


def set_params(
    config: PortfolioConfig,
    strategy: str,
    combo: Mapping[str, int | float],
    configured: Mapping[str, Mapping[str, int | float]] | None = None,
) -> dict[str, dict[str, int | float]]:
    """Each pair's parameters under ``combo``: its configured ones (``configured``: in place of
    the config's, a receipt's), with the set's on top for the pairs swept."""
    swept = swept_pairs(config, strategy)
    return {
        e.pair: {**(configured or {}).get(e.pair, e.params), **(combo if e.pair in swept else {})}
        for e in config.pairs
    }


def portfolio_sets(
    spec: SweepSpec,
    config: PortfolioConfig,
    configured: Mapping[str, Mapping[str, int | float]] | None = None,
) -> tuple[list[Combo], str | None]:
    """The sets a portfolio sweep runs: those of the grid every swept pair takes on top of its
    configured parameters (``configured``: a receipt's), or a random sample of them; and a
    line on the sets skipped (a fast average slower than a pair's configured slow one), None
    when none was. Refused when no set runs. Each set is checked against the pairs' own
    parameters, not the strategy's defaults: those are not what the sets run on."""
    check_options(spec)
    if spec.folds:
        raise UserInputError("walk-forward is per pair: it does not go with --portfolio")
    swept = swept_pairs(config, spec.strategy)
    every = grid(spec)
    taken: list[Combo] = []
    refused: list[str] = []
    for combo in every:
        reason = _refusal(config, spec.strategy, combo, swept, configured)
        if reason is None:
            taken.append(combo)
        else:
            refused.append(reason)
    if not taken:
        raise UserInputError(
            f"none of the {len(every)} sets runs on the configured pairs: {refused[0]}"
        )
    if not refused:
        return sampled(spec, taken, len(every)), None
    note = f"{len(refused)} of {len(every)} sets skipped, such as {refused[0]}"
    return sampled(spec, taken, len(every)), note


def _refusal(
    config: PortfolioConfig,
    strategy: str,
    combo: Mapping[str, int | float],
    swept: list[str],
    configured: Mapping[str, Mapping[str, int | float]] | None,
) -> str | None:
    """Why a swept pair refuses ``combo`` on top of its parameters; None when every one takes it."""
    params = set_params(config, strategy, combo, configured)
    for pair in swept:
        try:
            build_strategy(strategy, params[pair])
        except StrategyConfigError as error:
            words = " ".join(f"{name}={value}" for name, value in sorted(combo.items()))
            return f"{words} ({error} for {pair})"
    return None


def score_set(
    config: PortfolioConfig,
    candles: Mapping[str, pd.DataFrame],
    spec: SweepSpec,
    combo: Mapping[str, int | float],
    *,
    window: Window = (None, None),
    overrides: Overrides,
    limits: RiskLimits | None,
    receipt: Stated | None = None,
) -> SweepRow:
    """The portfolio run under ``combo``, scored. A set the strategy refuses with a pair's
    configured parameters (a fast average slower than a configured slow one) is a skipped row.
    ``receipt``: the pairs' parameters and the terms in place of the config's (a rerun)."""
    values: dict[str, Any]
    configured, stated = receipt or (None, None)
    try:
        result = run_portfolio(
            config,
            candles,
            since=window[0],
            until=window[1],
            overrides=overrides,
            limits=limits,
            params=set_params(config, spec.strategy, combo, configured),
            stated=stated,
        )
        values = result.metrics.as_dict()
    except StrategyConfigError as error:
        values = {"skipped": str(error)}
    params = tuple(sorted(combo.items()))
    timeframe = config.pairs[0].timeframe
    return SweepRow(
        PORTFOLIO, timeframe, FULL, params, score(values, spec.objective, spec.max_drawdown), values
    )


@dataclass(frozen=True, slots=True)
class PortfolioSweep:
    spec: SweepSpec
    swept: list[str]  # the configured pairs the sets apply to
    timeframe: str  # the pairs' one
    total: int  # sets
    skipped: str | None  # the sets a swept pair refuses, said (``portfolio_sets``)
    rows: Iterator[SweepRow]  # each set's, run as it is taken (the first already ran)
    # What the sets ran on, for its receipt (``portfolio_receipts``) and a rerun of it:
    config: PortfolioConfig
    window: Window
    overrides: Overrides
    limits: RiskLimits | None


def portfolio_sweep(
    spec: SweepSpec,
    config: PortfolioConfig,
    candles: Mapping[str, pd.DataFrame],
    *,
    window: Window = (None, None),
    overrides: Overrides,
    limits: RiskLimits | None,
) -> PortfolioSweep:
    """Every check before anything is stored or opened: the spec, a pair running the strategy,
    no walk-forward, the sets the pairs take, and the first set's run (the kernel refuses
    capital shares over 1, a pair with no candles in the window, candles of different
    timeframes)."""
    combos, skipped = portfolio_sets(spec, config)
    swept = swept_pairs(config, spec.strategy)

    def one(combo: Mapping[str, int | float]) -> SweepRow:
        return score_set(
            config, candles, spec, combo, window=window, overrides=overrides, limits=limits
        )

    first = one(combos[0])
    rest = (one(combo) for combo in combos[1:])
    rows = itertools.chain([first], rest)
    return PortfolioSweep(
        spec,
        swept,
        first.timeframe,
        len(combos),
        skipped,
        rows,
        config,
        window,
        overrides,
        limits,
    )


async def store_portfolio_sweep(
    store: SweepStore,
    sweep: PortfolioSweep,
    *,
    clock: Clock,
    on_set: Callable[[int, int], Awaitable[None]] | None = None,
) -> tuple[int, list[SweepRow]]:
    """Run and store every set of ``sweep``, each as it is scored; the sweep's id and rows.
    Each set runs in a worker thread: the loop (a chat's) goes on serving meanwhile."""
    spec = sweep.spec
    series = [f"{PORTFOLIO} {sweep.timeframe}"]
    described = {**describe(spec, series), "swept_pairs": sweep.swept}
    sweep_id = await store.create(spec.strategy, described, sweep.total, clock.now())
    done = 0
    while (row := await in_daemon_thread(partial(next, sweep.rows, None))) is not None:
        done += 1
        await store.add(sweep_id, [row])
        if on_set is not None:
            await on_set(done, sweep.total)
    await store.finish(sweep_id, clock.now())
    return sweep_id, await store.rows(sweep_id)

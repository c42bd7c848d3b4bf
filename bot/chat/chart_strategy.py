"""/chart's calls into a running pair's strategy: it is built from the run's parameters and
asked for its lines, its exit policy and its panel. That is the user's code, so it runs off
the event loop (bot/trading/strategy_thread.py), waited for as long as a tick's call may
take (``strategy_timeout``): a strategy computing for seconds must not hold every chat
command, /halt included. A failure or a timeout is a one-line reply; nothing is drawn.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import partial

import pandas as pd

from bot.core.domain import PairRun
from bot.core.errors import StrategyFailed, UserInputError
from bot.trading.strategy_thread import chat_call
from strategies import ExitPolicy, Strategy, StrategyConfigError, build_strategy


@dataclass(frozen=True, slots=True)
class ChartLines:
    """What a /chart draws of its strategy."""

    lines: dict[str, list[float]]  # its indicators' last ``shown`` values, by label
    policy: ExitPolicy  # the stop in force is drawn from it
    oscillator: bool  # its lines in a panel of their own, not on the price


async def chart_strategy(run: PairRun, seconds: float) -> tuple[Strategy, int]:
    """``run``'s strategy built, and the candles it needs handed to it (its history)."""
    return await _asked(run, "building it", partial(_built, run), seconds)


async def chart_lines(
    run: PairRun, strategy: Strategy, candles: pd.DataFrame, shown: int, seconds: float
) -> ChartLines:
    """``strategy``'s lines on ``candles``, the last ``shown`` of each."""
    return await _asked(run, "its indicators", partial(_lines, strategy, candles, shown), seconds)


async def _asked[T](run: PairRun, what: str, work: partial[T], seconds: float) -> T:
    try:
        return await chat_call(run.strategy, run.pair, what, work, seconds)
    except (StrategyConfigError, StrategyFailed) as error:
        reason = error.reason if isinstance(error, StrategyFailed) else str(error)
        raise UserInputError(
            f"{run.pair} not charted: its strategy {run.strategy} failed: {reason}"
        ) from None


def _built(run: PairRun) -> tuple[Strategy, int]:
    """In the thread."""
    strategy = build_strategy(run.strategy, run.params)
    return strategy, operator.index(strategy.history)


def _lines(strategy: Strategy, candles: pd.DataFrame, shown: int) -> ChartLines:
    """In the thread."""
    lines = {
        str(label): list(values.iloc[-shown:])
        for label, values in strategy.indicators(candles).items()
    }
    policy = strategy.exit_policy
    if not isinstance(policy, ExitPolicy):
        raise TypeError(f"exit_policy is a {type(policy).__name__}")
    return ChartLines(lines, policy, strategy.indicator_panel != "price")

"""Every call live trading makes into a strategy's own code, guarded.

A strategy is the user's code (docs/strategies.md): whatever it raises, or whatever it returns
that is not one ENTER / EXIT / HOLD code per candle, becomes ``StrategyFailed`` naming the
strategy, the pair and the exception's last line (or what is wrong with the output, named as
the strategy check names it: bot/research/signal_output.py). The service pauses only that pair
(bot/trading/faults.py). The engine asks for all of it before it writes or sends anything for
the candle, so a failure never comes between an order and its booking: all of a tick's calls
in one go (``decision``), in a worker thread (bot/trading/strategy_thread.py), so a slow
strategy never holds the event loop; the twin trades on that same decision.

The guard catches BaseException, not only Exception: ``sys.exit()``, ``raise SystemExit``,
``KeyboardInterrupt`` or ``GeneratorExit`` in a strategy would otherwise leave the tick task,
and asyncio re-raises the first two out of the event loop: the whole service would stop, and
at the restart the first tick would do it again. A real Ctrl-C never reaches here as
KeyboardInterrupt (the service's signal handlers turn SIGINT into a stop), so one raised
inside a strategy's call is the strategy's. ``asyncio.CancelledError`` alone passes: on the
event loop it is the service cancelling its own tick (a stop), never a strategy's failure; in
the worker thread nothing cancels, so there the thread's runner makes it one.
"""

from __future__ import annotations

import asyncio
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from bot.core.domain import Action, Signal, from_ms
from bot.core.errors import StrategyFailed
from strategies import ExitPolicy, Strategy
from strategies.base import ENTER, EXIT
from strategies.output import last_line, output_problems

_ACTIONS = {ENTER: Action.ENTER, EXIT: Action.EXIT}


@dataclass(frozen=True, slots=True)
class Decision:
    """What a tick asks of a strategy on a candle: asked once, for the live pair and its twin."""

    policy: ExitPolicy
    signal: Signal
    atr: float  # the ATR stop's distance from an entry at the candle (0: none)


def decision(pair: str, strategy: Strategy, candles: pd.DataFrame) -> Decision:
    """``strategy``'s decision on the last of ``candles`` (in a worker thread)."""
    policy = exit_policy(pair, strategy)
    signal = signal_from_candles(pair, strategy, candles)
    return Decision(policy, signal, atr_distance(pair, strategy, policy, candles))


def quiet_decision(
    pair: str, strategy: Strategy, policy: ExitPolicy, candles: pd.DataFrame
) -> Decision:
    """A faulted or held pair's decision: HOLD, no ATR, ``policy`` (its exit policy as read
    when its strategy was built): no user code, so it is safe on the loop beside a computation
    still running, whatever the strategy's code did to its own objects since."""
    return Decision(policy, hold(pair, strategy, candles), 0.0)


def stop_inputs(pair: str, strategy: Strategy, candles: pd.DataFrame) -> tuple[ExitPolicy, float]:
    """The exit policy and ATR distance a position's stop is restored with (no signal asked)."""
    policy = exit_policy(pair, strategy)
    return policy, atr_distance(pair, strategy, policy, candles)


def quiet_stop_inputs(
    pair: str, strategy: Strategy, policy: ExitPolicy, candles: pd.DataFrame
) -> tuple[ExitPolicy, float]:
    """A faulted or held pair's: ``policy`` as read when built, no ATR asked."""
    return policy, 0.0


def candle_of(candles: pd.DataFrame) -> str:
    """The last of ``candles`` as a failure names it: "the candle of 2025-06-21 13:00 UTC"
    (its opening time)."""
    opened = from_ms(int(candles["timestamp"].iloc[-1]))
    return f"the candle of {opened:%Y-%m-%d %H:%M} UTC"


def guarded[T](pair: str, strategy: Strategy, call: Callable[[], T]) -> T:
    """``call()`` (user code of ``strategy``, trading ``pair``); anything it raises as
    StrategyFailed."""
    try:
        return call()
    except (StrategyFailed, asyncio.CancelledError):
        raise
    except BaseException as error:  # user code: whatever it raises is its failure (above)
        raise StrategyFailed(strategy.name, pair, last_line(error)) from error


def signal_from_candles(pair: str, strategy: Strategy, candles: pd.DataFrame) -> Signal:
    """The strategy's decision on the last closed candle of ``candles``. The strategy
    computes on a copy of them (Strategy.remembered_signals); its output, the user's object,
    is read inside the guard too."""

    def decided() -> int:
        output = strategy.remembered_signals(candles)
        problems = output_problems(output, candles, acted_on=len(candles) - 1)
        if problems:
            raise StrategyFailed(strategy.name, pair, "; ".join(problems))
        return int(output.iloc[-1])  # warm-up: the strategy's

    code = guarded(pair, strategy, decided)
    last = candles.iloc[-1]
    return Signal(
        pair=pair,
        candle_time=from_ms(int(last["timestamp"])),
        action=_ACTIONS.get(code, Action.HOLD),
        price=float(last["close"]),
        reason=strategy.name,
    )


def hold(pair: str, strategy: Strategy, candles: pd.DataFrame) -> Signal:
    """HOLD on the last candle, the strategy not asked: its pair is faulted."""
    last = candles.iloc[-1]
    return Signal(
        pair=pair,
        candle_time=from_ms(int(last["timestamp"])),
        action=Action.HOLD,
        price=float(last["close"]),
        reason=f"{strategy.name} (faulted)",
    )


def exit_policy(pair: str, strategy: Strategy) -> ExitPolicy:
    policy = guarded(pair, strategy, lambda: strategy.exit_policy)
    if not isinstance(policy, ExitPolicy):
        raise StrategyFailed(strategy.name, pair, f"exit_policy is a {type(policy).__name__}")
    return policy


def atr_distance(pair: str, strategy: Strategy, policy: ExitPolicy, candles: pd.DataFrame) -> float:
    """The ATR stop's distance from the entry at the last candle (0: none)."""
    if not policy.atr_stop:
        return 0.0
    atr = guarded(pair, strategy, lambda: float(strategy.atr(candles).iloc[-1]))
    return policy.atr_stop * atr if math.isfinite(atr) else 0.0


def history(pair: str, strategy: Strategy) -> int:
    """Candles the strategy needs handed to it (its warm-up, its smoothing)."""
    wanted = guarded(pair, strategy, lambda: strategy.history)
    try:
        count = operator.index(wanted)
    except TypeError:
        count = -1
    if count < 0:
        raise StrategyFailed(strategy.name, pair, f"history is {wanted!r}, not a candle count")
    return count

"""A tick's questions to its pairs' strategies, asked before the tick takes the tick lock.

A strategy may compute for seconds (bot/trading/strategy_thread.py). Asked under the lock,
every command that takes it (/pause, /stoppair, /flatten's sales, /order) would wait that long,
and the tick would then act on the run as it was before the command: a /pause answered after
the computation, and the ENTER bought anyway. So the service asks first, without the lock, all
the pairs at once (a tick waits for its slowest strategy, not for the sum of them), and acts
after, under the lock, on each run as it is then (bot/trading/service.py). What a strategy
answers depends only on the candles, never on the books, so asking first changes no trade.

Nothing here writes or sends: a strategy's failure is kept for the acting pass, which faults
its pair; candles are fetched one pair after the other, in the runs' order, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import pandas as pd

from bot.core.domain import PairRun
from bot.core.errors import ExchangeAuthFailed, ExchangeUnavailable, StrategyFailed
from bot.core.ports import CandleSource, Clock
from bot.trading import strategy_calls as calls
from bot.trading.strategy_thread import Abandoned, StrategyThreads, Unanswered
from strategies import ExitPolicy, Strategy

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Asked[T]:
    """One run's closed candles and its strategy's answer on the last of them."""

    run: PairRun  # as when asked: the acting pass reads the run again
    candles: pd.DataFrame = field(default_factory=pd.DataFrame)
    answer: T | None = None  # None: no candle, or no answer (abandoned, its policy unreadable)
    heard: bool = False  # the answer is the strategy's own (not a faulted/held run's HOLD)
    failure: StrategyFailed | None = None  # its strategy failed: the acting pass faults it
    trouble: ExchangeUnavailable | ExchangeAuthFailed | None = None  # its candles not fetched
    abandoned: bool = False  # the service stops: its strategy's answer not waited for
    unanswered: bool = False  # not answered within the wait asked: answered as a quiet run
    quiet: bool = False  # faulted or held when its candle count was chosen: fetched for its
    # stops only, so never asked on them (a /resume meanwhile asks it at the next close)
    unbuilt: bool = False  # ``failure``: its strategy could not be built when asking began


type Ask[T] = Callable[[str, Strategy, pd.DataFrame], T]  # in the thread: the strategy's answer
type Quiet[T] = Callable[[str, Strategy, ExitPolicy, pd.DataFrame], T]  # on the loop, no user code


@dataclass(slots=True)
class Strategies:
    """The service's strategy objects, their exit policies read when built, and why a run's
    strategy could not be built; ``silenced(run)``: its strategy is not asked (faulted, held)."""

    built: Mapping[int, Strategy]
    policies: Mapping[int, ExitPolicy | StrategyFailed]
    unbuilt: Mapping[int, StrategyFailed]
    silenced: Callable[[PairRun], bool]


class Asking:
    """Gets the runs' candles and their strategies' answers, without the tick lock."""

    def __init__(
        self,
        threads: StrategyThreads,
        source: CandleSource,
        clock: Clock,
        history: Callable[[int], int],
    ) -> None:
        """``history(wanted)``: how many candles to fetch for a strategy wanting ``wanted``."""
        self._threads = threads
        self._source = source
        self._clock = clock
        self._history = history

    async def ask[T](
        self,
        runs: Sequence[PairRun],
        strategies: Strategies,
        ask: Ask[T],
        quiet: Quiet[T],
        *,
        new: Callable[[PairRun, int], bool],
        stopping: Callable[[], bool],
        within: float | None = None,
    ) -> list[Asked[T]]:
        """Each of ``runs``' candles and answer: ``ask`` (in a thread) for a run whose strategy
        decides, ``quiet`` (its policy read when built) for one faulted, held or failing now.
        ``new(run, last)``: the candle opened at ``last`` is not acted on yet (none asked
        otherwise). Once ``stopping()``, no more candles are fetched (those runs: nothing).
        ``within``: seconds a strategy is waited for (the start-up's); one not answering by then
        is answered for as a quiet run is, not failed (its computation goes on)."""
        asked = [Asked[T](run) for run in runs]
        wanted = await asyncio.gather(*(self._wanted(one, strategies, within) for one in asked))
        for one, count in zip(asked, wanted, strict=True):
            if stopping():
                log.warning("tick: stopping; %s and the pairs after it not ticked", one.run.pair)
                break
            if count is None:
                continue
            run = one.run
            try:
                one.candles = await self._source.closed_candles(
                    run.pair, self._clock.now(), self._history(count), run.timeframe
                )
            except (ExchangeUnavailable, ExchangeAuthFailed) as error:
                one.trouble = error
        due = [
            one
            for one in asked
            if not one.candles.empty and new(one.run, int(one.candles["timestamp"].iloc[-1]))
        ]
        await asyncio.gather(*(self._answer(one, strategies, ask, quiet, within) for one in due))
        return asked

    async def _wanted[T](
        self, one: Asked[T], strategies: Strategies, within: float | None
    ) -> int | None:
        """Candles ``one``'s strategy wants (0: a faulted or held one, or one failing now);
        None: none fetched (its strategy could not be built, or the service stops)."""
        run = one.run
        unbuilt = strategies.unbuilt.get(run.id)
        if unbuilt is not None:
            one.failure, one.unbuilt = unbuilt, True
            return None
        if strategies.silenced(run):
            one.quiet = True
            return 0
        strategy = strategies.built[run.id]
        try:
            read = partial(calls.history, run.pair, strategy)
            return await self._threads.call(run.pair, strategy, "its history", read, within)
        except Unanswered:
            one.unanswered = True
            return 0
        except StrategyFailed as failure:
            one.failure = failure
            return 0
        except Abandoned:
            one.abandoned = True
            return None

    async def _answer[T](
        self,
        one: Asked[T],
        strategies: Strategies,
        ask: Ask[T],
        quiet: Quiet[T],
        within: float | None,
    ) -> None:
        run, candles = one.run, one.candles
        strategy = strategies.built.get(run.id)
        if strategy is None:  # stopped while the candles were fetched: the acting pass drops it
            return
        if one.failure is None and not one.unanswered and not one.quiet:
            what = calls.candle_of(candles)
            try:
                work = partial(ask, run.pair, strategy, candles)
                one.answer = await self._threads.call(run.pair, strategy, what, work, within)
                one.heard = True
                return
            except Unanswered:
                one.unanswered = True
            except StrategyFailed as failure:  # asked before anything was sent: nothing done
                one.failure = failure
            except Abandoned:
                one.abandoned = True
                return
        one.answer = quieted(run, strategies, candles, quiet, one)


def quieted[T](
    run: PairRun, strategies: Strategies, candles: pd.DataFrame, quiet: Quiet[T], one: Asked[T]
) -> T | None:
    """``run``'s answer without its strategy (faulted, held, failing now): its exit policy as
    read when built; None when even that could not be read, or when it has no strategy object
    now (``one.failure`` set: a held run rebuilt by a /reload meanwhile, and that build
    failed; nothing set: stopped meanwhile, which the acting pass drops)."""
    strategy, policy = strategies.built.get(run.id), strategies.policies.get(run.id)
    if strategy is None or policy is None:
        one.failure = one.failure or strategies.unbuilt.get(run.id)
        return None
    if isinstance(policy, StrategyFailed):
        one.failure = one.failure or policy
        return None
    return quiet(run.pair, strategy, policy, candles)

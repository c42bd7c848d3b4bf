"""The trading service: ticks every active pair run on its closed candles.

A strategy failing (it raises, or returns garbage: ``StrategyFailed``) pauses only its pair
(bot/trading/faults.py says what a faulted pair does); the other pairs of the tick go on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial

import pandas as pd

from bot.core.domain import EquitySnapshot, PairRun, RunState
from bot.core.errors import BotError, ExchangeAuthFailed, ExchangeUnavailable, StrategyFailed
from bot.core.ports import CandleSource, Clock, EquityRepository
from bot.ops.telemetry import EQUITY, HALTED, PNL_TODAY, TICK_SECONDS, TICKS
from bot.trading import strategy_calls as calls
from bot.trading.engine import Engine
from bot.trading.faults import StrategyFaults
from bot.trading.strategy_thread import Abandoned, StrategyThreads
from bot.trading.twin import PaperTwin
from strategies import Strategy, build_strategy
from strategies.output import last_line

log = logging.getLogger(__name__)


class TradingService:
    """Owns the pair runs in memory and drives the engine once per closed candle."""

    def __init__(
        self,
        *,
        engine: Engine,
        source: CandleSource,
        equity: EquityRepository,
        clock: Clock,
        runs: Sequence[PairRun],
        faults: StrategyFaults,
        strategy_timeout: float = 30.0,
    ) -> None:
        """``faults``: the runs whose strategy failed (paused, not asked again until /resume);
        ``strategy_timeout``: seconds a strategy may compute on a candle before it is failed
        (bot/trading/strategy_thread.py)."""
        self._engine = engine
        self._threads = StrategyThreads(strategy_timeout)
        self.faults = faults
        self.twin: PaperTwin | None = None  # live mode's: handed each candle a live pair acted on
        self._source = source
        self._equity = equity
        self._clock = clock
        self._runs = {run.id: run for run in runs}
        self._strategies: dict[int, Strategy] = {}
        self._unbuilt: dict[int, StrategyFailed] = {}  # runs whose strategy cannot be built
        for run in runs:
            self._build(run)
        self._last_candle: dict[int, int] = {}
        # Runs the live gate holds (bot/trading/held_runs.py), run id -> why: ticked as a
        # faulted run is (their strategy never asked, no entries; their stops checked).
        self.held: dict[int, str] = {}
        self.last_ticks: dict[str, datetime] = {}  # pair -> when a tick last saw a new candle
        self.last_asked: dict[str, datetime] = {}  # pair -> when a tick last asked for candles
        self._prices: dict[str, float] = {}
        self.tick_lock = asyncio.Lock()  # one tick at a time, whoever triggers it
        # Operations (bot/trading/watch.py): why new entries are off (the data directory is
        # full or read-only; exits are still managed), and the exchange error of the last tick.
        self.entries_blocked: str | None = None
        self.exchange_trouble: str | None = None
        self.ticks = 0
        self._stopping = False

    def request_stop(self) -> None:
        """A stop was asked: the tick in progress ends after the pair it is on (a pair's
        order and its booking are never cut apart; the pairs left wait for the next start).
        A strategy still computing is not waited for: its pair is not acted on."""
        self._stopping = True
        self.abandon_strategies()

    def abandon_strategies(self) -> None:
        """The service stops: no strategy computing is waited for (a tick waiting on one acts
        on nothing more), none is asked again."""
        self._threads.abandon()

    def runs(self) -> list[PairRun]:
        return list(self._runs.values())

    def run_for(self, pair: str) -> PairRun | None:
        """The active (running or paused) run of ``pair``."""
        return next((run for run in self._runs.values() if run.pair == pair), None)

    def put_run(self, run: PairRun, strategy: Strategy | None = None) -> None:
        """Start ticking ``run``, or take its new state; a stopped run is dropped.
        ``strategy``: the object it trades with (the one the live gate judged), else built."""
        if strategy is not None:
            self._unbuilt.pop(run.id, None)
            self._strategies[run.id] = strategy
        if run.state is RunState.STOPPED:
            self._runs.pop(run.id, None)
            self._strategies.pop(run.id, None)
            self._unbuilt.pop(run.id, None)
            self.held.pop(run.id, None)
            return
        self._build(run)
        self._runs[run.id] = run

    async def clear_fault(
        self, run: PairRun, rebuilt: Strategy | StrategyFailed | None = None
    ) -> None:
        """``run`` was resumed: its strategy is asked again from the next close. ``rebuilt``:
        for a run whose strategy could not be built, the object built since (the one the live
        gate judged, bot/trading/control.py), or why it still cannot be (its next close
        faults it again); never built here, so no code reaches a run ungated."""
        await self.faults.clear(run.id)
        if isinstance(rebuilt, StrategyFailed):
            self._unbuilt[run.id] = rebuilt
        elif rebuilt is not None:
            self._unbuilt.pop(run.id, None)
            self._strategies[run.id] = rebuilt

    def unbuilt(self, run: PairRun) -> bool:
        """``run``'s strategy could not be built (its run is faulted, or is at the next close)."""
        return run.id in self._unbuilt

    def _build(self, run: PairRun) -> None:
        """``run``'s strategy, built once (its constructor is user code too); one that cannot
        be built (its file gone since /startpair, its constructor raising) faults its run at
        the next close, and is built again only at /resume."""
        if run.id in self._strategies or run.id in self._unbuilt:
            return
        try:
            self._strategies[run.id] = build_strategy(run.strategy, run.params)
        except Exception as error:  # user code, or a strategy no longer loaded
            self._unbuilt[run.id] = StrategyFailed(run.strategy, run.pair, last_line(error))

    def rebuild_held(self) -> None:
        """Build the held runs' strategies again from the registry (after a /reload): a held run
        never traded on the code it was built with, so it takes the new code; a running pair
        keeps its own until it is restarted."""
        for run_id in self.held:
            self._strategies.pop(run_id, None)
            self._unbuilt.pop(run_id, None)
            self._build(self._runs[run_id])

    def strategy_of(self, run: PairRun) -> Strategy | None:
        """The strategy object ``run`` trades with (its code as when the run was put); None
        when it could not be built (its run is faulted)."""
        return self._strategies.get(run.id)

    @property
    def prices(self) -> dict[str, float]:
        """The last close seen of every pair ticked."""
        return self._prices

    @property
    def strategy_timeout(self) -> float:
        """Seconds a strategy may compute before it is failed (the chat's calls wait as long)."""
        return self._threads.timeout

    async def prime(self) -> None:
        """Take each run's latest closed candle as seen without acting on it: after downtime
        the service trades on candles that close from now on, never on missed ones."""
        async with self.tick_lock:
            await self.faults.load()
            for run in list(self._runs.values()):
                await self._prime(run)

    async def start_run(self, run: PairRun, strategy: Strategy | None = None) -> None:
        """Tick a run started while the service runs, from the next candle close on (a signal
        from before it started is never acted on); ``strategy``: as for ``put_run``. The caller
        holds ``tick_lock``."""
        self.put_run(run, strategy)
        await self._prime(run)

    async def _prime(self, run: PairRun) -> None:
        run, candles = await self._candles(run)
        if candles.empty:
            return
        self._last_candle[run.id] = int(candles["timestamp"].iloc[-1])
        self._prices[run.pair] = float(candles["close"].iloc[-1])
        if self._engine.executor.unknown.waiting(run.pair):
            return  # held, as for ticks: a stop could rest on coins that are not pairpilot's
        strategy = self._strategies[run.id]
        for decide in self._tries(run):
            try:
                policy, atr = await self._ask(
                    run, candles, partial(calls.stop_inputs, run.pair, strategy, candles), decide
                )
                await self._engine.protect_between_candles(run, policy, atr, candles)
            except Abandoned:
                return
            except StrategyFailed as failure:
                run = await self._fault(run, failure)
                continue
            except BotError as error:  # the next close tries again; the start goes on
                log.warning("%s: its stop could not be restored now: %s", run.pair, error)
            return

    async def _candles(self, run: PairRun) -> tuple[PairRun, pd.DataFrame]:
        """``run`` (paused, when its strategy just failed) and the closed candles it needs;
        none for a run without a strategy (nothing of it can run: its stop resting on the
        exchange, if any, is all that protects it)."""
        unbuilt = self._unbuilt.get(run.id)
        if unbuilt is not None:
            return await self._fault(run, unbuilt), pd.DataFrame()
        wanted = 0
        if not self._silenced(run):
            strategy = self._strategies[run.id]
            read = partial(calls.history, run.pair, strategy)
            try:
                wanted = await self._threads.call(run.pair, strategy, "its history", read)
            except StrategyFailed as failure:
                run = await self._fault(run, failure)
        count = self._engine.history(wanted)
        return run, await self._source.closed_candles(
            run.pair, self._clock.now(), count, run.timeframe
        )

    def _tries(self, run: PairRun) -> tuple[bool, ...]:
        """How ``run``'s candle is acted on: with its strategy's decision, and without it
        once the strategy fails (its stops still checked); a faulted or held run only without."""
        return (False,) if self._silenced(run) else (True, False)

    def _silenced(self, run: PairRun) -> bool:
        """``run``'s strategy is not asked: it failed (faulted), or the live gate holds it."""
        return run.id in self.held or self.faults.of(run.id) is not None

    async def _fault(self, run: PairRun, failure: StrategyFailed) -> PairRun:
        """``run``'s strategy failed: its pair is paused (the first failure only: alerted
        once), the others go on."""
        if self.faults.of(run.id):  # failing still, even not asked for a decision
            log.warning("%s: not acted on at this close, its strategy fails: %s", run.pair, failure)
            return run
        paused = await self.faults.fault(run, failure)
        self.put_run(paused)
        return paused

    async def tick(self, timeframe: str | None = None) -> int:
        """One pass over the active runs (of ``timeframe``, or all); returns how many saw a
        new closed candle."""
        async with self.tick_lock:
            with TICK_SECONDS.time():
                return await self._tick(timeframe)

    async def _tick(self, timeframe: str | None) -> int:
        acted = 0
        await self.faults.load()
        try:
            await self._engine.executor.settle_unknown()
        except (ExchangeUnavailable, ExchangeAuthFailed) as error:  # books unsure: do not act
            # (an order the venue answers for but cannot be found in only holds its own pair)
            log.warning("tick: orders with an unknown outcome stay unsettled: %s", error)
            self.exchange_trouble = str(error)
            await self._failed(error)
            return 0
        failed = False
        for run in list(self._runs.values()):
            if not self._due(run, timeframe):
                continue
            if self._stopping or self._threads.abandoned:
                log.warning("tick: stopping; %s and the pairs after it not ticked", run.pair)
                break
            self.last_asked[run.pair] = self._clock.now()
            try:
                if run.state is not RunState.STOPPED and await self._tick_run(run):
                    acted += 1
            except (ExchangeUnavailable, ExchangeAuthFailed) as error:
                failed = True  # the other runs still tick
                self.exchange_trouble = str(error)
                log.warning("tick %s: %s", run.pair, error)
                await self._failed(error)
        done = not self._stopping  # stopping: no more exchange calls than the books need
        if done and (timeframe is None or acted):
            await self._engine.alert_unowned({run.pair for run in self._runs.values()})
        if done and not failed:
            self.exchange_trouble = None
            await self._engine.guard.exchange_answered()
        if acted:
            now = self._clock.now()
            portfolio = self._engine.portfolio
            equity = portfolio.equity(self._prices)
            await self._equity.add(EquitySnapshot(now, equity, portfolio.cash))
            await self._gauge(equity)
        self.ticks += 1
        TICKS.inc()
        return acted

    async def _failed(self, error: ExchangeUnavailable | ExchangeAuthFailed) -> None:
        await self._engine.guard.exchange_failed(
            error, self._clock.now(), resting_stops=self._engine.exchange.supports_stop_orders
        )

    def _due(self, run: PairRun, timeframe: str | None) -> bool:
        """``run`` ticks now: its timeframe's, and no order of its pair has an outcome the
        venue cannot tell (bot/execution/unknown_orders.py: the pair waits, alerted, until
        settled)."""
        if timeframe is not None and run.timeframe != timeframe:
            return False
        waiting = self._engine.executor.unknown.waiting(run.pair)
        if waiting:
            log.warning(
                "tick %s: not ticked, order(s) %s have an unknown outcome",
                run.pair,
                ", ".join(o.client_order_id for o in waiting),
            )
        return not waiting

    async def _gauge(self, equity: float) -> None:
        guard = self._engine.guard
        EQUITY.set(equity)
        day_start = await guard.day_start()
        PNL_TODAY.set(equity - day_start if day_start is not None else 0.0)
        HALTED.set(1 if await guard.halted() else 0)

    async def _tick_run(self, run: PairRun) -> bool:
        try:
            return await self._tick_candle(run)
        except Abandoned:  # stopping: nothing done for the pair (its strategy is asked first)
            log.warning("tick %s: stopping; its strategy computing is not waited for", run.pair)
            return False

    async def _tick_candle(self, run: PairRun) -> bool:
        run, candles = await self._candles(run)
        if candles.empty:
            return False
        last = int(candles["timestamp"].iloc[-1])
        if self._last_candle.get(run.id) == last:  # a tick never acts twice on one candle
            return False
        self._prices[run.pair] = float(candles["close"].iloc[-1])
        self.last_ticks[run.pair] = self._clock.now()
        for decide in self._tries(run):
            try:
                await self._act(run, candles, decide=decide)
            except StrategyFailed as failure:  # asked before anything was sent: nothing done
                run = await self._fault(run, failure)
                continue
            break
        # Done only once acted on: after an outage at the close, the candle is tried again.
        self._last_candle[run.id] = last
        log.debug("ticked %s at candle %s", run.pair, last)
        return True

    async def _act(self, run: PairRun, candles: pd.DataFrame, *, decide: bool) -> None:
        """``run``'s engine (and its paper twin) on its closed ``candles``."""
        strategy = self._strategies[run.id]
        decided = await self._ask(
            run, candles, partial(calls.decision, run.pair, strategy, candles), decide
        )
        held = run.id in self.held  # exits only, as paused: no entries
        if (held or self.entries_blocked) and run.state is RunState.RUNNING:
            run = dataclasses.replace(run, state=RunState.PAUSED)
        if self.twin is None:
            await self._engine.on_candles(run, decided, candles, self._prices)
        else:
            live = self.twin.live_run(run)
            fills = await self._engine.on_candles(live, decided, candles, self._prices)
            await self.twin.follow(run, decided, candles, self._prices, fills)

    async def _ask[T](
        self, run: PairRun, candles: pd.DataFrame, ask: Callable[..., T], decide: bool
    ) -> T:
        """``ask(decide=decide)`` of ``run``'s strategy on ``candles``: in a worker thread, all
        of the tick's calls in one; not deciding (its strategy failed, or is held), on the loop:
        only its exit policy is read then (its parameters), even beside a computation still
        running."""
        if not decide:
            return ask(decide=False)
        strategy = self._strategies[run.id]
        what = calls.candle_of(candles)
        return await self._threads.call(run.pair, strategy, what, partial(ask, decide=True))

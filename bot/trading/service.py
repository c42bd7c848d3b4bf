"""The trading service: ticks every active pair run on its closed candles.

A strategy failing (it raises, or returns garbage: ``StrategyFailed``) pauses only its pair
(bot/trading/faults.py says what a faulted pair does); the other pairs of the tick go on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from bot.core.domain import EquitySnapshot, PairRun, RunState
from bot.core.errors import BotError, ExchangeAuthFailed, ExchangeUnavailable, StrategyFailed
from bot.core.ports import CandleSource, Clock, EquityRepository
from bot.ops.telemetry import EQUITY, HALTED, PNL_TODAY, TICK_SECONDS, TICKS
from bot.trading import strategy_calls as calls
from bot.trading.asking import Asked, Asking, Strategies, quieted
from bot.trading.engine import Engine
from bot.trading.faults import StrategyFaults
from bot.trading.strategy_calls import Decision
from bot.trading.strategy_thread import StrategyThreads
from bot.trading.twin import PaperTwin
from strategies import ExitPolicy, Strategy, build_strategy
from strategies.output import last_line

log = logging.getLogger(__name__)

# Seconds a stop still waits for the strategies computing (at most the timeout): a quick one
# has its decision acted on; a stuck one does not hold the process (a replay's included).
STOP_GRACE = 2.0


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
        self._policies: dict[int, ExitPolicy | StrategyFailed] = {}  # as read when built
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
        # The books' lock: a tick takes it to act, never while its strategies compute
        # (bot/trading/asking.py); one tick at a time, whoever triggers it.
        self.tick_lock = asyncio.Lock()
        self._one_tick = asyncio.Lock()
        self._asking = Asking(self._threads, source, clock, engine.history)
        # Operations (bot/trading/watch.py): why new entries are off (the data directory is
        # full or read-only; exits are still managed), and the exchange error of the last tick.
        self.entries_blocked: str | None = None
        self.exchange_trouble: str | None = None
        self.ticks = 0
        self._stopping = False

    def request_stop(self) -> None:
        """A stop was asked (on an exchange): the tick in progress acts on the pairs whose
        decisions it has, a strategy computing waited for ``STOP_GRACE`` s at most; acting, it
        ends after the pair it is on (a pair's order and its booking are never cut apart; the
        pairs left wait for the next start)."""
        self._stopping = True
        self.abandon_strategies()

    def abandon_strategies(self, grace: float = STOP_GRACE) -> None:
        """No strategy is asked again, none computing is waited for longer than ``grace`` s
        (and the timeout): its pair is not acted on at that close."""
        self._threads.abandon(grace)

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
            self._keep(run, strategy)
        if run.state is RunState.STOPPED:
            self._runs.pop(run.id, None)
            self._strategies.pop(run.id, None)
            self._policies.pop(run.id, None)
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
            self._keep(run, rebuilt)

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
            built = build_strategy(run.strategy, run.params)
        except Exception as error:  # user code, or a strategy no longer loaded
            self._unbuilt[run.id] = StrategyFailed(run.strategy, run.pair, last_line(error))
            return
        self._keep(run, built)

    def _keep(self, run: PairRun, strategy: Strategy) -> None:
        """``strategy`` is ``run``'s; its exit policy read now, as built (its parameters): a
        faulted or held pair's stops use this one, never what the strategy's code made of its
        own objects since (read on the loop)."""
        self._strategies[run.id] = strategy
        try:
            self._policies[run.id] = calls.exit_policy(run.pair, strategy)
        except StrategyFailed as failure:
            self._policies[run.id] = failure

    def rebuild_held(self) -> None:
        """Build the held runs' strategies again from the registry (after a /reload): a held run
        never traded on the code it was built with, so it takes the new code; a running pair
        keeps its own until it is restarted."""
        for run_id in self.held:
            self._strategies.pop(run_id, None)
            self._policies.pop(run_id, None)
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
        the service trades on candles that close from now on, never on missed ones. The
        strategies are asked all at once, each waited for ``STOP_GRACE`` s at most: one slower
        has its stop restored from its exit policy as built, without the ATR (as a faulted
        pair's), and is asked again at the next close (failed then if it still computes)."""
        await self.faults.load()
        asked = await self._ask_stops(list(self._runs.values()))
        async with self.tick_lock:
            for one in asked:
                await self._primed(one)

    async def start_run(self, run: PairRun, strategy: Strategy | None = None) -> None:
        """Tick a run started while the service runs, from the next candle close on (a signal
        from before it started is never acted on); ``strategy``: as for ``put_run``. The caller
        holds ``tick_lock``."""
        self.put_run(run, strategy)
        (one,) = await self._ask_stops([run])
        await self._primed(one)

    async def _ask_stops(self, runs: list[PairRun]) -> list[Asked[tuple[ExitPolicy, float]]]:
        return await self._asking.ask(
            runs,
            self._table(),
            calls.stop_inputs,
            calls.quiet_stop_inputs,
            new=lambda run, last: True,
            stopping=lambda: self._stopping,
            within=STOP_GRACE,
        )

    async def _primed(self, one: Asked[tuple[ExitPolicy, float]]) -> None:
        """``one``'s candle taken as seen, its position's stop restored."""
        run = self._runs.get(one.run.id)
        if run is None:
            return
        if one.failure is not None:
            run = await self._fault(run, one.failure)
        if one.trouble is not None:
            raise one.trouble
        candles = one.candles
        if candles.empty:
            return
        self._last_candle[run.id] = int(candles["timestamp"].iloc[-1])
        self._prices[run.pair] = float(candles["close"].iloc[-1])
        if self._engine.executor.unknown.waiting(run.pair) or one.answer is None:
            return  # held, as for ticks: a stop could rest on coins that are not pairpilot's
        policy, atr = one.answer
        try:
            await self._engine.protect_between_candles(run, policy, atr, candles)
        except BotError as error:  # the next close tries again; the start goes on
            log.warning("%s: its stop could not be restored now: %s", run.pair, error)

    def _table(self) -> Strategies:
        return Strategies(self._strategies, self._policies, self._unbuilt, self._silenced)

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
        new closed candle. Their strategies are asked first, without the tick lock (a command
        sent meanwhile answers at once); each run is then acted on as it is by then."""
        async with self._one_tick:
            with TICK_SECONDS.time():
                await self.faults.load()
                runs = [r for r in self._runs.values() if timeframe in (None, r.timeframe)]
                asked = await self._asking.ask(
                    runs,
                    self._table(),
                    calls.decision,
                    calls.quiet_decision,
                    new=lambda run, last: self._last_candle.get(run.id) != last,
                    stopping=lambda: self._stopping,
                )
                async with self.tick_lock:
                    return await self._tick(asked, every=timeframe is None)

    async def _tick(self, asked: list[Asked[Decision]], *, every: bool) -> int:
        acted = 0
        try:
            await self._engine.executor.settle_unknown()
        except (ExchangeUnavailable, ExchangeAuthFailed) as error:  # books unsure: do not act
            # (an order the venue answers for but cannot be found in only holds its own pair)
            log.warning("tick: orders with an unknown outcome stay unsettled: %s", error)
            self.exchange_trouble = str(error)
            await self._failed(error)
            return 0
        failed = False
        stopped_before = self._stopping  # asked before: the decisions in hand are acted on
        for one in asked:
            run = one.run
            if not self._due(run):
                continue
            if self._stopping and not stopped_before:
                log.warning("tick: stopping; %s and the pairs after it not ticked", run.pair)
                break
            self.last_asked[run.pair] = self._clock.now()
            try:
                if await self._apply(one):
                    acted += 1
            except (ExchangeUnavailable, ExchangeAuthFailed) as error:
                failed = True  # the other runs still tick
                self.exchange_trouble = str(error)
                log.warning("tick %s: %s", run.pair, error)
                await self._failed(error)
        done = not self._stopping  # stopping: no more exchange calls than the books need
        if done and (every or acted):
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

    def _due(self, run: PairRun) -> bool:
        """No order of ``run``'s pair has an outcome the venue cannot tell
        (bot/execution/unknown_orders.py: the pair waits, alerted, until settled)."""
        waiting = self._engine.executor.unknown.waiting(run.pair)
        if waiting:
            ids = ", ".join(o.client_order_id for o in waiting)
            log.warning("tick %s: not ticked, order(s) %s have an unknown outcome", run.pair, ids)
        return not waiting

    async def _gauge(self, equity: float) -> None:
        guard = self._engine.guard
        EQUITY.set(equity)
        day_start = await guard.day_start()
        PNL_TODAY.set(equity - day_start if day_start is not None else 0.0)
        HALTED.set(1 if await guard.halted() else 0)

    async def _apply(self, one: Asked[Decision]) -> bool:
        """Act on ``one``'s candle with its decision, ``one``'s run as it is now: stopped
        meanwhile, nothing; paused, no entry; faulted or held, its strategy's answer unused."""
        run = self._current(one)
        if run is None:
            return False
        if one.failure is not None:  # asked before anything was sent: nothing done
            run = await self._fault(run, one.failure)
        if one.abandoned:  # stopping: nothing done for the pair (its strategy asked first)
            log.warning("tick %s: stopping; its strategy computing is not waited for", run.pair)
            return False
        candles = one.candles
        if candles.empty:
            return False
        last = int(candles["timestamp"].iloc[-1])
        if self._last_candle.get(run.id) == last:  # a tick never acts twice on one candle
            return False
        self._prices[run.pair] = float(candles["close"].iloc[-1])
        self.last_ticks[run.pair] = self._clock.now()
        if one.heard and self._silenced(run):  # faulted or held meanwhile
            one.answer = quieted(run, self._table(), candles, calls.quiet_decision, one)
        if one.answer is None:  # not even its exit policy read: faulted, not acted on
            assert one.failure is not None
            run = await self._fault(run, one.failure)
        else:
            await self._act(run, candles, one.answer)
        # Done only once acted on: after an outage at the close, the candle is tried again.
        self._last_candle[run.id] = last
        log.debug("ticked %s at candle %s", run.pair, last)
        return True

    def _current(self, one: Asked[Decision]) -> PairRun | None:
        """``one``'s run now; None: stopped meanwhile, or rebuilt by a /resume meanwhile (no
        candles fetched: asked at the next close). A failed fetch of its candles raises."""
        run = self._runs.get(one.run.id)
        if run is None or run.state is RunState.STOPPED:
            if one.answer is not None:
                log.info("tick %s: stopped while its strategy computed", one.run.pair)
            return None
        if one.trouble is not None:  # its candles could not be fetched
            raise one.trouble
        if one.unbuilt and not self.unbuilt(run):
            return None
        return run

    async def _act(self, run: PairRun, candles: pd.DataFrame, decided: Decision) -> None:
        """``run``'s engine (and its paper twin) on its closed ``candles``."""
        held = run.id in self.held  # exits only, as paused: no entries
        if (held or self.entries_blocked) and run.state is RunState.RUNNING:
            run = dataclasses.replace(run, state=RunState.PAUSED)
        if self.twin is None:
            await self._engine.on_candles(run, decided, candles, self._prices)
        else:
            live = self.twin.live_run(run)
            fills = await self._engine.on_candles(live, decided, candles, self._prices)
            await self.twin.follow(run, decided, candles, self._prices, fills)

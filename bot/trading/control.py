"""The control surface Telegram (and tests) drive: pair runs and the kill switch.

Bad requests raise UserInputError / NotFound and change nothing. Everything that trades takes
the service's tick lock, so a command never interleaves with a tick.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from functools import partial
from typing import Protocol

from bot.core.domain import DuplicateRun, Order, PairRun, RunState
from bot.core.errors import NotFound, StrategyFailed, UserInputError
from bot.core.ports import (
    AccountFeeReader,
    Clock,
    Exchange,
    MarketCatalog,
    PairRunRepository,
    PriceFeed,
    Retrying,
)
from bot.execution import order_by_hand
from bot.portfolio.holdings import Holding, compare
from bot.portfolio.outside import OutsideHoldings
from bot.trading import hand_orders, kill_switch
from bot.trading.engine import Engine
from bot.trading.held_runs import StartGate
from bot.trading.service import TradingService
from bot.trading.strategy_thread import chat_call
from strategies import Strategy, StrategyConfigError, build_strategy
from strategies.output import last_line

log = logging.getLogger(__name__)


class Markets(MarketCatalog, PriceFeed, Protocol):
    """What can be traded, and its price now."""


class Control:
    def __init__(
        self,
        *,
        runs: PairRunRepository,
        service: TradingService,
        engine: Engine,
        exchange: Exchange,
        markets: Markets,
        clock: Clock,
        quote: str,
        on_started: Callable[[PairRun], object] = lambda run: None,
        outside: OutsideHoldings | None = None,
        gate: StartGate | None = None,
    ) -> None:
        """``on_started``: told of each run started here (the service schedules its ticks);
        ``outside``: what the user holds on the account beside pairpilot (never sold);
        ``gate``: the live gate a start passes (None: none, a test's bare stack)."""
        self._runs = runs
        self._service = service
        self._engine = engine
        self._exchange = exchange
        self._markets = markets
        self._clock = clock
        self._quote = quote
        self._on_started = on_started
        self._outside = outside
        self.gate = gate

    async def start_pair(
        self,
        pair: str,
        strategy: str,
        timeframe: str,
        params: Mapping[str, object],
        capital_share: float | None,
    ) -> PairRun:
        """Start trading ``pair`` with ``capital_share`` (None: what the running pairs leave);
        every check runs before anything is stored, the capital one under the same lock as
        the start, so two starts at once cannot both take the same capital."""
        self._markets.check_pair(pair)
        self._markets.check_timeframe(pair, timeframe)
        try:  # its constructor is user code: off the loop, as long as a tick's call may take
            built = await chat_call(
                strategy,
                pair,
                "building it",
                partial(build_strategy, strategy, params),
                self._service.strategy_timeout,
            )
        except StrategyConfigError as error:
            raise UserInputError(str(error)) from None
        except StrategyFailed as failed:
            raise UserInputError(
                f"{pair} not started: {strategy} failed: {failed.reason}"
            ) from None
        if self.gate is not None:  # live: a strategy whose check has not passed is refused
            verdict = await self.gate.verdict(type(built), pair, timeframe, built.params)
            if not verdict.allowed:
                raise UserInputError(verdict.reason)
        async with self._service.tick_lock:
            taken = sum(run.capital_share for run in self._service.runs())
            if capital_share is None:
                capital_share = round(1 - taken, 6)
            if not 0 < capital_share <= 1:
                raise UserInputError(
                    f"capital share {capital_share:g} must be above 0, at most "
                    f"1 ({taken:.0%} is taken by the running pairs)"
                )
            if taken + capital_share > 1 + 1e-9:
                raise UserInputError(
                    f"capital shares would add up to {taken + capital_share:.0%}: the running "
                    f"pairs hold {taken:.0%}, at most {1 - taken:.0%} is left"
                )
            try:
                run = await self._runs.add(
                    pair=pair,
                    strategy=built.name,
                    timeframe=timeframe,
                    params=built.params,
                    capital_share=capital_share,
                    now=self._clock.now(),
                )
            except DuplicateRun:
                raise UserInputError(f"{pair} is already running; stop it first") from None
            await self._service.start_run(run, built)  # the object judged, not a rebuild
        if isinstance(self._exchange, AccountFeeReader):  # live: its entries sized at its fee
            await self._exchange.load_account_fees([pair])
        self._on_started(run)
        return run

    async def pause(self, pair: str) -> PairRun:
        """No new entries for ``pair``; its exits are still managed."""
        return await self._set_state(pair, RunState.PAUSED, RunState.RUNNING)

    async def resume(self, pair: str) -> PairRun:
        """New entries for ``pair`` again; a strategy that failed (bot/trading/faults.py) is
        asked again at the next close. One that could not be built is built now and, live,
        passes the gate first (refused: the pair stays paused)."""
        return await self._set_state(pair, RunState.RUNNING, RunState.PAUSED)

    async def stop(self, pair: str) -> PairRun:
        """Take ``pair``'s resting limit entry off the exchange (booking what of it filled),
        close its position at market, then stop its run. Dust too small to sell stays."""
        run = self._active(pair)
        async with self._service.tick_lock:
            # An order of the pair whose outcome is unknown is looked up first (under the
            # lock, not from what the last tick saw): while it cannot be told, a sale could
            # sell twice, and the run stopped would own coins booked later (nothing ticks it).
            problems: dict[str, str] = {}
            with self._at_once():  # only this pair's, now: the admin waits
                await self._engine.executor.settle_unknown(problems, pairs={pair}, now=True)
            if pair in problems:
                raise UserInputError(f"{pair} is not stopped: {problems[pair]}")
            await self._engine.cancel_pending_entry(run)
            price = await self._price(pair)
            await self._engine.close_position(run, "stop", price)
            if await self._engine.holding(run, price) is not None:
                raise UserInputError(f"{pair}: the position could not be closed; run not stopped")
            stopped = await self._runs.set_state(run.id, RunState.STOPPED, self._clock.now())
            self._service.put_run(stopped)
            await self._service.faults.clear(run.id)
            if self._service.twin is not None:  # its paper twin stops with it
                await self._service.twin.stop(stopped, price)
        return stopped

    async def flatten(self) -> kill_switch.FlattenReport:
        """The kill switch: halt, cancel pairpilot's open orders, sell every position, verify.
        Idempotent. It halts before it waits for the tick lock (halting needs no lock, like
        /halt): a stop while a stuck tick holds the lock then loses no halt."""
        halted_now = await self._engine.guard.halt("kill switch (flatten)", self._clock.now())
        async with self._service.tick_lock:
            pairs = {run.pair for run in self._service.runs()} | {
                position.pair for position in self._engine.portfolio.positions()
            }
            # An order whose outcome is unknown (its answer lost) is settled first: its coins
            # are pairpilot's and are sold too. A pair whose order the exchange cannot say
            # anything about yet is left as it is (selling it could sell twice), named in the
            # report with why; every other pair is flattened all the same.
            problems: dict[str, str] = {}
            with self._at_once():
                await self._engine.executor.settle_unknown(problems, now=True)
            unknown = set(problems)
            for run in self._service.runs():
                if run.pair in unknown:  # its look-up fails: the entry's outcome is unknown
                    continue
                await kill_switch.attempt(
                    problems, run.pair, self._engine.cancel_pending_entry(run)
                )
            if self._outside:  # a pair started since the last start: the user's own coins
                # (a failed read is one problem of the report: the kill switch goes on)
                await kill_switch.attempt(
                    problems, "your own holdings", self._own_recorded(pairs - unknown)
                )
            # Each position's stop is taken off only as it is sold (and put back if the sale
            # fails): a kill switch that fails part-way leaves no position unprotected.
            closed = {}
            for position in self._engine.portfolio.positions():
                if position.pair in unknown:
                    continue
                run = self._service.run_for(position.pair) or await self._runs.latest_for(
                    position.pair
                )
                price = await self._price(run.pair)
                sale = self._engine.close_position(run, "flatten", price)
                fills = await kill_switch.attempt(problems, position.pair, sale)
                closed[position.pair] = sum(fill.amount for fill in fills or [])
                if fills and self._service.twin is not None:  # its twin sells alike
                    await self._service.twin.sell(run, price, "flatten")
            # A pair still held keeps its stop (put back after a refused sale): not cancelled.
            flat = [
                pair
                for pair in sorted(pairs - unknown)
                if not await kill_switch.held(
                    self._exchange, self._engine.portfolio, pair, self._price
                )
            ]
            cancelled = await kill_switch.attempt(
                problems,
                "open orders",
                kill_switch.cancel_ours(self._exchange, self._engine.executor.journal, flat),
            )
            balances = await self._exchange.fetch_balances()
            left = await kill_switch.left_over(
                self._exchange, self._outside, balances, pairs, self._price
            )
        if left or problems:
            log.error("flatten left %s on the exchange (%s)", left, problems)
        return kill_switch.FlattenReport(halted_now, cancelled or 0, closed, left, problems)

    async def _own_recorded(self, pairs: set[str]) -> None:
        """Record the user's own coins of ``pairs`` not recorded yet (see OutsideHoldings)."""
        assert self._outside is not None
        books = {pair.split("/")[0]: self._engine.portfolio.position(pair) for pair in pairs}
        await self._outside.complete(
            {asset: p.amount if p else 0.0 for asset, p in books.items()},
            await self._exchange.fetch_balances(),
        )

    async def holdings(self) -> list[Holding]:
        """The quote and each traded coin: the books, the exchange, the user's own."""
        outside = self._require_outside()
        balances = await self._exchange.fetch_balances()
        return compare(self._books(), balances, await outside.get())

    async def accept_holdings(self) -> list[Holding]:
        """Take what the exchange holds beyond the books now as the user's own (their own
        deposit or withdrawal, a coin held before its pair was traded), so it is no drift.
        An order whose outcome is unknown is settled first (its coins are pairpilot's, never
        the user's); while the exchange cannot say, this raises and records nothing."""
        outside = self._require_outside()
        async with self._service.tick_lock:
            await self._engine.executor.settle_unknown()
            waiting = self._engine.executor.unknown.refusal()
            if waiting is not None:  # its coins may be pairpilot's: nothing is recorded
                raise UserInputError(f"not accepted: {waiting}")
            books = self._books()
            balances = await self._exchange.fetch_balances()
            own = await outside.accept(books, balances)
        log.warning("the user's own holdings accepted as %s", own)
        return compare(books, balances, own)

    async def order_preview(self, arguments: list[str]) -> str:
        """What /order with ``arguments`` would do now (bad input raises, nothing changes)."""
        settlement = order_by_hand.parse(arguments)
        order = await self._settleable(settlement)
        then = await hand_orders.then(self._engine, self._service, order, settlement)
        return order_by_hand.preview(order, settlement, self._engine.portfolio.cash, then)

    async def settle_order(self, arguments: list[str], actor: str) -> str:
        """/order: settle by hand an order whose outcome the exchange cannot tell, under the
        tick lock (bot/execution/order_by_hand.py); its pair no longer waits on it from the next
        tick."""
        settlement = order_by_hand.parse(arguments)
        async with self._service.tick_lock:
            order = await self._settleable(settlement)  # again: the books may have moved
            if settlement.venue_id:
                done, trade, final = await hand_orders.by_venue_id(
                    self._engine, self._service, order, settlement, self._clock
                )
            else:
                cash, then = (
                    self._engine.portfolio.cash,
                    await hand_orders.then(self._engine, self._service, order, settlement),
                )
                done = f"Done: {order_by_hand.preview(order, settlement, cash, then)}."
                trade = await order_by_hand.settle(
                    self._engine.executor, order, settlement, actor, self._clock.now()
                )
                final = True
            run = self._service.run_for(order.pair) or await self._runs.latest_for(order.pair)
            if trade is not None and run is not None:  # a loss counts toward the cooldown
                await self._engine.count_trade(run, trade)
            # A limit entry remembered as pending and settled now: the run forgets it, so the
            # next tick neither looks it up again (booking it twice) nor waits on it. One
            # still resting stays pending: the next candle's close cancels it and books it.
            if final:
                await self._engine.forget_entry(order.pair, order.client_order_id)
        log.warning("/order by %s: %s", actor, done)
        return done

    async def _settleable(self, settlement: order_by_hand.Settlement) -> Order:
        """The order /order names, when it may be settled as ``settlement`` says: it waits on
        an unknown outcome, and the numbers are near its pair's last price."""
        order = await order_by_hand.checked(self._engine.executor, settlement)
        order_by_hand.sane(order, settlement, await self._price(order.pair))
        return order

    def _at_once(self) -> AbstractContextManager[None]:
        """Requests made once, not retried: an admin's command waits for them."""
        if isinstance(self._exchange, Retrying):
            return self._exchange.one_attempt()
        return contextlib.nullcontext()

    def _require_outside(self) -> OutsideHoldings:
        if self._outside is None:
            raise UserInputError("this account keeps no holdings of yours apart")
        return self._outside

    def _books(self) -> dict[str, float]:
        """Pairpilot's holdings: the quote's cash, then each traded coin (0 when flat)."""
        pairs = {run.pair for run in self._service.runs()} | {
            position.pair for position in self._engine.portfolio.positions()
        }
        books = {self._quote: self._engine.portfolio.cash}
        for pair in sorted(pairs):
            position = self._engine.portfolio.position(pair)
            books[pair.split("/")[0]] = position.amount if position else 0.0
        return books

    async def _set_state(self, pair: str, to: RunState, expected: RunState) -> PairRun:
        run = self._active(pair)
        if run.state is not expected:
            raise UserInputError(f"{pair} is {run.state.value}, not {expected.value}")
        async with self._service.tick_lock:
            built = await self._gated_rebuild(run) if to is RunState.RUNNING else None
            changed = await self._runs.set_state(run.id, to, self._clock.now())
            self._service.put_run(changed)
            if to is RunState.RUNNING:
                await self._service.clear_fault(changed, built)
        return changed

    async def _gated_rebuild(self, run: PairRun) -> Strategy | StrategyFailed | None:
        """The strategy of a run that could not be built, built now and judged by the gate
        (refused: UserInputError, nothing changed), or why it still cannot be built (its next
        close faults it again); None when it had one (gated when it was put)."""
        if not self._service.unbuilt(run):
            return None
        try:  # user code (off the loop), or a strategy no longer loaded
            built = await chat_call(
                run.strategy,
                run.pair,
                "building it",
                partial(build_strategy, run.strategy, run.params),
                self._service.strategy_timeout,
            )
        except StrategyConfigError as error:  # its parameters no longer accepted
            return StrategyFailed(run.strategy, run.pair, last_line(error))
        except StrategyFailed as failure:
            return failure
        if self.gate is not None:
            verdict = await self.gate.verdict(type(built), run.pair, run.timeframe)
            if not verdict.allowed:
                raise UserInputError(
                    f"{run.pair} not resumed: the gate refused it: {verdict.reason}"
                )
        return built

    def _active(self, pair: str) -> PairRun:
        run = self._service.run_for(pair)
        if run is None:
            running = ", ".join(r.pair for r in self._service.runs()) or "none"
            raise NotFound(f"{pair} has no active run (running: {running})")
        return run

    async def _price(self, pair: str) -> float:
        """The last close ticked, else the market's price now (a pair no run ticks)."""
        ticked = self._service.prices.get(pair)
        return ticked if ticked else await self._markets.price(pair, self._clock.now())

"""Leaving a position: the sale, what is left of it (the rest, dust), and an exit never lost.

A sale cancels the resting stop first and puts it back when the sale fails; an exit decided
but not sent, or sold in part, is finished at the next close; what is too small to sell is
dust, treated as flat.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

import pandas as pd

from bot.core.domain import (
    Action,
    AlertPriority,
    Fill,
    OrderIntent,
    OrderStatus,
    PairRun,
    Position,
    Side,
    Signal,
    Trade,
    from_ms,
    to_ms,
)
from bot.core.errors import BotError
from bot.core.ports import Clock, Exchange, StateStore
from bot.execution.executor import Executor
from bot.execution.resting_stops import RestingStops
from bot.ops.decisions import decision
from bot.portfolio.books import Portfolio
from bot.risk.guard import RiskGuard
from bot.risk.sizing import client_order_id, size_exit
from bot.trading.protection import ExitDue, ProtectionStore, declared_dust

log = logging.getLogger(__name__)

UNOWNED_KEY = "unowned_positions"  # pairs held with no run, already alerted


class Exits:
    def __init__(
        self,
        *,
        executor: Executor,
        portfolio: Portfolio,
        guard: RiskGuard,
        protections: ProtectionStore,
        stops: RestingStops,
        state: StateStore,
        clock: Clock,
    ) -> None:
        self._executor = executor
        self._portfolio = portfolio
        self._guard = guard
        self._protections = protections
        self._stops = stops
        self._state = state
        self._clock = clock

    @property
    def _exchange(self) -> Exchange:
        return self._executor.exchange

    async def close_position(self, run: PairRun, purpose: str, price: float) -> list[Fill]:
        """Sell all of ``run``'s pair at market now (stopping a run, the kill switch); dust, too
        small for the exchange to sell, is left as it is."""
        position = await self.holding(run, price)
        if position is None:
            return []
        now = self._clock.now()
        signal = Signal(run.pair, now, Action.EXIT, price, purpose)
        intent = size_exit(signal, run=run, position=position, now=now)
        intent = dataclasses.replace(
            intent, client_order_id=client_order_id(run.id, now, Side.SELL, purpose)
        )
        return await self.sell(run, intent, now)

    async def holding(self, run: PairRun, price: float) -> Position | None:
        """``run``'s position, unless it is dust: too small for the exchange to sell (what a
        partly filled exit or a fee in the coin bought leaves). Dust is treated as flat and
        shown in /positions; it stays in the books, the next entry adds to it and the next exit
        sells it along. Announced the first time a pair leaves dust, not after every trade."""
        position = self._portfolio.position(run.pair)
        if position is None:
            return None
        saved = await self._protections.get(run.pair)
        if declared_dust(saved, position.amount):
            return None
        why = self._exchange.too_small(run.pair, position.amount, price)
        if why is None:
            return position
        await self._protections.set(
            run.pair,
            dataclasses.replace(saved, dust=position.amount, exit_pending=None, exit_due=None),
        )
        decision(run.pair, "hold", f"dust left, treated as flat: {why}")
        # The rest of a sale (the engine's, or one booked later: a lost answer, /order, a stop
        # found at start-up) that is dust now: its trade closed at that sale. Declared once.
        trade = await self._executor.closed_as_dust(position)
        await self._guard.booked(run, self._clock.now(), [], trade)
        if not await self._state.get(f"dust_announced:{run.pair}"):
            await self._state.set(f"dust_announced:{run.pair}", True, self._clock.now())
            await self._executor.notify(
                "dust",
                AlertPriority.INFO,
                f"{run.pair}: {position.amount:.8g} left unsold, too small for the exchange "
                f"({why}); it is sold along with the next exit. Dust like this is said once "
                "and shown in /positions.",
            )
        return None

    async def is_dust(self, position: Position, price: float) -> bool:
        """Too small for the exchange to sell: shown, but no position (see ``holding``). Once
        declared dust (the amount saved), it stays dust until an entry or an exit sweeps it,
        whatever the price does: worth more than the exchange's minimum at a higher price, it
        would turn back into a position that blocks entries and counts as open."""
        if self._exchange.too_small(position.pair, position.amount, price) is not None:
            return True
        return declared_dust(await self._protections.get(position.pair), position.amount)

    async def remember_exit(self, run: PairRun, signal: Signal) -> None:
        """An exit signal is written down before anything is sent: when the exchange fails at
        this close, the next tick still sells (a crossover exit lasts one candle)."""
        if signal.action is not Action.EXIT or self._portfolio.position(run.pair) is None:
            return
        saved = await self._protections.get(run.pair)
        if not saved.exit_due:
            due = ExitDue(reason=signal.reason, candle=to_ms(signal.candle_time))
            await self._protections.set(run.pair, dataclasses.replace(saved, exit_due=due))

    async def sell_on_signal(
        self, run: PairRun, signal: Signal, position: Position, close_time: datetime
    ) -> list[Fill]:
        """Sell ``position`` at market on the exit ``signal``, written down first: the tick wrote
        its exit down before a limit entry filled in this candle was booked (and booking it
        starts the position's state afresh), so a sale that fills nothing (a candle with no
        volume) is sent again at the next close (``finish_exit``)."""
        await self.remember_exit(run, signal)
        sale = size_exit(signal, run=run, position=position, now=self._clock.now())
        return await self.sell(run, sale, close_time)

    async def alert_unowned(self, active_pairs: set[str]) -> None:
        """Coins held for a pair no run trades (an order of a stopped run that filled later)
        are neither ticked nor protected: alerted once per arrival, /flatten sells them."""
        unowned = {
            p.pair: p
            for p in self._portfolio.positions()
            if p.pair not in active_pairs
            and self._exchange.too_small(p.pair, p.amount, p.average_price) is None
        }
        alerted = set(await self._state.get(UNOWNED_KEY) or [])
        for pair in sorted(set(unowned) - alerted):
            await self._executor.notify(
                "reconciliation_drift",
                AlertPriority.ERROR,
                f"{pair}: {unowned[pair].amount:.8g} held with no run trading it, so nothing "
                "protects it. /flatten sells it, or /startpair trades it again.",
            )
        if alerted != set(unowned):
            await self._state.set(UNOWNED_KEY, sorted(unowned), self._clock.now())

    async def finish_exit(
        self, run: PairRun, candle: pd.Series, close_time: datetime
    ) -> list[Fill]:
        """Sell what a partly filled exit left, or an exit an earlier close decided but could not
        send, at this close: an exit is never half done nor lost."""
        position = await self.holding(run, float(candle["close"]))
        saved = await self._protections.get(run.pair)
        due = saved.exit_due
        late = due is not None and due.candle != int(candle["timestamp"])
        if position is None or not (saved.exit_pending or late):
            return []
        reason = saved.exit_pending or (due.reason if due is not None else "exit")
        if not saved.exit_pending and due is not None:
            log.warning(
                "%s: the exit decided at %s was not sent then; selling now",
                run.pair,
                from_ms(due.candle),
            )
        candle_time = from_ms(int(candle["timestamp"]))
        signal = Signal(
            run.pair, candle_time, Action.EXIT, float(candle["close"]), f"rest of {reason}"
        )
        intent = dataclasses.replace(
            size_exit(signal, run=run, position=position, now=self._clock.now()),
            client_order_id=client_order_id(run.id, candle_time, Side.SELL, "rest"),
        )
        return await self.sell(run, intent, close_time)

    async def _never_sold(self, run: PairRun, sale: str) -> bool:
        """Whether a sale that failed is known not to have happened: refused before it was sent,
        or looked up again and absent. One that filled after all is booked here; while its
        outcome is unknown, no stop is put back (it could sell coins already sold: the next
        tick settles the sale, then places a stop if the position is still held)."""
        order = await self._executor.journal.get(sale)
        if order is None or order.status is OrderStatus.REJECTED:
            return True
        if order.status.is_final:  # booked already (by hand, or found): never looked up again
            return False
        try:
            report = await self._exchange.lookup(order)
        except BotError:
            return False
        if report is not None:
            await self._guard.booked(run, self._clock.now(), *await self._executor.settle(report))
        return report is None and self._portfolio.position(run.pair) is not None

    async def _restore_stop(self, run: PairRun, level: float, sale: str) -> None:
        """Put back the stop a failed or refused sell took off; if the exchange refuses now too,
        the next tick places it (``Protector.ensure``)."""
        try:
            placed = await self._stops.place(
                run, level, self._clock.now(), f"restore{sale}"
            )  # one id per sale
        except BotError as error:
            log.warning("%s: the stop could not be placed again yet: %s", run.pair, error)
            return
        await self._guard.booked(run, self._clock.now(), *placed)

    async def count_trade(self, run: PairRun, trade: Trade) -> None:
        """A trade closed away from a tick (a stop that fired while pairpilot was down, found
        at start-up) counts toward the cooldown like any other."""
        await self._guard.booked(run, self._clock.now(), [], trade)

    async def sell(self, run: PairRun, intent: OrderIntent, close_time: datetime) -> list[Fill]:
        """Sell at market; a resting stop is cancelled first (booked instead if it filled), and
        placed again when the sell fails to reach the exchange."""
        level = await self._stops.level(run.pair)
        cancelled = await self._guard.booked(run, close_time, *await self._stops.cancel(run.pair))
        position = self._portfolio.position(run.pair)
        if position is None:
            return cancelled
        if position.amount != intent.amount:  # the stop filled in part before it was cancelled
            intent = dataclasses.replace(intent, amount=position.amount)
        try:
            fills, trade = await self._executor.execute(intent)
        except BotError:
            if level is not None and await self._never_sold(run, intent.client_order_id):
                await self._restore_stop(run, level, intent.client_order_id)
            raise
        if not fills and level is not None and self._portfolio.position(run.pair) is not None:
            await self._restore_stop(run, level, intent.client_order_id)  # the sale was refused
        rest = self._portfolio.position(run.pair)
        if fills and rest is not None:  # partly filled: the rest is sold at the next close
            saved = await self._protections.get(run.pair)
            reason = intent.reason.removeprefix("rest of ")
            await self._protections.set(run.pair, dataclasses.replace(saved, exit_pending=reason))
            if level is not None and not await self.is_dust(rest, intent.reference_price):
                await self._restore_stop(run, level, intent.client_order_id)  # until then
        return cancelled + await self._guard.booked(run, close_time, fills, trade)

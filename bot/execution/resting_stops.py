"""Stop-losses resting on the exchange, where the exchange holds them.

A resting stop protects the position while pairpilot is down or cut off. The engine keeps its
other exit rules (take-profit, signals, a stop the exchange did not fire) and cancels the
resting stop before any other sell; a stop that filled in the meantime is booked instead, so
a position is never sold twice. On the paper exchange nothing rests: stops are checked on every
candle there, exactly as the backtest does.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from bot.core.domain import AlertPriority, Fill, Order, OrderIntent, PairRun, Side, Trade
from bot.core.errors import ExchangeUnavailable
from bot.core.ports import Clock, OrderJournal
from bot.execution.executor import Executor
from bot.portfolio.books import Portfolio
from bot.risk.sizing import client_order_id

log = logging.getLogger(__name__)


class StopBook(Protocol):
    """Where each pair's resting stop is remembered: its client order id and level (the
    position's protection state, ``bot.trading.protection.ProtectionStore``)."""

    async def stop_of(self, pair: str) -> tuple[str, float | None] | None: ...

    async def remember_stop(self, pair: str, client_order_id: str, level: float) -> None: ...

    async def forget_stop(self, pair: str) -> None: ...


class RestingStops:
    def __init__(
        self,
        *,
        executor: Executor,
        journal: OrderJournal,
        portfolio: Portfolio,
        book: StopBook,
        clock: Clock,
    ) -> None:
        self._executor = executor
        self._journal = journal
        self._portfolio = portfolio
        self._book = book
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self._executor.exchange.supports_stop_orders

    async def place(
        self, run: PairRun, level: float, candle_time: datetime, purpose: str = "stop"
    ) -> tuple[list[Fill], Trade | None]:
        """Rest a stop-loss for the whole position at ``level``; it may fill at once.

        An id the journal has but the state does not name as the resting stop belongs to
        another order (a placement that was already taken off): the executor would send
        nothing, so it is not remembered as resting but alerted, and the next tick places one.
        """
        position = self._portfolio.position(run.pair)
        if position is None or not self.enabled:
            return [], None
        coid = client_order_id(run.id, candle_time, Side.SELL, purpose)
        named = await self._book.stop_of(run.pair)
        if await self._journal.get(coid) is not None and (named is None or named[0] != coid):
            text = (
                f"{run.pair}: the stop's client order id {coid} is another order's already; "
                "no stop was placed now, the next candle places one"
            )
            log.error(text)
            await self._executor.notify("reconciliation_drift", AlertPriority.ERROR, text)
            return [], None
        intent = OrderIntent(
            client_order_id=coid,
            run_id=run.id,
            pair=run.pair,
            side=Side.SELL,
            amount=position.amount,
            reference_price=level,
            created_at=self._clock.now(),
            reason="stop_loss",
            stop_price=level,
        )
        await self._book.remember_stop(run.pair, intent.client_order_id, level)
        return await self._executor.execute(intent)

    async def named(self, pair: str) -> tuple[str, float] | None:
        """The client order id and level the state names as the resting stop, journaled or
        not (an order /order reads by the venue's id may be it: it is followed here)."""
        named = await self._book.stop_of(pair)
        return None if named is None else (named[0], float(named[1] or 0.0))

    async def level(self, pair: str) -> float | None:
        """The level of the stop resting now, None when none is (or it was never journaled)."""
        named = await self._book.stop_of(pair)
        return named[1] if named is not None and await self._resting(pair) else None

    async def amount(self, pair: str) -> float | None:
        """What the resting stop would still sell, None when none rests."""
        order = await self._resting(pair)
        return order.amount - order.filled if order is not None else None

    async def settle(self, pair: str) -> tuple[list[Fill], Trade | None]:
        """Book whatever the resting stop did since the last look."""
        order = await self._resting(pair)
        if order is None:
            return [], None
        if order.status.is_final:  # booked already: never looked up (nor booked) again
            await self._book.forget_stop(pair)
            return [], None
        report = await self._executor.exchange.lookup(order)
        if report is None:  # the exchange never got it: nothing rests
            await self._book.forget_stop(pair)
            return [], None
        if report.status.is_final:
            await self._book.forget_stop(pair)
        return await self._executor.settle(report)

    async def cancel(self, pair: str) -> tuple[list[Fill], Trade | None]:
        """Take the resting stop off the exchange before another sell; books it if it filled.

        The cancel is confirmed by looking the order up: while the exchange still shows it
        open, it is kept (and ExchangeUnavailable raised), so no sell runs beside a live stop.
        """
        order = await self._resting(pair)
        if order is None:
            return [], None
        report = await self._executor.exchange.cancel_order(order)
        if report is not None and not report.status.is_final:
            await self._executor.settle(report)  # what filled meanwhile is booked all the same
            raise ExchangeUnavailable(
                f"{order.pair}: the cancel of stop {order.client_order_id} is not confirmed; "
                "it stays in force"
            )
        await self._book.forget_stop(pair)
        if report is None:
            return [], None
        return await self._executor.settle(report)

    async def _resting(self, pair: str) -> Order | None:
        """The journaled stop the state names. An id the journal does not have was remembered
        and then the process died before journaling it, so it was never sent: it is
        forgotten, and the position's next tick places a stop again."""
        named = await self._book.stop_of(pair)
        order = await self._journal.get(named[0]) if named is not None else None
        if named is not None and order is None:
            await self._book.forget_stop(pair)
        return order

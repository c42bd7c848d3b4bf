"""Stop-losses resting on the exchange, where the exchange holds them.

A resting stop protects the position while pairpilot is down or cut off. The engine keeps its
other exit rules (take-profit, signals, a stop the exchange did not fire) and cancels the
resting stop before any other sell; a stop that filled in the meantime is booked instead, so
a position is never sold twice. On the paper exchange nothing rests: stops are checked on every
candle there, exactly as the backtest does.
"""

from __future__ import annotations

from datetime import datetime

from bot.core.domain import Fill, Order, OrderIntent, PairRun, Side, Trade
from bot.core.errors import ExchangeUnavailable
from bot.core.ports import Clock, OrderJournal, StateStore
from bot.execution.executor import Executor
from bot.portfolio.books import Portfolio
from bot.risk.sizing import client_order_id

_KEY = "resting_stop"  # in the position's protection state: the stop's client order id
_LEVEL = "resting_level"


class RestingStops:
    def __init__(
        self,
        *,
        executor: Executor,
        journal: OrderJournal,
        portfolio: Portfolio,
        state: StateStore,
        clock: Clock,
    ) -> None:
        self._executor = executor
        self._journal = journal
        self._portfolio = portfolio
        self._state = state
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self._executor.exchange.supports_stop_orders

    async def place(
        self, run: PairRun, key: str, level: float, candle_time: datetime, purpose: str = "stop"
    ) -> tuple[list[Fill], Trade | None]:
        """Rest a stop-loss for the whole position at ``level``; it may fill at once."""
        position = self._portfolio.position(run.pair)
        if position is None or not self.enabled:
            return [], None
        intent = OrderIntent(
            client_order_id=client_order_id(run.id, candle_time, Side.SELL, purpose),
            run_id=run.id,
            pair=run.pair,
            side=Side.SELL,
            amount=position.amount,
            reference_price=level,
            created_at=self._clock.now(),
            reason="stop_loss",
            stop_price=level,
        )
        saved = await self._state.get(key) or {}
        await self._state.set(
            key, {**saved, _KEY: intent.client_order_id, _LEVEL: level}, self._clock.now()
        )
        return await self._executor.execute(intent)

    async def named(self, key: str) -> tuple[str, float] | None:
        """The client order id and level the state names as the resting stop, journaled or
        not (an order /order reads by the venue's id may be it: it is followed here)."""
        saved = await self._state.get(key) or {}
        coid = saved.get(_KEY)
        return (coid, float(saved.get(_LEVEL) or 0.0)) if coid else None

    async def level(self, key: str) -> float | None:
        """The level of the stop resting now, None when none is (or it was never journaled)."""
        saved = await self._state.get(key) or {}
        return saved.get(_LEVEL) if await self._resting(key) else None

    async def amount(self, key: str) -> float | None:
        """What the resting stop would still sell, None when none rests."""
        order = await self._resting(key)
        return order.amount - order.filled if order is not None else None

    async def settle(self, key: str) -> tuple[list[Fill], Trade | None]:
        """Book whatever the resting stop did since the last look."""
        order = await self._resting(key)
        if order is None:
            return [], None
        if order.status.is_final:  # booked already: never looked up (nor booked) again
            await self._forget(key)
            return [], None
        report = await self._executor.exchange.lookup(order)
        if report is None:  # the exchange never got it: nothing rests
            await self._forget(key)
            return [], None
        if report.status.is_final:
            await self._forget(key)
        return await self._executor.settle(report)

    async def cancel(self, key: str) -> tuple[list[Fill], Trade | None]:
        """Take the resting stop off the exchange before another sell; books it if it filled.

        The cancel is confirmed by looking the order up: while the exchange still shows it
        open, it is kept (and ExchangeUnavailable raised), so no sell runs beside a live stop.
        """
        order = await self._resting(key)
        if order is None:
            return [], None
        report = await self._executor.exchange.cancel_order(order)
        if report is not None and not report.status.is_final:
            await self._executor.settle(report)  # what filled meanwhile is booked all the same
            raise ExchangeUnavailable(
                f"{order.pair}: the cancel of stop {order.client_order_id} is not confirmed; "
                "it stays in force"
            )
        await self._forget(key)
        if report is None:
            return [], None
        return await self._executor.settle(report)

    async def _resting(self, key: str) -> Order | None:
        """The journaled stop the state names. An id the journal does not have was remembered
        and then the process died before journaling it, so it was never sent: it is
        forgotten, and the position's next tick places a stop again."""
        saved = await self._state.get(key) or {}
        coid = saved.get(_KEY)
        order = await self._journal.get(coid) if coid else None
        if coid and order is None:
            await self._forget(key)
        return order

    async def _forget(self, key: str) -> None:
        saved = dict(await self._state.get(key) or {})
        saved.pop(_KEY, None)
        saved.pop(_LEVEL, None)
        await self._state.set(key, saved, self._clock.now())

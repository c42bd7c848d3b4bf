"""Booking dust conversions, each once: the journal of a conversion asked (``dust.pending``)
and the books' side of each conversion found (bot/trading/dust.py decides and asks).

A converted position is closed in the books by a sell of the dust at the last price whose fee
is the whole of its value: cash does not move, the position is flat, and the dust's cost is
realised as a loss. The coins received, and the part of the user's own coins the venue
converted along, move the user's own holdings (bot/portfolio/outside.py). Each conversion's
journal row is keyed by the venue's transfer id and written in the same transaction as the fill
and the journal's clearing, so a conversion is booked once whatever crashes between.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core.domain import (
    CONVERSION_PREFIX,
    DustConversion,
    ExecutionReport,
    Fill,
    OrderIntent,
    OrderStatus,
    Side,
)
from bot.core.ports import Clock, OrderJournal, PairRunRepository, StateStore, Transactions
from bot.portfolio.outside import OutsideHoldings
from bot.trading.engine import Engine

PENDING_KEY = "dust.pending"
DUST_REASON = "dust_conversion"


@dataclass(frozen=True, slots=True)
class Converted:
    pair: str
    booked: float  # of the books' dust, closed
    value: float  # its value at the last price: realised as a loss
    conversion: DustConversion


class ConversionBooks:
    """The journal of a conversion asked, and each conversion booked once (see the module doc)."""

    def __init__(
        self,
        *,
        db: Transactions,
        state: StateStore,
        orders: OrderJournal,
        runs: PairRunRepository,
        engine: Engine,
        outside: OutsideHoldings,
        clock: Clock,
    ) -> None:
        self._db = db
        self._state = state
        self._orders = orders
        self._runs = runs
        self._engine = engine
        self._outside = outside
        self._clock = clock

    async def pending(self) -> Any:
        """The conversion journaled as asked and not settled yet: {"at": ms, "assets": {asset:
        {"pair", "price"}}}, or None."""
        return await self._state.get(PENDING_KEY)

    async def asked(self, pending: Mapping[str, Any], now: datetime) -> None:
        """Journal ``pending`` before the venue is asked."""
        await self._state.set(PENDING_KEY, pending, now)

    async def forget(self) -> None:
        """Nothing of the journaled conversion happened (refused, or its log shows nothing)."""
        await self._state.set(PENDING_KEY, None, self._clock.now())

    async def book(
        self, pending: Mapping[str, Any], conversions: list[DustConversion]
    ) -> list[Converted]:
        """Book each conversion of the journal ``pending`` not booked yet and clear the journal,
        in one transaction; returns what was booked now. The caller holds the tick lock."""
        converted = []
        async with self._db.transaction():
            for conversion in conversions:
                entry = pending["assets"].get(conversion.asset)
                if entry is not None:
                    done = await self._book_one(entry["pair"], entry["price"], conversion)
                    converted += [done] if done else []
            await self._state.set(PENDING_KEY, None, self._clock.now())
        return converted

    async def book_outside(self, found: list[tuple[str, float, DustConversion]]) -> list[Converted]:
        """Book conversions the user made outside pairpilot, (pair, last price, conversion)
        each, in one transaction; returns what was booked now. The caller holds the tick lock."""
        async with self._db.transaction():
            booked = [await self._book_one(pair, price, c) for pair, price, c in found]
        return [item for item in booked if item is not None]

    async def _book_one(
        self, pair: str, price: float, conversion: DustConversion
    ) -> Converted | None:
        """Close the books' dust of ``pair`` (once: the journal row is keyed by the venue's
        transfer id) and move what the user's baseline holds; see the module doc. None: booked
        before."""
        client_order_id = f"{CONVERSION_PREFIX}{conversion.transfer_id}-{conversion.asset}"
        if await self._orders.get(client_order_id) is not None:
            return None
        position = self._engine.portfolio.position(pair)
        booked = min(position.amount, conversion.amount) if position else 0.0
        if booked <= 0:
            return Converted(pair, 0.0, 0.0, conversion)
        run = await self._runs.latest_for(pair)
        intent = OrderIntent(
            client_order_id,
            run.id,
            pair,
            Side.SELL,
            booked,
            price,
            conversion.time,
            reason=DUST_REASON,
        )
        fill = Fill(
            client_order_id,
            pair,
            Side.SELL,
            booked,
            price,
            booked * price,
            conversion.time,
            client_order_id,
            fee_asset=conversion.asset,
        )
        report = ExecutionReport(
            client_order_id, conversion.transfer_id, OrderStatus.FILLED, booked, price, (fill,)
        )
        await self._orders.add(intent)
        await self._outside.shift(
            {conversion.asset: booked - conversion.amount, conversion.target: conversion.received}
        )
        await self._engine.executor.booker.book(report)
        return Converted(pair, booked, booked * price, conversion)

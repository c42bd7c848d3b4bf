"""Dust: what is left of a position below the venue's minimum, shown and converted (/dust).

Dust is never sold on its own (the venue refuses an order that small): it goes with the next
exit of its pair, or, where the venue offers it (Binance: Dust Transfer into BNB), it is
converted here.

How a conversion is booked. The round trip that left the dust is already closed in the trade
list with the dust valued at nothing (a trade's PnL is what was sold less what was bought), and
pairpilot's quote money receives nothing from a conversion: the BNB credited is not pairpilot's
cash. So each converted position is closed in the books by a sell of the dust at the last price
whose fee is the whole of its value: cash does not move, the position is flat, and the dust's
cost is realised as a loss. The BNB received joins the user's own holdings (bot/outside.py), as
does the part of their own coins the venue converted along (it converts an asset's whole free
balance).

Crash safety: what is about to be converted is journaled (state key ``dust.pending``) before
the venue is asked. A conversion whose answer was lost, or a crash after it, is settled from the
venue's dust log (at start-up and before the next /dust): found, each asset is booked once (its
journal row is keyed by the venue's transfer id and written in the same transaction as the
fill); not found, nothing happened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.cockpit import amount_text
from bot.domain import (
    AlertPriority,
    DustConversion,
    ExecutionReport,
    Fill,
    OrderIntent,
    OrderStatus,
    Side,
    from_ms,
    to_ms,
)
from bot.engine import Engine
from bot.errors import BotError, ExchangeAuthFailed, ExchangeUnavailable, UserInputError
from bot.outside import OutsideHoldings
from bot.ports import Clock, DustConverter
from storage.db import Database
from storage.orders import SqliteOrderRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import SqliteStateRepository

PENDING_KEY = "dust.pending"
DUST_REASON = "dust_conversion"
_JOURNAL_PREFIX = "dust-"  # a conversion's journal row and fill: dust-<transfer id>-<asset>
# The venue's clock and ours differ a little: its log is read from this long before the journal.
_SKEW = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class DustHolding:
    """A position too small for the venue to sell."""

    pair: str
    asset: str
    amount: float  # in the books
    price: float  # the last price, in the quote
    convertible: bool  # the venue would convert it now
    account: float = 0.0  # the free amount on the account, the user's own included

    @property
    def value(self) -> float:
        return self.amount * self.price


@dataclass(frozen=True, slots=True)
class DustSurvey:
    venue: str
    target: str | None  # what the venue converts dust into; None: it offers no conversion
    holdings: list[DustHolding]

    @property
    def convertible(self) -> list[DustHolding]:
        return [holding for holding in self.holdings if holding.convertible]


@dataclass(frozen=True, slots=True)
class Converted:
    pair: str
    booked: float  # of the books' dust, closed
    value: float  # its value at the last price: realised as a loss
    conversion: DustConversion


@dataclass(frozen=True, slots=True)
class DustReport:
    converted: list[Converted] = field(default_factory=list)
    unknown: bool = False  # the venue's answer was lost and its log could not be read


class DustDesk:
    """Shows the dust in the books and converts it where the venue can (see the module doc)."""

    def __init__(
        self,
        *,
        db: Database,
        engine: Engine,
        clock: Clock,
        venue: str,
        prices: Callable[[], Mapping[str, float]] = dict,
        lock: asyncio.Lock | None = None,
    ) -> None:
        """``prices``: the last price of each pair ticked; ``lock``: the service's tick lock,
        so a conversion never interleaves with a tick."""
        self._db = db
        self._engine = engine
        self._clock = clock
        self._venue = venue
        self._prices = prices
        self._lock = lock or asyncio.Lock()
        self._state = SqliteStateRepository(db)
        self._orders = SqliteOrderRepository(db)
        self._runs = SqlitePairRunRepository(db)
        self._outside = OutsideHoldings(self._state, clock)

    @property
    def _converter(self) -> DustConverter | None:
        exchange = self._engine.exchange
        if isinstance(exchange, DustConverter) and exchange.dust_target:
            return exchange
        return None

    async def survey(self) -> DustSurvey:
        """The dust in the books, and what the venue would convert now."""
        prices = self._prices()
        exchange = self._engine.exchange
        found = []
        for position in self._engine.portfolio.positions():
            price = prices.get(position.pair) or position.average_price
            if exchange.too_small(position.pair, position.amount, price) is not None:
                found.append((position, price))
        converter = self._converter
        account = await converter.convertible_dust() if converter and found else {}
        holdings = []
        for position, price in found:
            asset = position.pair.split("/")[0]
            holdings.append(DustHolding(position.pair, asset, position.amount, price,
                                        asset in account, account.get(asset, 0.0)))  # fmt: skip
        return DustSurvey(self._venue, converter.dust_target if converter else None, holdings)

    async def convert(self) -> DustReport:
        """Convert every dust the venue takes now. Raises UserInputError, changing nothing,
        when there is none, the venue offers no conversion, or it refuses (within its window)."""
        async with self._lock:
            settled = await self.settle()
            if settled.converted:
                return settled  # a conversion whose answer was lost: it happened
            survey = await self.survey()
            converter = self._converter
            if converter is None or survey.target is None:
                raise UserInputError(no_conversion(self._venue))
            chosen = survey.convertible
            if not chosen:
                raise UserInputError(nothing_to_convert(survey))
            now = self._clock.now()
            pending = {"at": to_ms(now), "assets": {
                h.asset: {"pair": h.pair, "price": h.price} for h in chosen}}  # fmt: skip
            await self._state.set(PENDING_KEY, pending, now)  # journaled before the venue hears
            try:
                conversions = await converter.convert_dust([h.asset for h in chosen])
            except ExchangeUnavailable as unknown:  # the outcome is unknown: the venue's log says
                report = await self._settle_or_unknown()
                if report.converted or report.unknown:
                    return report
                raise UserInputError(
                    f"{self._venue} did not convert the dust ({unknown}); its "
                    "dust log shows no conversion; nothing changed"
                ) from None
            except ExchangeAuthFailed:
                await self._state.set(PENDING_KEY, None, self._clock.now())
                raise
            except BotError as refusal:
                await self._state.set(PENDING_KEY, None, self._clock.now())
                raise UserInputError(f"{self._venue} refused the conversion ({refusal}); "
                                     "nothing changed") from None  # fmt: skip
            return await self._book(pending, conversions)

    async def settle(self) -> DustReport:
        """Book a journaled conversion from the venue's dust log (it happened) or drop it (it
        did not). Raises ExchangeUnavailable, keeping it, while the log cannot be read."""
        pending = await self._state.get(PENDING_KEY)
        converter = self._converter
        if not pending or converter is None:
            return DustReport()
        since = from_ms(pending["at"]) - _SKEW
        logged = await converter.dust_conversions(since)
        return await self._book(pending, [c for c in logged if c.asset in pending["assets"]])

    async def _settle_or_unknown(self) -> DustReport:
        with contextlib.suppress(ExchangeUnavailable):
            return await self.settle()
        return DustReport(unknown=True)

    async def _book(
        self, pending: Mapping[str, Any], conversions: list[DustConversion]
    ) -> DustReport:
        converted = []
        for conversion in conversions:
            entry = pending["assets"].get(conversion.asset)
            if entry is not None:
                converted.append(await self._book_one(entry["pair"], entry["price"], conversion))
        await self._state.set(PENDING_KEY, None, self._clock.now())
        if converted:
            await self._engine.executor.notify("dust", AlertPriority.INFO, summary(converted))
        return DustReport(converted)

    async def _book_one(self, pair: str, price: float, conversion: DustConversion) -> Converted:
        """Close the books' dust of ``pair`` (once: the journal row is keyed by the venue's
        transfer id) and move what the user's baseline holds; see the module doc."""
        client_order_id = f"{_JOURNAL_PREFIX}{conversion.transfer_id}-{conversion.asset}"
        position = self._engine.portfolio.position(pair)
        booked = min(position.amount, conversion.amount) if position else 0.0
        if booked <= 0 or await self._orders.get(client_order_id) is not None:
            return Converted(pair, 0.0, 0.0, conversion)
        run = await self._runs.latest_for(pair)
        intent = OrderIntent(client_order_id, run.id, pair, Side.SELL, booked, price,
                             conversion.time, reason=DUST_REASON)  # fmt: skip
        fill = Fill(client_order_id, pair, Side.SELL, booked, price, booked * price,
                    conversion.time, client_order_id, fee_asset=conversion.asset)  # fmt: skip
        report = ExecutionReport(client_order_id, conversion.transfer_id, OrderStatus.FILLED,
                                 booked, price, (fill,))  # fmt: skip
        async with self._db.transaction():
            await self._orders.add(intent)
            await self._outside.shift({conversion.asset: booked - conversion.amount,
                                       conversion.target: conversion.received})  # fmt: skip
            await self._engine.executor.book(report)
        return Converted(pair, booked, booked * price, conversion)


def is_conversion(fill: Fill) -> bool:
    """A fill that books a dust conversion: it closes no trade of its own (the exit that left
    the dust closed it, the dust valued at nothing)."""
    return fill.client_order_id.startswith(_JOURNAL_PREFIX)


def no_conversion(venue: str) -> str:
    return (f"{venue} has no dust conversion; dust is swept into the next exit of its "
            "pair")  # fmt: skip


def nothing_to_convert(survey: DustSurvey) -> str:
    if not survey.holdings:
        return "no dust to convert: no position is under the exchange's minimum"
    kept = ", ".join(h.asset for h in survey.holdings)
    return (
        f"{survey.venue} would convert none of the dust now ({kept}: worth too much on the "
        "account, or not convertible); it is swept into the next exit of its pair"
    )


def summary(converted: list[Converted]) -> str:
    """One line per asset converted, in plain text."""
    lines = []
    for item in converted:
        c = item.conversion
        own = c.amount - item.booked
        lines.append(
            f"{c.asset} {amount_text(c.amount)} ({item.pair}"
            + (f", {amount_text(own)} of it your own" if own > 1e-12 else "")
            + f") -> {amount_text(c.received)} {c.target} (charge {amount_text(c.charge)} "
            f"{c.target})"
        )
    loss = sum(item.value for item in converted)
    return ("Dust converted: " + "; ".join(lines) + f". The {converted[0].conversion.target} "
            f"is yours, outside pairpilot's books; the dust's value ({loss:,.2f}) is booked as "
            "a loss.")  # fmt: skip

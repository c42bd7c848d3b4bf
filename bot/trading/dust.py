"""Dust: what is left of a position below the venue's minimum, shown and converted (/dust).

Dust is never sold on its own (the venue refuses an order that small): it goes with the next
exit of its pair, or, where the venue offers it (Binance: Dust Transfer into BNB), it is
converted here.

How a conversion is booked (bot/trading/dust_conversions.py): each converted position is closed
in the books by a sell of the dust at the last price whose fee is the whole of its value, and
what the venue credited joins the user's own holdings (bot/portfolio/outside.py).

Crash safety: what is about to be converted is journaled (state key ``dust.pending``) before
the venue is asked. A conversion whose answer was lost, or a crash after it, is settled from the
venue's dust log (at start-up, at the next /dust): found (an asset of the journal converted
after the request), each asset is booked once (its journal row is keyed by the venue's transfer
id and written in the same transaction as the fill and the journal's clearing). Not found, the
outcome stays unknown (the venue may still be processing a request whose answer timed out)
until the log, read ``_WINDOW`` after the request, still shows nothing: then nothing happened.
Only an explicit refusal clears the journal at once. A conversion the user made outside
pairpilot (the venue's app, its auto-convert) is found in the same log at /dust and at start-up
and booked the same way, once.

Never the bot's own coins: the venue converts an asset's whole free balance, and its dust
threshold is far above its order minimum, so an order of pairpilot's whose outcome is not
booked yet (answer lost, a limit entry filled since the last tick) sits in the same balance. An
asset is not converted while any order of its pair is not final in the journal, nor while the
account holds more of it than the books' dust and the user's recorded own coins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.core.domain import AlertPriority, DustConversion, Position, from_ms, to_ms
from bot.core.errors import BotError, ExchangeAuthFailed, ExchangeUnavailable, UserInputError
from bot.core.number_text import amount_text
from bot.core.ports import (
    Clock,
    DustConverter,
    OrderJournal,
    PairRunRepository,
    StateStore,
    Transactions,
)
from bot.portfolio.outside import OutsideHoldings
from bot.trading.dust_conversions import ConversionBooks, Converted
from bot.trading.engine import Engine

log = logging.getLogger(__name__)

DUST_SETTLE_SECONDS = 300.0  # how often a conversion whose outcome is unknown is looked up
# The venue's clock and ours differ a little: its log is read from this long before the journal.
_SKEW = timedelta(minutes=1)
# How long after a request the venue may still log it (a timed-out request is still processed).
_WINDOW = timedelta(minutes=10)
_SLACK = 1e-9  # relative: float noise between the books and the venue's amounts


@dataclass(frozen=True, slots=True)
class DustHolding:
    """A position too small for the venue to sell."""

    pair: str
    asset: str
    amount: float  # in the books
    price: float  # the last price, in the quote
    convertible: bool  # the venue would convert it now
    account: float = 0.0  # the free amount on the account, the user's own included
    held: str = ""  # why pairpilot does not convert it now, though the venue would

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
        return [h for h in self.holdings if h.convertible and not h.held]


@dataclass(frozen=True, slots=True)
class DustReport:
    converted: list[Converted] = field(default_factory=list)
    unknown: bool = False  # the venue's answer was lost and its log does not settle it yet


class DustDesk:
    """Shows the dust in the books and converts it where the venue can (see the module doc)."""

    def __init__(
        self,
        *,
        db: Transactions,
        state: StateStore,
        orders: OrderJournal,
        runs: PairRunRepository,
        engine: Engine,
        clock: Clock,
        venue: str,
        prices: Callable[[], Mapping[str, float]] = dict,
        lock: asyncio.Lock | None = None,
    ) -> None:
        """``db``: the books' transactions, which ``state``, ``orders`` and ``runs`` join;
        ``prices``: the last price of each pair ticked; ``lock``: the service's tick lock,
        held only while deciding what to convert, asking the venue once and booking, so a
        conversion never interleaves with a tick and slow reads never stall one."""
        self._engine = engine
        self._clock = clock
        self._venue = venue
        self._prices = prices
        self._lock = lock or asyncio.Lock()
        self._serial = asyncio.Lock()  # one settlement or conversion at a time
        self._orders = orders
        self._outside = OutsideHoldings(state, clock)
        self._books = ConversionBooks(
            db=db,
            state=state,
            orders=orders,
            runs=runs,
            engine=engine,
            outside=self._outside,
            clock=clock,
        )

    @property
    def _converter(self) -> DustConverter | None:
        exchange = self._engine.exchange
        if isinstance(exchange, DustConverter) and exchange.dust_target:
            return exchange
        return None

    async def _dust(self) -> list[tuple[Position, float]]:
        """The dust positions with their last price: what the engine holds as dust, declared
        dust included at a price where it would be worth the venue's minimum again."""
        prices = self._prices()
        found = []
        for position in self._engine.portfolio.positions():
            price = prices.get(position.pair) or position.average_price
            if await self._engine.is_dust(position, price):
                found.append((position, price))
        return found

    async def survey(self) -> DustSurvey:
        """The dust in the books, and what would be converted now."""
        converter = self._converter
        account = await converter.convertible_dust() if converter and await self._dust() else {}
        return await self._assess(account)

    async def _assess(self, account: Mapping[str, float]) -> DustSurvey:
        """The dust in the books against the venue's list ``account``; from the books only."""
        busy = {order.pair for order in await self._orders.not_final()}
        own = await self._outside.get()
        holdings = []
        for position, price in await self._dust():
            asset = position.pair.split("/")[0]
            free = account.get(asset, 0.0)
            held = ""
            if position.pair in busy:
                held = f"an order of {position.pair} is not settled yet"
            elif free > (position.amount + own.get(asset, 0.0)) * (1 + _SLACK):
                held = (
                    f"the exchange holds {amount_text(free)}, more than the books' dust and "
                    "your own: coins not booked yet"
                )
            holdings.append(
                DustHolding(
                    position.pair, asset, position.amount, price, asset in account, free, held
                )
            )
        converter = self._converter
        return DustSurvey(self._venue, converter.dust_target if converter else None, holdings)

    async def convert(self) -> DustReport:
        """Convert every dust the venue takes now. Raises UserInputError, changing nothing,
        when there is none, the venue offers no conversion, or it refuses."""
        async with self._serial:
            settled = await self._settle()  # the offer just before booked the user's own
            if settled.converted or settled.unknown:
                return settled  # a conversion asked before: it happened, or may have
            converter = self._converter
            if converter is None:
                raise UserInputError(no_conversion(self._venue))
            account = await converter.convertible_dust() if await self._dust() else {}
            async with self._lock:  # decided from the books as a tick left them; asked once
                survey = await self._assess(account)
                chosen = survey.convertible
                if not chosen:
                    raise UserInputError(nothing_to_convert(survey))
                now = self._clock.now()
                pending = {
                    "at": to_ms(now),
                    "assets": {h.asset: {"pair": h.pair, "price": h.price} for h in chosen},
                }
                await self._books.asked(pending, now)  # journaled before it is sent
                try:
                    conversions = await converter.convert_dust([h.asset for h in chosen])
                except ExchangeUnavailable:
                    conversions = None  # the outcome is unknown: the venue's log says, later
                except ExchangeAuthFailed:
                    await self._books.forget()
                    raise
                except BotError as refusal:
                    await self._books.forget()
                    raise UserInputError(
                        f"{self._venue} refused the conversion ({refusal}); nothing changed"
                    ) from None
                if conversions is not None:
                    return await self._book(pending, conversions)
            with contextlib.suppress(ExchangeUnavailable):
                return await self._settle()
            return DustReport(unknown=True)

    async def settle(self) -> DustReport:
        """Book a journaled conversion from the venue's dust log (see the module doc), then
        any the user made on the venue's own site. Raises ExchangeUnavailable, keeping the
        journal, while the log cannot be read for it."""
        async with self._serial:
            return await self._settle_all()

    async def settle_pending(self) -> None:
        """The periodic check: settle a journaled conversion if there is one (nothing is read
        otherwise); a log that cannot be read now is tried again at the next check."""
        if await self._books.pending() is None:
            return
        try:
            async with self._serial:
                await self._settle()
        except ExchangeUnavailable as error:
            log.warning("dust: the pending conversion stays unsettled: %s", error)

    async def _settle_all(self) -> DustReport:
        settled = await self._settle()
        if settled.unknown:
            return settled
        with contextlib.suppress(ExchangeUnavailable):  # tried again at the next /dust
            return DustReport(settled.converted + await self._adopt())
        return settled

    async def _adopt(self) -> list[Converted]:
        """Dust the user converted outside pairpilot (the venue's app or site, its
        auto-convert): the venue converts an asset's whole free balance, so a conversion of
        the asset in its log after the last fill of a dust position took that dust along.
        Booked like pairpilot's own, once per transfer id."""
        converter = self._converter
        dust = await self._dust()
        if converter is None or not dust:
            return []
        logged = await converter.dust_conversions(min(p.updated_at for p, _ in dust))
        found = []
        for position, price in dust:
            asset = position.pair.split("/")[0]
            taken = [c for c in logged if c.asset == asset and c.time > position.updated_at]
            found += [(position.pair, price, taken[0])] if taken else []
        if not found:
            return []
        async with self._lock:
            converted = await self._books.book_outside(found)
        if converted:
            await self._engine.executor.notify(
                "dust",
                AlertPriority.INFO,
                "Converted on the exchange outside pairpilot, now booked. " + summary(converted),
            )
        return converted

    async def settle_or_alert(self) -> DustReport:
        """``settle``, alerting instead of raising while the log cannot be read (start-up)."""
        try:
            return await self.settle()
        except ExchangeUnavailable as error:
            await self._engine.executor.notify(
                "dust",
                AlertPriority.ERROR,
                f"A dust conversion's outcome is still unknown: the exchange's dust log could "
                f"not be read ({error}). /dust checks again; nothing is converted twice.",
            )
            return DustReport(unknown=True)

    async def _settle(self) -> DustReport:
        pending = await self._books.pending()
        converter = self._converter
        if not pending or converter is None:
            return DustReport()
        asked = from_ms(pending["at"])
        read_at = self._clock.now()
        logged = await converter.dust_conversions(asked - _SKEW)
        found = [c for c in logged if c.asset in pending["assets"] and c.time >= asked - _SKEW]
        if found:
            async with self._lock:
                return await self._book(pending, found)
        if read_at - asked < _WINDOW:
            return DustReport(unknown=True)  # the venue may still be processing it
        await self._books.forget()
        return DustReport()  # its log shows nothing well after the request: nothing happened

    async def _book(
        self, pending: Mapping[str, Any], conversions: list[DustConversion]
    ) -> DustReport:
        """Book the conversions of the journal ``pending`` (once each, see
        bot/trading/dust_conversions.py) and alert what was booked now (an asset booked before
        a crash is not said again). The caller holds the tick lock."""
        converted = await self._books.book(pending, conversions)
        if converted:
            await self._engine.executor.notify("dust", AlertPriority.INFO, summary(converted))
        return DustReport(converted)


def no_conversion(venue: str) -> str:
    return f"{venue} has no dust conversion; dust is swept into the next exit of its pair"


def nothing_to_convert(survey: DustSurvey) -> str:
    if not survey.holdings:
        return "no dust to convert: no position is under the exchange's minimum"
    return (
        f"{survey.venue} converts none of the dust now ({not_converted(survey)}); it is "
        "swept into the next exit of its pair"
    )


def not_converted(survey: DustSurvey) -> str:
    """Why each dust not converted now is left, e.g. ``BTC: an order ... is not settled yet``."""
    left = [h for h in survey.holdings if h not in survey.convertible]
    held = [f"{h.asset}: {h.held}" for h in left if h.held]
    kept = [h.asset for h in left if not h.held]
    if kept:
        held.append(f"{', '.join(kept)}: worth too much on the account, or not convertible")
    return "; ".join(held)


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
    return (
        "Dust converted: " + "; ".join(lines) + f". The {converted[0].conversion.target} "
        f"is yours, outside pairpilot's books; the dust's value ({loss:,.2f}) is booked as "
        "a loss."
    )

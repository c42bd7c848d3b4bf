"""Booking an order's fills: each trade once, in one transaction, memory after storage.

A sale is booked only as far as the books' position goes (the account may hold more: the
user's own, or a buy whose booking was lost); what it sold beyond is recorded and alerted, the
user's share of it told by the account's balances right after the sale. A fee the venue took
from a coin's balance (BNB, or the coin sold) is paid by the user's own coins of it first, then
by pairpilot's position of that coin.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from bot.alerts.outbox import AlertOutbox
from bot.core.domain import AlertPriority, ExecutionReport, Fill, Side
from bot.core.errors import BotError
from bot.core.ports import (
    BalanceParts,
    Clock,
    Exchange,
    FillRepository,
    OrderJournal,
    PositionRepository,
    StateStore,
    Transactions,
)
from bot.ops.telemetry import ORDERS
from bot.portfolio.books import CASH_KEY, Portfolio
from bot.portfolio.outside import OutsideHoldings, drift

log = logging.getLogger(__name__)

# How long after a sale beyond the books the account's balances still tell whose coins it
# sold: later, a hand trade of the user's may stand between (then nothing is called theirs).
_ACCOUNT_TELLS = timedelta(minutes=5)


async def account_balances(exchange: Exchange) -> tuple[dict[str, float], dict[str, float]]:
    """Totals and free balances; an exchange that cannot tell them apart gives totals."""
    if isinstance(exchange, BalanceParts):
        return await exchange.fetch_balance_parts()
    totals = await exchange.fetch_balances()
    return totals, totals


class FillBooker:
    """Books execution reports into the portfolio and storage (see the module doc)."""

    def __init__(
        self,
        *,
        transactions: Transactions,
        exchange: Exchange,
        portfolio: Portfolio,
        orders: OrderJournal,
        fills: FillRepository,
        positions: PositionRepository,
        state: StateStore,
        outside: OutsideHoldings,
        alerts: AlertOutbox,
        clock: Clock,
    ) -> None:
        self._transactions = transactions
        self._exchange = exchange
        self._portfolio = portfolio
        self._orders = orders
        self._fills = fills
        self._positions = positions
        self._state = state
        self._outside = outside
        self._alerts = alerts
        self._clock = clock

    async def book(self, report: ExecutionReport) -> list[Fill]:
        """Book what of ``report`` was not booked before (each trade once, by its trade id);
        returns the fills booked."""
        fresh = await self._fresh(report)
        account, unread = await self._account_after(fresh)
        booked, bookings, beyond, unexplained = [], [], [], set()
        draft = self._portfolio.draft()  # an order's trades book one after the other
        async with self._transactions.transaction():
            for reported in fresh:
                # Clamped first: its quote fee is split there, a fee in a coin left to
                # _fee_coins (whose sale of the coin it would otherwise split too).
                fill, excess = _within_position(reported, draft)
                fill, sale, users, unknown = await self._fee_coins(fill, draft)
                legs = [fill] if fill.amount > 0 else []  # wholly beyond: nothing to book
                if sale is not None and legs:
                    legs.append(sale)
                for leg in legs:
                    await self._fills.add(leg)
                    booking = draft.book(leg)
                    draft.accept(booking)
                    await self._positions.save(booking.position)
                    bookings.append(booking)
                yours = await self._users_share(reported, users, excess, account)
                if excess:
                    await self._fills.add_beyond(reported, excess, yours)
                    beyond.append((reported, excess, yours, unread))
                unexplained |= {fill.fee_asset} if unknown else set()
                if legs:
                    booked.append(fill)
            if bookings:
                await self._state.set(CASH_KEY, bookings[-1].cash, self._clock.now())
            await self._orders.update(
                report.client_order_id,
                report.status,
                self._clock.now(),
                filled=report.filled,
                average_price=report.average_price,
                exchange_order_id=report.exchange_order_id,
            )
        for booking in bookings:  # memory follows only what storage committed
            self._portfolio.accept(booking)
        await self._drifted(beyond, unexplained, report.fills[0].pair if report.fills else "")
        if report.status.is_final:
            ORDERS.labels(report.status.value).inc()
        return booked

    async def _fresh(self, report: ExecutionReport) -> list[Fill]:
        """``report``'s trades never seen before (booked, or sold beyond the books), each once."""
        fresh: dict[str, Fill] = {}
        for reported in report.fills:
            if reported.trade_id not in fresh and not await self._fills.seen(reported.trade_id):
                fresh[reported.trade_id] = reported
        return list(fresh.values())

    async def _account_after(self, fills: list[Fill]) -> tuple[dict[str, float] | None, str]:
        """The account's totals now, read only when ``fills`` sell beyond the books' position
        (the evidence of whose coins were sold: see ``_users_share``): {} when none do; None
        and why not when the account cannot tell. It can only right after the sale: a stop
        that sold while pairpilot waited for the next candle, or was down, is booked later,
        and the user may have traded by hand in between."""
        sold = sum(fill.amount for fill in fills if fill.side is Side.SELL)
        position = self._portfolio.position(fills[0].pair) if fills else None
        if sold <= (position.amount if position else 0.0) * (1 + 1e-9):
            return {}, ""
        age = self._clock.now() - max(fill.time for fill in fills)
        if age > _ACCOUNT_TELLS:
            return None, (
                f"the sale is {age.total_seconds() / 60:.0f} min old, and the "
                "account may have changed since"
            )
        try:
            totals, _ = await account_balances(self._exchange)
        except BotError as error:
            log.warning(
                "%s sold beyond the books; could not read the balances to tell whose coins: %s",
                fills[0].client_order_id,
                error,
            )
            return None, "the balances could not be read"
        return totals, ""

    async def _drifted(
        self, beyond: list[tuple[Fill, float, float, str]], unexplained: set[str], pair: str
    ) -> None:
        """After a booking: alert each sale beyond the books' position (the trade, the excess,
        the user's part of it, why the account could not tell whose) and measure the user's own of
        each asset a fee was paid from coins nobody has a figure for."""
        for fill, excess, yours, unread in beyond:
            await self._alerts.push(
                "reconciliation_drift",
                AlertPriority.ERROR,
                _beyond_text(fill, excess, yours, unread),
            )
        quote = pair.split("/")[1] if pair else ""
        for asset in sorted(unexplained):
            await self._measure_own(asset, quote)

    async def _users_share(
        self, fill: Fill, fee: float, excess: float, account: dict[str, float] | None
    ) -> float:
        """Move the user's own figures by what ``fill`` took of theirs: ``fee`` coins paid for
        the fee, and of the ``excess`` coins sold beyond the books' position what the account
        shows went from theirs: the coins are fungible, and only the ``account`` after the sale
        tells (held beyond the books, here flat, and beyond their figure: nothing of theirs
        sold). Their proceeds are theirs, less the trade's quote fee pro rata. Returns that
        part of the excess. The rest was pairpilot's, unbooked (a buy whose booking was lost):
        its proceeds go to neither column, so the cash gap stays drift at the next
        reconciliation (the unbooked round trip's outcome). Unread (``account`` None), nothing
        is called theirs: it stays drift, and the alert says so."""
        base, quote = fill.pair.split("/")
        changes = {fill.fee_asset: -fee} if fee else {}
        own = (await self._outside.get()).get(base, 0.0)
        yours = 0.0
        if excess and account is not None:
            yours = min(excess, own, max(0.0, own - account.get(base, 0.0)))
        if yours > 0:
            changes[base] = changes.get(base, 0.0) - yours
            changes[quote] = changes.get(quote, 0.0) + yours * (
                fill.price - fill.cash_fee / fill.amount
            )
        if changes:
            await self._outside.shift(changes)
        return yours

    async def _fee_coins(
        self, fill: Fill, draft: Portfolio
    ) -> tuple[Fill, Fill | None, float, float]:
        """Who pays a fee the exchange took from a coin's balance rather than from the trade
        (BNB with "pay fees with BNB", or the coin sold), in that coin: the user's own first
        (the baseline of bot/portfolio/outside.py: what they keep for fees), then pairpilot's
        position of that coin, which sells what it pays to the cash that pays the fee (a fill of its
        pair, so its amount, PnL and round trip follow the account). The first choice is also
        the venue's: a position under a resting stop is locked there, and the fee is taken
        from the free balance. Returns the fill with the part the cash now pays, that sale
        (or None), the amount taken from the user's own, and what neither could pay: coins
        beyond both paid it (see ``_measure_own``)."""
        asset, charged = fill.fee_asset, fill.fee_amount
        quote = fill.pair.split("/")[1]
        if fill.fee_outside <= 0 or charged <= 0 or asset in ("", quote) or "," in asset:
            return fill, None, 0.0, 0.0
        own = await self._outside.get()
        users = min(charged, own.get(asset, 0.0))
        pair = f"{asset}/{quote}"
        held = await self._free_part(draft, pair, fill)
        sold = min(charged - users, held)
        unknown = charged - users - sold if asset in own else 0.0
        if unknown <= charged * 1e-9:
            unknown = 0.0
        if sold <= 0:
            return fill, None, users, unknown
        price = fill.fee_outside / charged
        sale = Fill(
            fill.client_order_id,
            pair,
            Side.SELL,
            sold,
            price,
            0.0,
            fill.time,
            f"{fill.trade_id}-fee",
        )
        paid = dataclasses.replace(fill, fee_outside=max(0.0, fill.fee_outside - sold * price))
        return paid, sale, users, unknown

    async def _measure_own(self, asset: str, quote: str) -> None:
        """The venue took a fee in ``asset`` from free coins beyond the user's recorded own and
        pairpilot's: coins nobody has a figure for. A deposit of the user's (coins kept for
        fees) when the account's cash agrees with the books and the user's figure (nothing of
        pairpilot's is unaccounted, so nothing of pairpilot's bought them): their figure is
        measured again now, the exchange's holding beyond the books. Otherwise they may be
        pairpilot's unbooked coins (a buy whose booking was lost, its cost gone from the cash):
        the figure is kept, so the gap stays drift and the user's coins stay guarded, and
        alerted once until the figure is recorded again (/holdings accept)."""
        position = self._portfolio.position(f"{asset}/{quote}")
        books = {quote: self._portfolio.cash, asset: position.amount if position else 0.0}
        own = await self._outside.get()
        try:
            totals, _ = await account_balances(self._exchange)
        except BotError as error:  # the figure is kept; the next such fee measures again
            log.warning(
                "%s: could not read the balances to measure your own again: %s", asset, error
            )
            return
        beyond = totals.get(asset, 0.0) - books[asset] - own.get(asset, 0.0)
        if beyond >= 0 and not drift({quote: books[quote]}, totals, own, quote):
            await self._outside.remeasure(asset, books[asset], totals.get(asset, 0.0))
            log.warning(
                "%s fees paid from coins beyond your recorded own and pairpilot's: a "
                "deposit of yours, %.8g %s left of it, now counted as yours",
                asset,
                beyond,
                asset,
            )
            return
        if await self._outside.doubt(asset):
            await self._alerts.push(
                "reconciliation_drift",
                AlertPriority.ERROR,
                f"The exchange took {asset} fees from {asset} coins beyond your recorded own "
                f"and pairpilot's, and the {quote} cash does not agree with the books and your "
                f"figures: they may be pairpilot's coins the books never booked (a buy whose "
                f"booking was lost), so they were not counted as yours; your {asset} figure is "
                f"kept and the difference shows as drift. If you deposited {asset}, record it "
                "with /holdings accept.",
            )

    async def _free_part(self, draft: Portfolio, pair: str, fill: Fill) -> float:
        """What of pairpilot's position of ``pair`` is free on the venue to pay ``fill``'s fee:
        not locked under its own resting sells (a stop), and, when ``fill`` trades that coin,
        not the coins it moves (a buy's fee in the coin is taken from the coins bought)."""
        position = draft.position(pair)
        held = position.amount if position is not None else 0.0
        if pair == fill.pair:
            held -= fill.amount
        locked = sum(
            max(0.0, order.amount - order.filled)
            for order in await self._orders.not_final()
            if order.pair == pair
            and order.side is Side.SELL
            and order.client_order_id != fill.client_order_id
        )
        return max(0.0, held - locked)


def _beyond_text(fill: Fill, excess: float, yours: float, unread: str) -> str:
    """The alert for a sale of ``excess`` coins beyond the books' position, ``yours`` of them
    the user's own (``unread``: why the account could not tell whose, if it could not)."""
    base, quote = fill.pair.split("/")
    text = (
        f"{fill.client_order_id} sold {excess:.8g} {base} more than the books held: "
        "booked up to the position"
    )
    if yours > 0:
        text += f"; {yours:.8g} {base} taken from your own, its proceeds counted as yours"
    rest = excess - yours
    if rest > excess * 1e-9:
        whose = (
            f"{rest:.8g} {base} were pairpilot's coins the books never booked (a buy whose "
            "booking was lost?): the account still holds your recorded own"
            if not unread
            else f"{rest:.8g} {base} were not counted as yours, though they may be: "
            f"{unread}, so it cannot tell whose coins were sold"
        )
        text += (
            f"; {whose}; their proceeds, about {rest * fill.price:,.2f} {quote}, are counted "
            f"neither in the books nor as yours and show as {quote} drift"
        )
    return text + ". Check the account and /holdings."


def _within_position(fill: Fill, draft: Portfolio) -> tuple[Fill, float]:
    """``fill`` as far as the books' position can take it (amount 0: wholly beyond it), and
    what a sale sold beyond it (the account held more than the books: see
    ``FillBooker._users_share``). The fee paid from the quote cash is split pro rata: the books
    pay their part's. (A fee in a third coin is left whole: ``_fee_coins`` decided from
    the coins who paid it.) Booked whole, such a sale would fail at every settle."""
    position = draft.position(fill.pair)
    held = position.amount if position is not None else 0.0
    if fill.side is not Side.SELL or fill.amount <= held * (1 + 1e-9):
        return fill, 0.0
    share = held / fill.amount
    clamped = dataclasses.replace(
        fill,
        amount=held,
        fee=fill.fee_outside + fill.cash_fee * share,
        fee_amount=fill.fee_amount * (share if fill.fee_outside == 0 else 1.0),
    )
    return clamped, fill.amount - held

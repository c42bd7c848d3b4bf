"""Execution: journal an intent, send it, book what filled, announce it.

The intent is written to the journal before the exchange hears of it, under a deterministic
client order id, so a decision taken twice (a re-run tick) is never sent twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime, timedelta

from bot.alerts.outbox import AlertOutbox
from bot.core.domain import (
    AlertPriority,
    ExecutionReport,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    Position,
    Side,
    Trade,
)
from bot.core.errors import (
    BotError,
    ExchangeAuthFailed,
    ExchangeRejected,
    ExchangeUnavailable,
    InsufficientFunds,
    OrderOutcomeUnknown,
    RiskRejected,
)
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
from bot.execution.unknown_orders import UnknownOrders
from bot.ops.telemetry import ORDERS
from bot.portfolio.books import CASH_KEY, Portfolio
from bot.portfolio.outside import OutsideHoldings, drift
from bot.portfolio.performance import round_trips

log = logging.getLogger(__name__)
# An admin's command looks its lost orders up at most this long IN ALL (a full scan of a
# venue's lists takes some seconds when it answers); past it, the command refuses the pairs
# not told yet (/flatten in an outage sells the healthy pairs after 30 s, whatever the count).
NOW_BOUND = 30.0

# How long after a sale beyond the books the account's balances still tell whose coins it
# sold: later, a hand trade of the user's may stand between (then nothing is called theirs).
_ACCOUNT_TELLS = timedelta(minutes=5)


class Executor:
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
        alerts: AlertOutbox,
        clock: Clock,
    ) -> None:
        self._transactions = transactions
        self.exchange = exchange
        self._portfolio = portfolio
        self._orders = orders
        self._fills = fills
        self._positions = positions
        self._state = state
        self._outside = OutsideHoldings(state, clock)
        self._alerts = alerts
        self._clock = clock
        self.unknown = UnknownOrders(alerts, state, clock)

    async def execute(self, intent: OrderIntent) -> tuple[list[Fill], Trade | None]:
        """Send ``intent`` once; returns what filled and, when it closed a position, the trade."""
        if await self._orders.get(intent.client_order_id) is not None:
            log.info("order %s was journaled before; not sending again", intent.client_order_id)
            return [], None
        position = self._portfolio.position(intent.pair)
        opened_at = position.opened_at if position else None
        await self._orders.add(intent)  # journaled before the exchange hears of it
        try:
            try:
                intent = await self._recheck_balance(intent)
            except (ExchangeUnavailable, ExchangeAuthFailed) as error:  # nothing was sent
                await self._orders.update(
                    intent.client_order_id,
                    OrderStatus.REJECTED,
                    self._clock.now(),
                    note=f"not sent: {error}",
                )
                ORDERS.labels(OrderStatus.REJECTED.value).inc()
                raise
            report = await self._send(intent)
        except (ExchangeRejected, RiskRejected) as error:
            await self._orders.update(
                intent.client_order_id, OrderStatus.REJECTED, self._clock.now(), note=str(error)
            )
            ORDERS.labels(OrderStatus.REJECTED.value).inc()
            await self._alerts.push(
                "order_rejected", AlertPriority.ERROR, f"Order rejected: {error}"
            )
            return [], None
        fills = await self._book(report)
        trade, again = None, False
        if intent.side is Side.SELL and opened_at is not None and self._flat(report):
            trade, again = await self._closed_trade(intent.pair, opened_at, report)
        await self._announce(intent, report, trade, again)
        return fills, None if again else trade

    async def _send(self, intent: OrderIntent) -> ExecutionReport:
        if intent.stop_price is not None:
            return await self.exchange.place_stop(intent)
        if intent.limit_price is not None:
            return await self.exchange.create_limit_order(intent)
        return await self.exchange.create_market_order(intent)

    async def _recheck_balance(self, intent: OrderIntent) -> OrderIntent:
        """Read the exchange's balance again before sending: a buy it cannot pay is refused; an
        exit (or a stop) sells what pairpilot really holds there, the exchange's free coins less
        the user's own (the baseline of bot/portfolio/outside.py), and the difference is alerted,
        so a stop is never blocked by drift between the books and the account and the user's coins
        never cover a gap in the books."""
        base, quote = intent.pair.split("/")
        totals, free = await self._balances()
        if intent.side is Side.BUY:
            needed = intent.quote_amount or intent.amount * intent.reference_price
            if needed > free.get(quote, 0.0) * (1 + 1e-9):
                raise InsufficientFunds(
                    f"{intent.pair}: the exchange holds {free.get(quote, 0.0):,.2f} {quote} free "
                    f"(not held by open orders), the order needs {needed:,.2f}"
                )
            return intent
        users = (await self._outside.get()).get(base, 0.0)
        held = max(0.0, free.get(base, 0.0) - users)
        if held >= intent.amount * (1 - 1e-9):
            return intent
        total = max(0.0, totals.get(base, 0.0) - users)
        if total >= intent.amount * (1 - 1e-9):
            raise InsufficientFunds(
                f"{intent.pair}: {total - held:.8g} of pairpilot's {total:.8g} {base} "
                "is locked in open orders"
            )
        if held <= 0:
            raise InsufficientFunds(
                f"{intent.pair}: the exchange holds no free {base} of "
                f"pairpilot's to sell ({users:.8g} are your own)"
            )
        await self._alerts.push(
            "reconciliation_drift",
            AlertPriority.ERROR,
            f"{intent.pair}: the books hold {intent.amount:.8g} {base}, the exchange "
            f"{held:.8g} of pairpilot's (beside your own {users:.8g}, never sold); selling "
            "what the exchange holds of pairpilot's",
        )
        return dataclasses.replace(intent, amount=held)

    async def _balances(self) -> tuple[dict[str, float], dict[str, float]]:
        """Totals and free balances; an exchange that cannot tell them apart gives totals."""
        if isinstance(self.exchange, BalanceParts):
            return await self.exchange.fetch_balance_parts()
        totals = await self.exchange.fetch_balances()
        return totals, totals

    async def notify(self, kind: str, priority: AlertPriority, text: str) -> None:
        await self._alerts.push(kind, priority, text)

    @property
    def journal(self) -> OrderJournal:
        return self._orders

    async def settle(self, report: ExecutionReport) -> tuple[list[Fill], Trade | None]:
        """Book what a resting order did since it was placed (each fill once), announce it, and
        return the trade when it closed the position."""
        order = await self._orders.require(report.client_order_id)
        position = self._portfolio.position(order.pair)
        fills = await self._book(report)
        trade, again = None, False
        if fills and position is not None and order.side is Side.SELL and self._flat(report):
            trade, again = await self._closed_trade(order.pair, position.opened_at, report)
        if fills:
            await self._announce(order.as_intent(), report, trade, again)
        return fills, None if again else trade

    async def settle_unknown(
        self,
        unsettled: dict[str, str] | None = None,
        *,
        pairs: set[str] | None = None,
        now: bool = False,
    ) -> int:
        """Look up again every order whose placement ended unknown (a timeout, a 5xx or a
        dropped connection, and the lookup after it failed too): book what the exchange did, or
        close it as never sent. Run before acting, so the books are right when the strategy is
        asked. Returns how many were settled. A look-up that fails raises, unless ``unsettled``
        is given: the order's pair and why are then written there and the others settled all
        the same (the kill switch goes on with every other pair). An order whose outcome cannot
        be read from the venue at all (OrderOutcomeUnknown) never raises: it is held in
        ``unknown`` (its pair is not ticked) until it is final in the journal, whatever later
        look-ups of it raise, and the admins are alerted once. ``pairs``: only their orders;
        ``now`` (an admin's command): held orders too, whatever their back-off, each pair's
        look-ups ending at its first that cannot tell (that pair is refused anyway), all of them
        within ``NOW_BOUND`` in total (a pair not reached in time is refused as not looked up)."""
        settled = 0
        deadline = asyncio.get_running_loop().time() + NOW_BOUND if now else None
        journaled = [o for o in await self._orders.not_final() if o.status is OrderStatus.NEW]
        for order in journaled:  # acknowledged (OPEN, ...): resting, its owner settles it
            if (pairs is not None and order.pair not in pairs) or (
                now and unsettled is not None and order.pair in unsettled
            ):
                continue
            told, report = await self._look_up(order, unsettled, deadline)
            if not told:
                continue
            if report is None:
                await self._orders.update(
                    order.client_order_id,
                    OrderStatus.REJECTED,
                    self._clock.now(),
                    note="never reached the exchange",
                )
                ORDERS.labels(OrderStatus.REJECTED.value).inc()
            else:
                await self.settle(report)
            await self.unknown.cleared(
                await self._orders.get(order.client_order_id) or order, self.venue()
            )
            settled += 1
        self.unknown.keep({o.client_order_id for o in journaled})  # /order settled the rest
        if settled:
            log.warning("settled %d order(s) whose placement had an unknown outcome", settled)
        return settled

    async def _look_up(
        self, order: Order, unsettled: dict[str, str] | None, deadline: float | None = None
    ) -> tuple[bool, ExecutionReport | None]:
        """Whether the exchange told ``order``'s outcome, and its report (None: never sent).
        Told nothing, the pair and why are written in ``unsettled``; an outage raises when
        there is no ``unsettled``, unless the order is held (only its pair waits). A held
        order is looked up again only once its back-off is over (bot/execution/unknown_orders.py),
        unless an admin waits: then by ``deadline`` (the event loop's time), or not at all
        once it is past."""
        coid = order.client_order_id
        if deadline is not None and asyncio.get_running_loop().time() >= deadline:
            if unsettled is None:
                raise ExchangeUnavailable(f"order {coid} not looked up: no time left")
            unsettled[order.pair] = (
                f"order {coid} not looked up: the look-ups may take {NOW_BOUND:g} s in all, spent"
            )
            return False, None
        if self.unknown.holds(coid) and not (deadline is not None or self.unknown.due(coid)):
            if unsettled is not None:
                unsettled[order.pair] = self.unknown.why(order, "not looked up again yet")
            return False, None
        try:
            return True, await self._read(order, deadline)
        except OrderOutcomeUnknown as error:  # not raised: only its pair waits
            why = await self.unknown.found(
                order, error, self.venue(), self.exchange.supports_stop_orders
            )
        except BotError as error:
            if not self.unknown.holds(coid):
                if unsettled is None:
                    raise
                why = f"the outcome of order {coid} is unknown ({error})"
            else:  # it still cannot be told: its pair keeps waiting, the other pairs go on
                log.warning("order %s, held: look-up failed: %s", coid, error)
                self.unknown.failed(coid)
                why = self.unknown.why(order, str(error))
        if unsettled is not None:
            unsettled[order.pair] = why
        return False, None

    async def _read(self, order: Order, deadline: float | None) -> ExecutionReport | None:
        """The exchange's look-up of ``order``; an admin waits: by ``deadline``."""
        if deadline is None:
            return await self.exchange.lookup(order)
        left = deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(self.exchange.lookup(order), left)
        except TimeoutError:
            raise ExchangeUnavailable(
                f"no answer within the {NOW_BOUND:g} s the look-ups may take in all"
            ) from None

    def venue(self) -> str:
        """The exchange's name for an alert (a test's exchange may have none)."""
        return str(getattr(self.exchange, "name", "the exchange"))

    async def book(self, report: ExecutionReport) -> list[Fill]:
        """Book a report found later (reconciliation): fills already booked are skipped."""
        return await self._book(report)

    async def _book(self, report: ExecutionReport) -> list[Fill]:
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
            totals, _ = await self._balances()
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
            totals, _ = await self._balances()
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

    def _flat(self, report: ExecutionReport) -> bool:
        """Nothing left of the position after a sell but dust (too small for the exchange to
        sell): the round trip is closed, the dust goes along with the next exit."""
        fills = report.fills
        position = self._portfolio.position(fills[0].pair) if fills else None
        if position is None:
            return True
        price = report.average_price or position.average_price
        return self.exchange.too_small(position.pair, position.amount, price) is not None

    async def closed_as_dust(self, position: Position) -> Trade | None:
        """``position`` is the rest of an exit, sellable at the exit's price, that turned to dust
        before it was sold (the engine just declared it): its trade closed at its last sale.
        Announced and returned once; None when that sale had closed it already."""
        pair = position.pair
        fills = [f for f in await self._fills.all(since=position.opened_at) if f.pair == pair]
        before = round_trips(fills, self.exchange.too_small)
        trades = round_trips(fills, self.exchange.too_small, {pair: position.amount})
        if not trades or (before and before[-1].entry_time == trades[-1].entry_time):
            return None
        trade = trades[-1]
        await self._alerts.push(
            "trade",
            AlertPriority.TRADE,
            f"{pair}: the {position.amount:.6g} left of the exit is too small to sell now, so "
            f"its trade closed at its last sale: trade PnL {trade.pnl:+,.2f} "
            f"({trade.return_pct:+.2%})",
        )
        return trade

    async def _closed_trade(
        self, pair: str, opened_at: datetime | None, report: ExecutionReport
    ) -> tuple[Trade | None, bool]:
        """The trade ``report``'s sale closed, and whether it was closed before: the sale of a
        rest an exit left as dust completes that exit's trade (``round_trips``), which was
        counted (the cooldown) when it closed; its alert shows the whole trade's PnL.
        ``opened_at`` None (a stored position without it): every fill of the pair counts."""
        fills = [fill for fill in await self._fills.all(since=opened_at) if fill.pair == pair]
        trades = round_trips(fills, self.exchange.too_small)
        if not trades:
            return None, False
        now = {fill.trade_id for fill in report.fills}
        before = round_trips([f for f in fills if f.trade_id not in now], self.exchange.too_small)
        return trades[-1], bool(before) and before[-1].entry_time == trades[-1].entry_time

    async def _announce(
        self,
        intent: OrderIntent,
        report: ExecutionReport,
        trade: Trade | None,
        completes: bool = False,
    ) -> None:
        """A trade alert; ``completes``: the sale of a rest completes a trade announced closed
        before, whose PnL this alert gives again, now with the rest."""
        if not report.filled or report.average_price is None:
            return
        text = (
            f"{intent.pair} {intent.side.value.upper()} {report.filled:.6g} @ "
            f"{report.average_price:,.2f} (fee {sum(f.fee for f in report.fills):.2f})"
        )
        if intent.side is Side.SELL and intent.trigger_price is not None:
            text += f", {intent.reason.replace('_', ' ')}"
        if report.status is not OrderStatus.FILLED:
            text += f", partly filled ({report.status.value}: the rest did not fill)"
        if trade is not None:
            now = " (with its rest) now" if completes else ""
            text += f", trade PnL{now} {trade.pnl:+,.2f} ({trade.return_pct:+.2%})"
        await self._alerts.push("trade", AlertPriority.TRADE, text)


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
    ``Executor._users_share``). The fee paid from the quote cash is split pro rata: the books
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

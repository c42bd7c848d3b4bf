"""Execution: journal an intent, send it, book what filled, announce it.

The intent is written to the journal before the exchange hears of it, under a deterministic
client order id, so a decision taken twice (a re-run tick) is never sent twice. Booking is
bot/execution/booking.py's; the trade a sale closed, bot/execution/closed_trades.py's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

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
    Clock,
    Exchange,
    FillRepository,
    OrderJournal,
    PositionRepository,
    StateStore,
    Transactions,
)
from bot.execution import closed_trades
from bot.execution.booking import FillBooker, account_balances
from bot.execution.unknown_orders import UnknownOrders
from bot.ops.telemetry import ORDERS
from bot.portfolio.books import Portfolio
from bot.portfolio.outside import OutsideHoldings

log = logging.getLogger(__name__)
# An admin's command looks its lost orders up at most this long IN ALL (a full scan of a
# venue's lists takes some seconds when it answers); past it, the command refuses the pairs
# not told yet (/flatten in an outage sells the healthy pairs after 30 s, whatever the count).
NOW_BOUND = 30.0


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
        self._outside = OutsideHoldings(state, clock)
        self._alerts = alerts
        self._clock = clock
        self.unknown = UnknownOrders(alerts, state, clock)
        # books each report's fills once (a dust conversion is booked through it too)
        self.booker = FillBooker(
            transactions=transactions,
            exchange=exchange,
            portfolio=portfolio,
            orders=orders,
            fills=fills,
            positions=positions,
            state=state,
            outside=self._outside,
            alerts=alerts,
            clock=clock,
        )

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
        fills = await self.booker.book(report)
        trade, again = None, False
        if intent.side is Side.SELL and opened_at is not None and self._flat(report):
            trade, again = await closed_trades.closed_trade(
                self._fills, self.exchange.too_small, intent.pair, opened_at, report
            )
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
        totals, free = await account_balances(self.exchange)
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

    async def notify(self, kind: str, priority: AlertPriority, text: str) -> None:
        await self._alerts.push(kind, priority, text)

    @property
    def journal(self) -> OrderJournal:
        return self._orders

    @property
    def transactions(self) -> Transactions:
        """The unit of work (the database) the books are written in: what was booked is read
        there, and a part that books alongside (dust conversions) joins its transactions."""
        return self._transactions

    async def settle(self, report: ExecutionReport) -> tuple[list[Fill], Trade | None]:
        """Book what a resting order did since it was placed (each fill once), announce it, and
        return the trade when it closed the position."""
        order = await self._orders.require(report.client_order_id)
        position = self._portfolio.position(order.pair)
        fills = await self.booker.book(report)
        trade, again = None, False
        if fills and position is not None and order.side is Side.SELL and self._flat(report):
            trade, again = await closed_trades.closed_trade(
                self._fills, self.exchange.too_small, order.pair, position.opened_at, report
            )
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
        trade = await closed_trades.closed_as_dust(self._fills, self.exchange.too_small, position)
        if trade is not None:
            await self._alerts.push(
                "trade", AlertPriority.TRADE, closed_trades.dust_closed_text(position, trade)
            )
        return trade

    async def _announce(
        self,
        intent: OrderIntent,
        report: ExecutionReport,
        trade: Trade | None,
        completes: bool = False,
    ) -> None:
        text = closed_trades.trade_text(intent, report, trade, completes)
        if text is not None:
            await self._alerts.push("trade", AlertPriority.TRADE, text)

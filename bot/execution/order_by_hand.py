"""/order: an admin settles by hand an order whose outcome the venue cannot tell.

Only an order in that state (``OrderOutcomeUnknown``, bot/execution/unknown_orders.py) is settled
here: any other order is settled by reading the venue, and settling it by hand could book it twice.
The safe way first: ``venue VENUE_ORDER_ID`` (the id the venue's website shows) reads that one
order by the venue's id, checks that it is ours (its client order id), journals that id and
books it the usual way: filled, cancelled, or still resting. One still resting is kept only
when something follows it by that id (its run's pending entry, the position's resting stop),
so a later fill is booked; any other is cancelled on the venue first, and until the venue
confirms it final nothing is journaled and its pair stays held. Otherwise the admin says what
the website shows: ``never`` (it was never placed, or filled nothing) closes it as rejected;
``filled AMOUNT PRICE [FEE]`` books one fill of AMOUNT base coins at the average PRICE, FEE in
the quote (0 when not given: the alert and the Confirm ask for it, from the venue's trade
history), dated at the order's journal time, as any fill (announced, a sale closing the
position closes its trade). A PRICE far from the pair's last price, or a FEE above 2% of the
fill's value, is refused as a typo; the Confirm prompt shows the fill's value, its fee and the
books' cash after it. Bad input changes nothing. The chat audits the confirmed command; the
journal's note names who settled it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime

from bot.core.domain import ExecutionReport, Fill, Order, OrderStatus, Side, Trade
from bot.core.errors import BotError, NotFound, UserInputError
from bot.core.ports import ReadsByVenueId
from bot.execution.executor import Executor

USAGE = "/order ID venue VENUE_ORDER_ID | /order ID never | /order ID filled AMOUNT PRICE [FEE]"
_BUY_SLACK = 1.2  # a market buy is sized in the quote: its coins may exceed the estimate
_SELL_SLACK = 1 + 1e-9
# A PRICE this far from the pair's last price is a typo (a digit too many or too few), not
# a fill: refused. 20% covers a fill hours old in a fast market.
PRICE_BAND = 0.2
# A buy's fill worth more than the order's intended value (its quote size, or its amount at
# its reference price) by more than this, beyond its fee, is another order's line: refused.
VALUE_SLACK = 0.02
# Of the fill's value: venues charge 0.1-0.6%, Coinbase's lowest volume tier up to 1.2% taker; more
# than this is a typo.
MOST_FEE = 0.02


@dataclass(frozen=True, slots=True)
class Settlement:
    """What the admin says the order did: ``amount`` 0 for never placed."""

    client_order_id: str
    amount: float = 0.0
    price: float = 0.0
    fee: float = 0.0
    venue_id: str = ""  # read from the venue by its own id instead

    @property
    def filled(self) -> bool:
        return self.amount > 0


def parse(arguments: list[str]) -> Settlement:
    """The settlement ``arguments`` say; UserInputError with the usage otherwise."""
    if len(arguments) == 3 and arguments[1].lower() == "venue" and arguments[2].strip():
        return Settlement(arguments[0], venue_id=arguments[2].strip())
    if len(arguments) == 2 and arguments[1].lower() == "never":
        return Settlement(arguments[0])
    if len(arguments) in (4, 5) and arguments[1].lower() == "filled":
        given = zip(arguments[2:], ("AMOUNT", "PRICE", "FEE"), strict=False)
        amount, price, *fee = (_number(text, name) for text, name in given)
        if amount <= 0 or price <= 0:
            raise UserInputError(f"AMOUNT and PRICE must be above 0; usage: {USAGE}")
        if fee and fee[0] < 0:
            raise UserInputError(f"FEE must be 0 or more; usage: {USAGE}")
        return Settlement(arguments[0], amount, price, fee[0] if fee else 0.0)
    raise UserInputError(f"usage: {USAGE}")


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserInputError(f"{name} {text!r} is not a number; usage: {USAGE}") from None
    if not math.isfinite(value):
        raise UserInputError(f"{name} {text!r} is not a number; usage: {USAGE}")
    return value


async def checked(executor: Executor, settlement: Settlement) -> Order:
    """The order ``settlement`` names, when it may be settled so; raises why not."""
    order = await executor.journal.get(settlement.client_order_id)
    if order is None:
        raise NotFound(f"no order {settlement.client_order_id!r} in the journal")
    if order.status is not OrderStatus.NEW or not executor.unknown.holds(order.client_order_id):
        waiting = executor.unknown.blocking.values()
        named = ", ".join(o.client_order_id for held in waiting for o in held) or "none"
        state = "settled already" if order.status.is_final else "read from the exchange as usual"
        raise UserInputError(
            f"order {order.client_order_id} is {order.status.value}, {state}; "
            "only an order whose outcome the exchange cannot tell is settled "
            f"by hand (now: {named})"
        )
    most = order.amount * (_BUY_SLACK if order.side is Side.BUY else _SELL_SLACK)
    if settlement.amount > most:
        raise UserInputError(
            f"{settlement.amount:.8g} is more than order "
            f"{order.client_order_id} could have filled (it was for "
            f"{order.amount:.8g} {order.pair})"
        )
    return order


def sane(order: Order, settlement: Settlement, market: float) -> None:
    """Refuse a fill whose PRICE is more than ``PRICE_BAND`` from both ``market`` (the pair's
    last price) and the order's journaled reference (its limit, or the price it was expected
    at: a fill long ago, before the market moved), a buy worth more than it could spend, or
    whose FEE is more than ``MOST_FEE`` of its value: a typo would move the books' cash and
    the position's entry (its stops) far from the venue's."""
    if not settlement.filled:
        return
    near = {"last price": market, "price when journaled": order.reference_price or 0.0}
    if not any(abs(settlement.price - price) <= price * PRICE_BAND for price in near.values()):
        named = " and ".join(f"{what} {price:.8g}" for what, price in near.items() if price)
        raise UserInputError(
            f"PRICE {settlement.price:.8g} is more than {PRICE_BAND:.0%} away "
            f"from {order.pair}'s {named}: a typo? Nothing "
            "changed"
        )
    value = settlement.amount * settlement.price
    most = _most_spent(order)
    if order.side is Side.BUY and value > most * (1 + VALUE_SLACK) + settlement.fee:
        raise UserInputError(
            f"{settlement.amount:.8g} at {settlement.price:.8g} is worth "
            f"{value:,.2f} {order.pair.split('/')[1]}, more than order "
            f"{order.client_order_id} could spend ({most:,.2f}): another "
            "order's line? Nothing changed"
        )
    if settlement.fee > value * MOST_FEE:
        raise UserInputError(
            f"FEE {settlement.fee:.8g} is more than {MOST_FEE:.0%} of the "
            f"fill's value {value:.8g} {order.pair.split('/')[1]}: a typo? "
            "Nothing changed"
        )


def _most_spent(order: Order) -> float:
    """What the buy ``order`` could spend: its quote size, or a limit's amount at its limit;
    infinite when not journaled (an amount sized at market, or journaled before it was kept:
    the AMOUNT and PRICE checks alone then)."""
    if order.quote_amount:
        return order.quote_amount
    if order.kind == "limit" and order.reference_price:
        return order.amount * order.reference_price
    return math.inf


def preview(order: Order, settlement: Settlement, cash: float, then: str) -> str:
    """What a Confirm would do, in words: with the fill's value, its fee and the books' cash
    (``cash`` now) after it, to compare with the venue's balance, and ``then``, what the pair
    does after (it trades, or a halt or a stop holds it). For an order that may still
    rest on the venue, a plain warning that closing it by hand leaves a later fill unbooked."""
    if settlement.venue_id:
        return (
            f"read order {settlement.venue_id} from the venue by its id; if it is "
            f"{order.client_order_id} ({order.side.value} {order.pair}), book what it did "
            "(filled, cancelled, or still resting: kept and followed by that id if it is "
            "the pair's pending entry or its position's stop, otherwise cancelled "
            "first)"
        )
    rests = (
        f". WARNING: {order.client_order_id} may still rest on the venue (a "
        f"{order.kind or 'possibly resting'} order): if it fills later, that fill is "
        f"NEVER booked. Safer: /order {order.client_order_id} venue VENUE_ORDER_ID (the "
        "id the venue's website shows), which follows it"
        if order.may_rest
        else ""
    )
    if not settlement.filled:
        return (
            f"close order {order.client_order_id} ({order.side.value} {order.pair}) as "
            f"never placed: nothing is booked; {order.pair} no longer waits on it: "
            f"{then}{rests}"
        )
    quote = order.pair.split("/")[1]
    value = settlement.amount * settlement.price
    moved = -value if order.side is Side.BUY else value
    after = cash + moved - settlement.fee
    return (
        f"book order {order.client_order_id} as filled: {order.side.value} "
        f"{settlement.amount:.8g} {order.pair} at {settlement.price:.8g} (worth "
        f"{value:,.2f} {quote}), fee {settlement.fee:.8g} {quote} (0 unless given: the "
        f"venue's trade history shows it); the books' {quote} cash goes from {cash:,.2f} "
        f"to {after:,.2f}; {order.pair} no longer waits on it: {then}{rests}"
    )


async def by_venue_id(
    executor: Executor, order: Order, settlement: Settlement, now: datetime, followed: bool
) -> tuple[ExecutionReport, Trade | None]:
    """Read ``order`` from the venue by the venue's own id (``settlement.venue_id``), once it
    is shown to be ours, and book what it did, as a look-up would. One still resting that
    nothing ``followed`` (neither its run's pending entry nor the position's resting stop) is
    cancelled first: only once the venue confirms it final is anything journaled and the
    order released, so it never leaves every look-up while it rests. Returns the report and
    the trade a sale closed. Raises (nothing changed: still held) when the venue cannot read
    it, it is not ours, or it still rests after the cancel."""
    exchange = executor.exchange
    if not isinstance(exchange, ReadsByVenueId):
        raise UserInputError(
            "this exchange cannot read an order by its own id; use /order "
            "ID never or /order ID filled AMOUNT PRICE FEE"
        )
    report = await exchange.read_by_venue_id(order, settlement.venue_id)
    if not report.status.is_final and not followed:
        report = await _cancelled(executor, order, settlement, report)
    await executor.journal.update(
        order.client_order_id, OrderStatus.NEW, now, exchange_order_id=settlement.venue_id
    )
    _, trade = await executor.settle(report)
    executor.unknown.release(order.client_order_id)
    return report, trade


async def _cancelled(
    executor: Executor, order: Order, settlement: Settlement, report: ExecutionReport
) -> ExecutionReport:
    """The final report of ``order`` (resting, read as ``report``) cancelled on the venue by
    its id: it may have filled first. A cancel that fails or is refused raises, the order
    still held (nothing journaled) with what the admin can do."""
    by_id = dataclasses.replace(order, exchange_order_id=settlement.venue_id)
    why = "the venue still shows it open"
    try:
        cancelled = await executor.exchange.cancel_order(by_id)
    except BotError as error:
        cancelled, why = None, f"{type(error).__name__}: {error}"
    if cancelled is not None and cancelled.status.is_final:
        return cancelled
    raise UserInputError(
        f"order {order.client_order_id} is {executor.venue()}'s order "
        f"{settlement.venue_id} ({report.status.value}, {report.filled:.8g} "
        f"filled), but could not cancel it on the venue ({why}): it still "
        f"rests; {order.pair} stays held and nothing is booked; try again or "
        "cancel it on the venue"
    )


async def settle(
    executor: Executor, order: Order, settlement: Settlement, actor: str, now: datetime
) -> Trade | None:
    """Settle ``order`` as ``settlement`` says (``checked`` and ``sane`` by the caller, under
    the tick lock); the pair no longer waits on it from the next tick. Returns the trade a
    sale closed (the caller counts it toward the cooldown, as a tick would)."""
    note = f"settled by hand by {actor}"
    trade = None
    if not settlement.filled:
        await executor.journal.update(
            order.client_order_id, OrderStatus.REJECTED, now, note=f"{note}: never placed"
        )
    else:
        # Dated when the order was journaled (sent a moment later), not now: the position's
        # age, the trade's holding time and the day its PnL counts toward are the trade's.
        fill = Fill(
            order.client_order_id,
            order.pair,
            order.side,
            settlement.amount,
            settlement.price,
            settlement.fee,
            order.created_at,
            f"by-hand-{order.client_order_id}",
        )
        report = ExecutionReport(
            order.client_order_id,
            "",
            OrderStatus.FILLED,
            settlement.amount,
            settlement.price,
            (fill,),
        )
        _, trade = await executor.settle(report)
        await executor.journal.update(order.client_order_id, OrderStatus.FILLED, now, note=note)
    executor.unknown.release(order.client_order_id)
    return trade

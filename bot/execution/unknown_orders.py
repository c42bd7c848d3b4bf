"""Orders whose outcome cannot be determined by reading the venue (``OrderOutcomeUnknown``).

Unlike an outage this does not clear with time: the venue answers, but its lists hold more
orders around the order than a lookup reads (another bot on the same account, say). Only the
order's own pair waits: it is not ticked at all (no entry, no exit, no per-candle stop) until
the order is found or an admin settles it by hand (/order, bot/execution/order_by_hand.py); every
other pair trades as usual. Holding, not selling: while it is unknown whether the order bought or
sold, any sale of that pair may sell twice (an exit already done, or coins that are not
pairpilot's), so the alert says plainly that the pair is not protected by pairpilot meanwhile.
Each order is alerted to the admins once, remembered over restarts. A held order is looked
up again after a growing wait (``FIRST_WAIT`` doubling up to ``LONGEST_WAIT``), not on every
tick (an admin's /stoppair or /flatten looks it up at once); a look-up of it that fails (an
outage, a rate limit) holds only its own pair.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.alerts.outbox import AlertOutbox
from bot.core.domain import AlertPriority, Order, OrderStatus, Side
from bot.core.errors import OrderOutcomeUnknown
from bot.core.ports import Clock, StateStore

# A held order is looked up again (a full window of list pages: 50 and more requests on
# Coinbase) at most this often, the wait doubling after each look-up that still cannot tell,
# up to the longest: not on every tick, whose other pairs share the venue's rate limit.
FIRST_WAIT = timedelta(minutes=10)
LONGEST_WAIT = timedelta(minutes=30)
KIND = "order_unknown"
_ALERTED_KEY = "alerted.order_unknown"
_KEEP = 200  # order ids remembered as alerted


class UnknownOrders:
    """The orders whose outcome cannot be read, by pair, and their alerts. An order is held
    from the look-up that cannot find it until it is final in the journal (found later, or
    settled with /order): a look-up that fails otherwise meanwhile (an outage) keeps it."""

    def __init__(self, alerts: AlertOutbox, state: StateStore, clock: Clock) -> None:
        self._alerts, self._state, self._clock = alerts, state, clock
        self._held: dict[str, Order] = {}  # client order id -> the order, as journaled
        self._next: dict[str, tuple[datetime, timedelta]] = {}  # id -> next look-up, wait

    @property
    def blocking(self) -> dict[str, list[Order]]:
        """pair -> the orders it waits on (oldest first)."""
        pairs: dict[str, list[Order]] = {}
        for order in sorted(self._held.values(), key=lambda o: o.created_at):
            pairs.setdefault(order.pair, []).append(order)
        return pairs

    def waiting(self, pair: str) -> list[Order]:
        """The orders ``pair`` waits on (none: it trades)."""
        return self.blocking.get(pair, [])

    def holds(self, client_order_id: str) -> bool:
        return client_order_id in self._held

    async def found(
        self, order: Order, error: OrderOutcomeUnknown, venue: str, resting_stops: bool
    ) -> str:
        """Hold ``order``'s pair and alert the admins (once per order); returns why it waits."""
        self._held[order.client_order_id] = order
        self.failed(order.client_order_id)
        seen = list(await self._state.get(_ALERTED_KEY) or [])
        if order.client_order_id not in seen:
            await self._alerts.push(
                KIND, AlertPriority.CRITICAL, alert_text(order, error, venue, resting_stops)
            )
            seen = (seen + [order.client_order_id])[-_KEEP:]
            await self._state.set(_ALERTED_KEY, seen, self._clock.now())
        return self.why(order, str(error))

    def why(self, order: Order, error: str) -> str:
        """Why ``order``'s pair waits."""
        return (
            f"the outcome of order {order.client_order_id} cannot be read from the "
            f"exchange ({error}); settle it with /order"
        )

    def due(self, client_order_id: str) -> bool:
        """Whether ``client_order_id`` is looked up now: not held, or its wait is over."""
        planned = self._next.get(client_order_id)
        return planned is None or self._clock.now() >= planned[0]

    def failed(self, client_order_id: str) -> None:
        """A look-up of the held ``client_order_id`` could not tell: wait longer."""
        planned = self._next.get(client_order_id)
        wait = min(planned[1] * 2, LONGEST_WAIT) if planned else FIRST_WAIT
        self._next[client_order_id] = (self._clock.now() + wait, wait)

    def release(self, client_order_id: str) -> None:
        """``client_order_id`` is final in the journal: its pair no longer waits on it."""
        self._held.pop(client_order_id, None)
        self._next.pop(client_order_id, None)

    async def cleared(self, order: Order, venue: str) -> None:
        """The venue told ``order``'s outcome after all (``order`` as the journal now has it):
        its pair no longer waits on it, and admins told it could not be read hear so, once."""
        self.release(order.client_order_id)
        seen = list(await self._state.get(_ALERTED_KEY) or [])
        if order.client_order_id not in seen:
            return
        await self._alerts.push(
            KIND, AlertPriority.CRITICAL, cleared_text(order, venue, self.waiting(order.pair))
        )
        seen.remove(order.client_order_id)
        await self._state.set(_ALERTED_KEY, seen, self._clock.now())

    def keep(self, journaled: set[str]) -> None:
        """Hold only the orders in ``journaled`` (still NEW): the others are final."""
        for client_order_id in set(self._held) - journaled:
            self.release(client_order_id)

    def refusal(self) -> str | None:
        """Why a command that needs settled books must wait now, or None."""
        if not self._held:
            return None
        named = ", ".join(
            f"{o.client_order_id} ({pair})"
            for pair, os in sorted(self.blocking.items())
            for o in os
        )
        return (
            f"the outcome of order {named} cannot be read from the exchange; settle it "
            "first with /order ID venue VENUE_ORDER_ID (best), /order ID never, or /order "
            "ID filled AMOUNT PRICE FEE"
        )


def alert_text(order: Order, error: OrderOutcomeUnknown, venue: str, resting_stops: bool) -> str:
    """The admins' alert: the order, the pair, the venue, why, what pairpilot does meanwhile
    and the way out."""
    base, quote = order.pair.split("/")
    action = "bought" if order.side is Side.BUY else "sold"
    if resting_stops:
        protection = (
            f"a position in it is protected only by a stop resting on {venue}, if "
            "one rests (an exit cancels it first)"
        )
    else:
        protection = (
            f"a position in it is NOT protected ({venue} holds no stop; pairpilot "
            "checks stops per candle, and does not now)"
        )
    return (
        f"Order {order.client_order_id} ({order.side.value} {order.amount:.8g} {order.pair} on "
        f"{venue}, journaled {order.created_at:%Y-%m-%d %H:%M} UTC): its outcome cannot be "
        f"read from {venue} ({error}). Until it is settled {order.pair} is not traded: no "
        f"entry, no exit, no stop check, since pairpilot cannot tell whether this order "
        f"{action} already and a sale could sell twice; {protection}. The other pairs trade "
        f"as usual. Way out, best first: find the order on {venue}'s website and send /order "
        f"{order.client_order_id} venue VENUE_ORDER_ID ({venue}'s id for it): pairpilot "
        f"reads it by that id, books what it did and follows it if it still rests. Otherwise "
        f"/order {order.client_order_id} never (it was not placed; an order still resting "
        f"on {venue} would fill later unbooked), or /order "
        f"{order.client_order_id} filled AMOUNT PRICE FEE (what it filled: {base}, the average "
        f"price in {quote}, and the fee in {quote}, which {venue}'s trade history (fills) "
        f"shows; a fee charged in another coin converted to {quote}; without FEE it is booked "
        "as 0, and the books' cash ends above the venue's)."
    )


def cleared_text(order: Order, venue: str, still: list[Order]) -> str:
    """The all-clear: the order, what the venue told and was booked, whether its pair still
    waits (not whether it trades: a halt or a stop may hold it all the same)."""
    if order.status is OrderStatus.REJECTED:
        told = f"it never reached {venue}: closed, nothing booked"
    elif order.filled > 0:
        base = order.pair.split("/")[0]
        told = (
            f"{order.status.value}, {order.filled:.8g} {base} at "
            f"{order.average_price or 0:.8g} booked, fees as {venue} charged"
        )
    else:
        told = f"{order.status.value} on {venue}, nothing filled"
    pair = (
        f"{order.pair} still waits on order {', '.join(o.client_order_id for o in still)}"
        if still
        else f"{order.pair} no longer waits on an order"
    )
    return (
        f"All clear: order {order.client_order_id} ({order.side.value} {order.pair}) was "
        f"read from {venue} after all: {told}. No /order needed for it; {pair}."
    )

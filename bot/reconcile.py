"""Start-up reconciliation: settle what a crash left unknown, and compare books with the exchange.

Every journaled order whose outcome was never recorded is looked up by its client order id:
found, its fills are booked (each trade id once); not found, it never reached the exchange and
is closed as rejected, so nothing is sent twice. Then the books are compared with the
exchange's balances, and the orders resting on the exchange with the journal: a difference or an
order pairpilot did not place is alerted, never adopted (nor cancelled).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.alerts import AlertOutbox
from bot.domain import AlertPriority, OpenOrder, OrderStatus
from bot.execution import Executor
from bot.portfolio import Portfolio
from bot.ports import Clock, Exchange
from storage.orders import SqliteOrderRepository

log = logging.getLogger(__name__)
_TOLERANCE = 1e-8  # relative: float round-off between books and exchange is not drift


@dataclass(frozen=True, slots=True)
class Reconciliation:
    settled: list[str] = field(default_factory=list)  # found on the exchange and booked
    never_sent: list[str] = field(default_factory=list)  # unknown to the exchange: closed
    drift: dict[str, tuple[float, float]] = field(default_factory=dict)  # asset: books, exchange
    foreign: list[OpenOrder] = field(default_factory=list)  # resting there, not in the journal

    @property
    def clean(self) -> bool:
        return not self.drift and not self.foreign


async def reconcile(
    *,
    orders: SqliteOrderRepository,
    exchange: Exchange,
    executor: Executor,
    portfolio: Portfolio,
    alerts: AlertOutbox,
    clock: Clock,
    quote: str,
    pairs: Sequence[str],
) -> Reconciliation:
    """Settle the journal's open questions, then compare holdings and the open orders of
    ``pairs`` (with every held position's pair); alerts on any difference."""
    result = Reconciliation()
    for order in await orders.not_final():
        report = await exchange.lookup(order)
        if report is None:
            await orders.update(order.client_order_id, OrderStatus.REJECTED, clock.now(),
                                note="never reached the exchange (found at start-up)")  # fmt: skip
            result.never_sent.append(order.client_order_id)
            continue
        await executor.book(report)
        result.settled.append(order.client_order_id)
    held = {p.pair.split("/")[0]: p.amount for p in portfolio.positions()}
    balances = await exchange.fetch_balances()
    for asset in sorted(set(held) | {a for a in balances if a != quote}):
        books, venue = held.get(asset, 0.0), balances.get(asset, 0.0)
        if abs(books - venue) > _TOLERANCE * max(abs(books), abs(venue), 1e-12):
            result.drift[asset] = (books, venue)
    watched = sorted(set(pairs) | {p.pair for p in portfolio.positions()})
    for order in await exchange.open_orders(watched):
        if not order.client_order_id or await orders.get(order.client_order_id) is None:
            result.foreign.append(order)
    if result.settled or result.never_sent:
        log.info("reconciled: settled %s, never sent %s", result.settled, result.never_sent)
    if result.drift:
        lines = ", ".join(f"{asset}: books {b:.8g}, exchange {v:.8g}"
                          for asset, (b, v) in result.drift.items())  # fmt: skip
        await alerts.push("reconciliation_drift", AlertPriority.ERROR,
                          f"Holdings differ from the exchange ({lines}). Nothing was adopted; "
                          "check the account.")  # fmt: skip
    if result.foreign:
        lines = "; ".join(f"{o.pair} {o.side} {o.amount:.8g}"
                          + (f" at {o.price:.8g}" if o.price else "")
                          + f" (id {o.client_order_id or 'none'})"
                          for o in result.foreign)  # fmt: skip
        await alerts.push("reconciliation_drift", AlertPriority.ERROR,
                          f"Orders on the exchange that pairpilot did not place: {lines}. Left "
                          "alone; cancel them on the exchange if they are not wanted.")  # fmt: skip
    return result

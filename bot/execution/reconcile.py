"""Start-up reconciliation: settle what a crash left unknown, and compare books with the exchange.

Every journaled order whose outcome was never recorded is looked up by its client order id:
found, its fills are booked (each trade id once) and announced like any fill, and a trade it
closed (a stop that fired while pairpilot was down) is returned so the cooldown counts it; not
found, it never reached the exchange and is closed as rejected, so nothing is sent twice.

An order the venue answers for but cannot be found in (``OrderOutcomeUnknown``) does not stop
the start: its pair waits (bot/execution/unknown_orders.py), the admins are alerted, and the
holdings are not compared until it is settled (its coins would read as drift, or as the user's own).

Then the books are compared with the exchange's balances (free + used), for the quote currency
(the books' cash) and the base coin of every pair traded, and the orders resting on the exchange
with the journal: a difference or an order pairpilot did not place is alerted, never adopted
(nor cancelled).

What the user holds outside pairpilot is told apart by a baseline (``OutsideHoldings``): at the
first reconciliation, for the quote and each traded coin, whatever the exchange holds beyond the
books is recorded as the user's own; later comparisons expect books + baseline. Coins no pair
trades (BNB kept for fees, long-term holdings) are never compared: they are listed once, at that
first start, and left alone. A later deposit or withdrawal of a traded asset is drift.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.alerts.outbox import AlertOutbox
from bot.core.domain import AlertPriority, OpenOrder, Order, OrderStatus, Trade
from bot.core.errors import OrderOutcomeUnknown
from bot.core.ports import Clock, Exchange, OrderJournal
from bot.execution.executor import Executor
from bot.portfolio.books import Portfolio
from bot.portfolio.outside import OutsideHoldings, drift

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    settled: list[str] = field(default_factory=list)  # found on the exchange and booked
    never_sent: list[str] = field(default_factory=list)  # unknown to the exchange: closed
    drift: dict[str, tuple[float, float]] = field(default_factory=dict)  # asset: books, exchange
    foreign: list[OpenOrder] = field(default_factory=list)  # resting there, not in the journal
    closed: list[tuple[Order, Trade]] = field(default_factory=list)  # trades settled here
    outside: dict[str, float] = field(default_factory=dict)  # the user's own, left alone
    unknown: dict[str, str] = field(default_factory=dict)  # pair: order the venue cannot tell

    @property
    def clean(self) -> bool:
        return not self.drift and not self.foreign and not self.unknown


async def reconcile(
    *,
    orders: OrderJournal,
    exchange: Exchange,
    executor: Executor,
    portfolio: Portfolio,
    alerts: AlertOutbox,
    clock: Clock,
    quote: str,
    pairs: Sequence[str],
    outside: OutsideHoldings | None = None,
) -> Reconciliation:
    """Settle the journal's open questions, then compare holdings and the open orders of
    ``pairs`` (with every held position's pair); alerts on any difference. ``outside``: the
    baseline of the user's own holdings (recorded here at the first call); without it the
    account is taken to hold nothing beside the books."""
    result = Reconciliation()
    await _settle_journal(orders, exchange, executor, clock, result)
    if result.unknown:  # the books wait on it: a difference (or, at the first start, the
        # user's own holdings recorded) would count its coins as drift or as the user's
        log.warning(
            "start-up reconciliation: holdings not compared, orders %s have an unknown outcome",
            result.unknown,
        )
        return result
    watched = sorted(set(pairs) | {p.pair for p in portfolio.positions()})
    held = {p.pair.split("/")[0]: p.amount for p in portfolio.positions()}
    books = {
        quote: portfolio.cash,
        **{pair.split("/")[0]: held.get(pair.split("/")[0], 0.0) for pair in watched},
    }
    balances = await exchange.fetch_balances()
    baseline = await _baseline(outside, books, balances, alerts)
    result.outside.update(baseline)
    result.drift.update(drift(books, balances, baseline, quote))
    for order in await exchange.open_orders(watched):
        if not order.client_order_id or await orders.get(order.client_order_id) is None:
            result.foreign.append(order)
    if result.settled or result.never_sent:
        log.info("reconciled: settled %s, never sent %s", result.settled, result.never_sent)
    if result.drift:
        lines = ", ".join(
            f"{asset}: books {b:.8g}, exchange {v:.8g}" for asset, (b, v) in result.drift.items()
        )
        await alerts.push(
            "reconciliation_drift",
            AlertPriority.ERROR,
            f"Holdings differ from the exchange ({lines}; the exchange's figure "
            "is net of what you hold outside pairpilot). Nothing was adopted; "
            "check the account.",
        )
    if result.foreign:
        lines = "; ".join(
            f"{o.pair} {o.side} {o.amount:.8g}"
            + (f" at {o.price:.8g}" if o.price else "")
            + f" (id {o.client_order_id or 'none'})"
            for o in result.foreign
        )
        await alerts.push(
            "reconciliation_drift",
            AlertPriority.ERROR,
            f"Orders on the exchange that pairpilot did not place: {lines}. Left "
            "alone; cancel them on the exchange if they are not wanted.",
        )
    return result


async def _settle_journal(
    orders: OrderJournal,
    exchange: Exchange,
    executor: Executor,
    clock: Clock,
    result: Reconciliation,
) -> None:
    """Settle every journaled order whose outcome was never recorded, into ``result``."""
    for order in await orders.not_final():
        try:
            report = await exchange.lookup(order)
        except OrderOutcomeUnknown as error:  # start-up goes on: only its pair waits
            await executor.unknown.found(
                order, error, executor.venue(), exchange.supports_stop_orders
            )
            result.unknown[order.pair] = order.client_order_id
            continue
        if report is None:
            await orders.update(
                order.client_order_id,
                OrderStatus.REJECTED,
                clock.now(),
                note="never reached the exchange (found at start-up)",
            )
            result.never_sent.append(order.client_order_id)
        else:
            _, trade = await executor.settle(report)  # announced like any fill
            if trade is not None:
                result.closed.append((order, trade))
            result.settled.append(order.client_order_id)
        # An order alerted as unknown before the restart: the admins hear it was read after all.
        await executor.unknown.cleared(
            await orders.require(order.client_order_id), executor.venue()
        )


async def _baseline(
    outside: OutsideHoldings | None,
    books: dict[str, float],
    balances: dict[str, float],
    alerts: AlertOutbox,
) -> dict[str, float]:
    """The user's own holdings: recorded (and listed once) at the first reconciliation, and
    for each asset a pair started since brings into the books."""
    if outside is None:
        return {}
    first = not await outside.recorded()
    baseline, new = await outside.complete(books, balances)
    listed = {asset: amount for asset, amount in new.items() if amount > 0}
    if first:
        listed.update({asset: amount for asset, amount in balances.items() if asset not in books})
    if listed:
        lines = ", ".join(f"{asset} {amount:.8g}" for asset, amount in sorted(listed.items()))
        await alerts.push(
            "startup",
            AlertPriority.INFO,
            f"Held on the account beside pairpilot, left alone and never sold: {lines}.",
        )
    return baseline

"""What /order (an order settled by hand, ``Control.settle_order``) does to its pair: an order
read by the venue's id, followed or cancelled, and the truthful "then" of its answer.
"""

from __future__ import annotations

from bot.core.domain import Order, Side, Trade
from bot.core.ports import Clock
from bot.execution import order_by_hand
from bot.trading.engine import Engine
from bot.trading.service import TradingService


async def by_venue_id(
    engine: Engine,
    service: TradingService,
    order: Order,
    settlement: order_by_hand.Settlement,
    clock: Clock,
) -> tuple[str, Trade | None, bool]:
    """/order ID venue VENUE_ORDER_ID: the order read by the venue's id and booked. One
    still resting is followed when it is the pair's pending entry (its next candle's close
    cancels it; halted, it is cancelled now) or its position's resting stop (adopted as
    the stop: kept, looked up every candle); any other is cancelled first
    (bot/execution/order_by_hand.py). The Done, the trade, whether it is final."""
    executor = engine.executor
    coid = order.client_order_id
    # Under the kill switch the pending entry is cancelled at once too (a /flatten that
    # skipped its blocked pair would have): a halted account buys nothing more.
    halted = await engine.guard.halted()
    pending = await engine.pending_entry(order.pair) == coid and not halted
    stop = await engine.resting_stop(order.pair)
    stop_level = stop[1] if stop is not None and stop[0] == coid else None
    _, trade = await order_by_hand.by_venue_id(
        executor, order, settlement, clock.now(), pending or stop_level is not None
    )
    journaled = await executor.journal.require(coid)
    base = order.pair.split("/")[0]
    done = (
        f"Done: order {coid} is {executor.venue()}'s order {settlement.venue_id}: "
        f"{journaled.status.value}, {journaled.filled:.8g} {base} filled and "
        "booked"
    )
    final = journaled.status.is_final
    if not final and stop_level is not None:
        done += (
            f"; it is the position's stop at {stop_level:.8g}, resting there: kept "
            "(not cancelled) and followed by that id, what it sells booked"
        )
    elif not final:  # the pending entry: its run follows it
        done += (
            "; it still rests there and is followed by that id: the next candle's "
            "close cancels it (a limit entry lasts one candle) and books what "
            "filled"
        )
    return f"{done}; {await then(engine, service, order, settlement)}.", trade, final


async def then(
    engine: Engine, service: TradingService, order: Order, settlement: order_by_hand.Settlement
) -> str:
    """What ``order``'s pair does once the order no longer holds it, truthfully: a halt
    (the kill switch) opens nothing and sells nothing by itself, so a position booked by
    hand then stays until /flatten is sent again (said plainly rather than sold here: the
    kill switch, idempotent, stays the one way that sells); a pair without a run is not
    traded; otherwise it trades again."""
    halt = await engine.guard.halted()
    if halt:
        held = (
            f"; a position in {order.pair} (booked now or before) is held, its stops "
            "managed, NOT sold: send /flatten again to sell it"
            if (settlement.filled and order.side is Side.BUY)
            or engine.portfolio.position(order.pair)
            else ""
        )
        return f"pairpilot is halted ({halt.get('reason')}): no new entries{held}"
    if service.run_for(order.pair) is None:
        return f"{order.pair} has no run: pairpilot does not trade it"
    return f"{order.pair} trades again"

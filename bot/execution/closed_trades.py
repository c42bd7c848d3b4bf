"""The trade an order's sale closed, and the trade alert's text.

A sale that leaves only dust closes its round trip; the later sale of that rest completes the
same trade (``round_trips``), which was counted when it closed, so it is told apart here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.core.domain import ExecutionReport, OrderIntent, OrderStatus, Position, Side, Trade
from bot.core.ports import FillHistory
from bot.portfolio.performance import round_trips

TooSmall = Callable[[str, float, float], str | None]  # the exchange's dust rule


async def closed_trade(
    fills: FillHistory,
    too_small: TooSmall,
    pair: str,
    opened_at: datetime | None,
    report: ExecutionReport,
) -> tuple[Trade | None, bool]:
    """The trade ``report``'s sale closed, and whether it was closed before: the sale of a
    rest an exit left as dust completes that exit's trade (``round_trips``), which was
    counted (the cooldown) when it closed; its alert shows the whole trade's PnL.
    ``opened_at`` None (a stored position without it): every fill of the pair counts."""
    booked = await fills.all(since=opened_at, pair=pair)
    trades = round_trips(booked, too_small)
    if not trades:
        return None, False
    now = {fill.trade_id for fill in report.fills}
    before = round_trips([f for f in booked if f.trade_id not in now], too_small)
    return trades[-1], bool(before) and before[-1].entry_time == trades[-1].entry_time


async def closed_as_dust(
    fills: FillHistory, too_small: TooSmall, position: Position
) -> Trade | None:
    """The trade ``position``, the rest of an exit turned to dust before it was sold, closes
    at its last sale; None when that sale had closed it already."""
    pair = position.pair
    booked = await fills.all(since=position.opened_at, pair=pair)
    before = round_trips(booked, too_small)
    trades = round_trips(booked, too_small, {pair: position.amount})
    if not trades or (before and before[-1].entry_time == trades[-1].entry_time):
        return None
    return trades[-1]


def dust_closed_text(position: Position, trade: Trade) -> str:
    """The alert of a trade closed by its rest turning to dust."""
    return (
        f"{position.pair}: the {position.amount:.6g} left of the exit is too small to sell "
        f"now, so its trade closed at its last sale: trade PnL {trade.pnl:+,.2f} "
        f"({trade.return_pct:+.2%})"
    )


def trade_text(
    intent: OrderIntent, report: ExecutionReport, trade: Trade | None, completes: bool
) -> str | None:
    """A trade alert's text (None: nothing filled); ``completes``: the sale of a rest
    completes a trade announced closed before, whose PnL this alert gives again, now with the
    rest."""
    if not report.filled or report.average_price is None:
        return None
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
    return text

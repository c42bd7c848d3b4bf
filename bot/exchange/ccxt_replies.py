"""A venue's replies as ccxt parses them, turned into ours: candles, order reports, fills."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bot.core.domain import ExecutionReport, Fill, OrderIntent, OrderStatus, Side, from_ms
from bot.market.candle_files import COLUMNS

log = logging.getLogger(__name__)

DEFAULT_TAKER_FEE = 0.001  # when the exchange states none

FINAL = ("closed", "canceled", "expired", "rejected")
_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def candle_frame(rows: Sequence[Sequence[float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["timestamp"] = frame["timestamp"].astype(np.int64)
    return frame.astype({column: np.float64 for column in COLUMNS[1:]})


def order_report(
    intent: OrderIntent,
    order: Mapping[str, Any],
    market: Mapping[str, Any],
    fee_prices: Mapping[str, float],
) -> ExecutionReport:
    """Our report of a ccxt order: fees in the quote currency, amounts net of base fees."""
    trades = order.get("trades") or []
    fills = tuple(_fill(intent, trade, market, fee_prices) for trade in trades)
    filled = sum(fill.amount for fill in fills) if fills else float(order.get("filled") or 0.0)
    status = _STATUS.get(order.get("status") or "", OrderStatus.NEW)  # no status: not known
    if status is OrderStatus.OPEN and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    traded = sum(float(trade["amount"]) for trade in trades)
    triggered = order.get("triggerPrice") or order.get("stopPrice") or order.get("stopLossPrice")
    if _trades_lag(order, status, traded) or (
        order.get("type") == "market" and not status.is_final and not triggered
    ):
        # Not known in full yet: a venue's trades can lag its order's status, and a market
        # order read "live" has not matched yet. NEW: read again on the next tick
        # (Executor.settle_unknown), each trade booked once whenever it shows.
        status = OrderStatus.NEW
    notional = sum(fill.notional for fill in fills)
    return ExecutionReport(
        client_order_id=intent.client_order_id,
        exchange_order_id=str(order.get("id")),
        status=status,
        filled=filled,
        average_price=notional / filled if filled else None,
        fills=fills,
    )


def _trades_lag(order: Mapping[str, Any], status: OrderStatus, traded: float) -> bool:
    """Whether the order says more filled than its trades add up to (or filled with none)."""
    reported = float(order.get("filled") or 0.0)
    if reported > traded * (1 + 1e-9) + 1e-12:
        return True
    return status is OrderStatus.FILLED and traded == 0


def trade_ids(order: Mapping[str, Any]) -> list[str]:
    """The ids of an order's trades that the order read named without their details."""
    return [
        str(t["id"])
        for t in order.get("trades") or []
        if t.get("price") is None and t.get("id") is not None
    ]


def trade_fees(trade: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A trade's fees: ccxt's ``fee`` when it has a cost, else its ``fees`` list."""
    fee = trade.get("fee") or {}
    if fee.get("cost") is not None:
        return [fee]
    return [entry for entry in trade.get("fees") or [] if entry and entry.get("cost") is not None]


def _fill(
    intent: OrderIntent,
    trade: Mapping[str, Any],
    market: Mapping[str, Any],
    fee_prices: Mapping[str, float],
) -> Fill:
    """One trade as a fill. A buy's fee in the coin bought reduces the coins received; a fee
    in any other coin (BNB, or the coin sold: a BNB/USDT sale paying in BNB) comes from that
    coin's balance, not from this trade: it is valued in the quote (at that coin's price now,
    or, with no market to price it, at the market's taker rate) and kept in its own units
    (``fee_amount``) for the books to take from whoever holds it (``Executor``)."""
    price = float(trade["price"])
    amount = float(trade["amount"])
    base, quote = market.get("base"), market.get("quote")
    fee = outside = charged = 0.0
    assets = set()
    for entry in trade_fees(trade):
        cost, currency = float(entry["cost"]), entry.get("currency")
        assets.add(currency or "")
        charged += cost
        if currency == base and intent.side is Side.BUY:
            amount -= cost
            fee += cost * price
        elif currency == base:
            outside += cost * price
        elif currency in (None, quote):
            fee += cost
        elif currency in fee_prices:
            outside += cost * fee_prices[currency]
        else:
            log.warning(
                "fee in %s: no %s market to price it; booked at the taker rate", currency, quote
            )
            outside += price * amount * float(market.get("taker") or DEFAULT_TAKER_FEE)
    moment = trade.get("timestamp")
    return Fill(
        client_order_id=intent.client_order_id,
        pair=intent.pair,
        side=intent.side,
        amount=amount,
        price=price,
        fee=fee + outside,
        time=from_ms(int(moment)) if moment else intent.created_at,
        trade_id=f"{market.get('id')}-{trade.get('id')}",
        fee_outside=outside,
        fee_asset=",".join(sorted(assets)),
        fee_amount=charged if len(assets) == 1 else 0.0,
    )

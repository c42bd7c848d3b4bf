"""The paper account's order reports as it stores them (JSON) and reads them back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.core.domain import ExecutionReport, Fill, OrderStatus, Side, from_ms, to_ms


def report_to_json(report: ExecutionReport) -> dict[str, Any]:
    """``report`` as stored: plain values, its fills' times in epoch milliseconds."""
    return {
        "client_order_id": report.client_order_id,
        "exchange_order_id": report.exchange_order_id,
        "status": report.status.value,
        "filled": report.filled,
        "average_price": report.average_price,
        "fills": [
            {
                "pair": f.pair,
                "side": f.side.value,
                "amount": f.amount,
                "price": f.price,
                "fee": f.fee,
                "time": to_ms(f.time),
                "trade_id": f.trade_id,
            }
            for f in report.fills
        ],
    }


def report_from_json(value: Mapping[str, Any]) -> ExecutionReport:
    """The report ``report_to_json`` stored."""
    return ExecutionReport(
        client_order_id=value["client_order_id"],
        exchange_order_id=value["exchange_order_id"],
        status=OrderStatus(value["status"]),
        filled=value["filled"],
        average_price=value["average_price"],
        fills=tuple(
            Fill(
                value["client_order_id"],
                f["pair"],
                Side(f["side"]),
                f["amount"],
                f["price"],
                f["fee"],
                from_ms(f["time"]),
                f["trade_id"],
            )
            for f in value["fills"]
        ),
    )

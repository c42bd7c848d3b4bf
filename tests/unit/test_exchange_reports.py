"""How a ccxt order becomes our report: fees read from ``fee`` or, when it is empty, ``fees``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.core.domain import OrderIntent, Side
from bot.exchange.ccxt_replies import order_report

NOW = datetime(2025, 7, 1, tzinfo=UTC)
MARKET = {"id": "BTCUSDT", "base": "BTC", "quote": "USDT", "taker": 0.001}


def test_the_fees_list_is_read_when_fee_is_empty() -> None:
    intent = OrderIntent("pp1x1buy", 1, "BTC/USDT", Side.BUY, 0.01, 100_000.0, NOW)
    trade = {
        "id": "7",
        "price": 100_000.0,
        "amount": 0.01,
        "timestamp": None,
        "fee": None,
        "fees": [{"cost": 0.5, "currency": "USDT"}, {"cost": 0.00001, "currency": "BTC"}],
    }
    order = {"id": "1", "status": "closed", "filled": 0.01, "trades": [trade]}
    (fill,) = order_report(intent, order, MARKET, {}).fills
    assert fill.amount == pytest.approx(0.00999)
    assert fill.fee == pytest.approx(1.5)  # 0.5 USDT + 0.00001 BTC at 100,000

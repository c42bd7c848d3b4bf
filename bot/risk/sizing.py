"""Sizing and vetoes: pure functions from a signal and the account to an order intent."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from bot.core.domain import OrderIntent, PairRun, Position, RiskLimits, Side, Signal, to_ms
from bot.core.errors import InsufficientFunds, RiskRejected
from bot.risk.fills import bought_at, coins_for

_ID_LIMIT = 32


def client_order_id(run_id: int, candle_time: datetime, side: Side, purpose: str = "") -> str:
    """Deterministic id: the same decision on the same candle always maps to the same order.

    Letters and digits only, at most 32: what OKX (the strictest venue profiled in
    ``bot.exchange.venues``) accepts, and within Binance's and Bybit's 36. A long purpose is
    cut and the rest replaced by a hash of the whole id, so two purposes never share one."""
    word = re.sub(r"[^A-Za-z0-9]", "", purpose)
    whole = f"pp{run_id}x{to_ms(candle_time)}{side.value[0]}{word}"
    if len(whole) <= _ID_LIMIT:
        return whole
    digest = hashlib.sha256(whole.encode()).hexdigest()[:8]
    return whole[: _ID_LIMIT - len(digest)] + digest


def size_entry(
    signal: Signal,
    *,
    run: PairRun,
    budget: float,
    limits: RiskLimits,
    fee_rate: float,
    slippage: float,
    now: datetime,
) -> OrderIntent:
    """A buy spending ``budget`` (from ``rules.entry_budget``); refused below the minimum.

    The order is sized in the quote currency, so it spends the budget whatever the fill price;
    ``amount`` is only the estimate at the signal's price.
    """
    if budget < limits.min_order_value or budget <= 0:
        raise InsufficientFunds(
            f"entry budget {budget:,.2f} is under the minimum order of "
            f"{limits.min_order_value:,.2f} (free cash and the caps on position and exposure)"
        )
    return OrderIntent(
        client_order_id=client_order_id(run.id, signal.candle_time, Side.BUY),
        run_id=run.id,
        pair=run.pair,
        side=Side.BUY,
        amount=coins_for(budget, bought_at(signal.price, slippage), fee_rate, False),
        reference_price=signal.price,
        created_at=now,
        reason=signal.reason or "entry signal",
        quote_amount=budget,
    )


def size_exit(
    signal: Signal,
    *,
    run: PairRun,
    position: Position,
    now: datetime,
    trigger_price: float | None = None,
) -> OrderIntent:
    """Sell the whole position: on a signal, or at the trigger price of a protective exit."""
    if position.amount <= 0:
        raise RiskRejected(f"{run.pair}: nothing to sell")
    purpose = signal.reason if trigger_price is not None else ""
    return OrderIntent(
        client_order_id=client_order_id(run.id, signal.candle_time, Side.SELL, purpose),
        run_id=run.id,
        pair=run.pair,
        side=Side.SELL,
        amount=position.amount,
        reference_price=signal.price,
        created_at=now,
        reason=signal.reason or "exit signal",
        trigger_price=trigger_price,
    )

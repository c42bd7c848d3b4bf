"""The paper exchange: market orders fill at the current price with fee and slippage.

An order larger than ``volume_share`` of the volume it trades into fills only that much, and
the rest expires, as a market order does on an exchange that runs out of book.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.domain import (
    ExecutionReport,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    Side,
    from_ms,
    to_ms,
)
from bot.errors import ExchangeRejected, InsufficientFunds
from bot.ports import Clock, PriceFeed, StateStore

ACCOUNT_KEY = "paper.account"  # {"balances": {...}, "orders": {client order id: report}}
KEPT_REPORTS = 500  # the most recent orders stay answerable after a restart
_DUST = 1e-9  # relative tolerance for float round-off when an order spends a whole balance


class PaperExchange:
    """Simulated spot account. Balances persist in the state store after every fill.

    The price comes from a feed: the live ticker when running, the open of the candle forming
    at the clock's time in a replay (which is the next candle's open after a signal). A
    protective sell carries the price its stop or target triggered at, and fills there.
    """

    def __init__(
        self,
        *,
        feed: PriceFeed,
        clock: Clock,
        state: StateStore,
        balances: Mapping[str, float],
        fee_rate: float,
        slippage: float,
        volume_share: float = 0.0,
    ) -> None:
        """``volume_share``: the most of a candle's volume one order fills (0: no limit)."""
        self._feed = feed
        self._volume_share = volume_share
        self._clock = clock
        self._state = state
        self._balances = dict(balances)
        self._fee_rate = fee_rate
        self._slippage = slippage
        self._reports: dict[str, ExecutionReport] = {}

    @classmethod
    async def restore(
        cls,
        *,
        feed: PriceFeed,
        clock: Clock,
        state: StateStore,
        initial: Mapping[str, float],
        fee_rate: float,
        slippage: float,
        volume_share: float = 0.0,
    ) -> PaperExchange:
        """The paper account as last persisted, or funded with ``initial`` on first start."""
        account = await state.get(ACCOUNT_KEY)
        exchange = cls(
            feed=feed,
            clock=clock,
            state=state,
            balances=account["balances"] if account else initial,
            fee_rate=fee_rate,
            slippage=slippage,
            volume_share=volume_share,
        )
        if account is None:
            await exchange._save(clock.now())
        else:
            exchange._reports = {
                coid: _report_from_json(value) for coid, value in account["orders"].items()
            }
        return exchange

    async def _save(self, now: datetime) -> None:
        """Balances and the order that moved them in one write: a crash keeps both or neither."""
        recent = dict(list(self._reports.items())[-KEPT_REPORTS:])
        self._reports = recent
        orders = {coid: _report_to_json(report) for coid, report in recent.items()}
        await self._state.set(ACCOUNT_KEY, {"balances": self._balances, "orders": orders}, now)

    def balances(self) -> dict[str, float]:
        return dict(self._balances)

    async def lookup(self, order: Order) -> ExecutionReport | None:
        return self._reports.get(order.client_order_id)

    async def fetch_balances(self) -> dict[str, float]:
        return self.balances()

    async def cancel_all_orders(self, pairs: Sequence[str]) -> int:
        """Market orders fill at once on paper: nothing rests, so nothing to cancel."""
        return 0

    # Stops are enforced on every candle on paper (as in the backtest), never resting.
    supports_stop_orders = False

    async def place_stop(self, intent: OrderIntent) -> ExecutionReport:
        raise ExchangeRejected("the paper exchange enforces stops per candle; none rest")

    async def cancel_order(self, order: Order) -> ExecutionReport | None:
        return await self.lookup(order)

    async def create_market_order(self, intent: OrderIntent) -> ExecutionReport:
        if intent.client_order_id in self._reports:  # a retry of an order already filled
            return self._reports[intent.client_order_id]
        now = self._clock.now()
        price = intent.trigger_price or await self._feed.price(intent.pair, now)
        if intent.side is Side.BUY:
            fill_price = price * (1 + self._slippage)
            wanted = (intent.amount if intent.quote_amount is None  # else spend it, fee included
                      else intent.quote_amount / (fill_price * (1 + self._fee_rate)))  # fmt: skip
        else:
            fill_price = price * (1 - self._slippage)
            wanted = intent.amount
        amount = await self._fillable(intent.pair, wanted, now)
        fills = (self._fill(intent, amount, fill_price, now),) if amount > 0 else ()
        report = ExecutionReport(
            client_order_id=intent.client_order_id,
            exchange_order_id=f"paper-{intent.client_order_id}",
            status=OrderStatus.FILLED if amount >= wanted else OrderStatus.EXPIRED,
            filled=amount,
            average_price=fill_price if fills else None,
            fills=fills,
        )
        self._reports[intent.client_order_id] = report
        await self._save(now)
        return report

    def _fill(self, intent: OrderIntent, amount: float, price: float, now: datetime) -> Fill:
        """Move the balances for one fill (refused when the account cannot pay)."""
        base, quote = intent.pair.split("/")
        fee = amount * price * self._fee_rate
        if intent.side is Side.BUY:
            self._debit(quote, amount * price + fee, intent)
            changes = {quote: -(amount * price + fee), base: amount}
        else:
            self._debit(base, amount, intent)
            changes = {base: -amount, quote: amount * price - fee}
        for asset, change in changes.items():
            self._balances[asset] = max(0.0, self._balances.get(asset, 0.0) + change)
        return Fill(
            client_order_id=intent.client_order_id,
            pair=intent.pair,
            side=intent.side,
            amount=amount,
            price=price,
            fee=fee,
            time=now,
            trade_id=f"paper-{intent.client_order_id}",
        )

    async def _fillable(self, pair: str, amount: float, now: datetime) -> float:
        if self._volume_share <= 0:
            return amount
        volume = await self._feed.volume(pair, now)
        return amount if volume is None else min(amount, volume * self._volume_share)

    def _debit(self, asset: str, needed: float, intent: OrderIntent) -> None:
        available = self._balances.get(asset, 0.0)
        if needed > available * (1 + _DUST):
            raise InsufficientFunds(
                f"{intent.pair} {intent.side.value} {intent.amount:.8g}: needs {needed:.8g} "
                f"{asset}, the paper account has {available:.8g}"
            )


def _report_to_json(report: ExecutionReport) -> dict[str, Any]:
    return {
        "client_order_id": report.client_order_id,
        "exchange_order_id": report.exchange_order_id,
        "status": report.status.value,
        "filled": report.filled,
        "average_price": report.average_price,
        "fills": [
            {"pair": f.pair, "side": f.side.value, "amount": f.amount, "price": f.price,
             "fee": f.fee, "time": to_ms(f.time), "trade_id": f.trade_id}
            for f in report.fills
        ],
    }  # fmt: skip


def _report_from_json(value: Mapping[str, Any]) -> ExecutionReport:
    return ExecutionReport(
        client_order_id=value["client_order_id"],
        exchange_order_id=value["exchange_order_id"],
        status=OrderStatus(value["status"]),
        filled=value["filled"],
        average_price=value["average_price"],
        fills=tuple(
            Fill(value["client_order_id"], f["pair"], Side(f["side"]), f["amount"], f["price"],
                 f["fee"], from_ms(f["time"]), f["trade_id"])
            for f in value["fills"]
        ),
    )  # fmt: skip

"""The paper exchange: market orders fill at the current price with fee and slippage.

An order larger than ``volume_share`` of the volume it trades into fills only that much, and
the rest expires, as a market order does on an exchange that runs out of book. Into a candle
with no volume at all nothing fills (the backtest kernel models the same).

A limit buy rests (its quote money set aside) until it is looked up or cancelled: it fills at
min(open, limit) if the first candle closed after it was placed reached the limit, for the
coins its quote amount pays at the limit with the fee (sized when placed, as on a venue).

An account standing for a venue that holds stop orders (``rests_stops``) rests stop-losses as
that venue does: one fills at min(open, its level), less slippage, in the first candle since
it was placed whose low reached it (and that had volume); the backtest's ``resting_stops``
models the same. Otherwise none rest, and the engine checks stops on every candle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.core.domain import (
    ExecutionReport,
    Fill,
    OpenOrder,
    Order,
    OrderIntent,
    OrderStatus,
    Side,
    from_ms,
    to_ms,
)
from bot.core.errors import ExchangeRejected, InsufficientFunds
from bot.core.ports import Clock, PriceFeed, StateStore
from bot.exchange.paper_records import report_from_json, report_to_json
from bot.risk.fills import (
    bought_at,
    capped,
    coins_for,
    fee_of,
    limit_bought_at,
    sold_at,
    stop_sold_at,
)

ACCOUNT_KEY = "paper.account"  # {"balances": {...}, "orders": {client order id: report}}
KEPT_REPORTS = 500  # the most recent orders stay answerable after a restart
_DUST = 1e-9  # relative tolerance for float round-off when an order spends a whole balance


class PaperExchange:
    """Simulated spot account. Balances persist in the state store after every fill.

    The price comes from a feed: the live ticker when running, the open of the candle forming
    at the clock's time in a replay (which is the next candle's open after a signal). A
    protective sell decided at a close fills there too, as it does live: stops and targets
    are checked per candle on paper, and the engine sells at market once it has seen one.
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
        rests_stops: bool = False,
    ) -> None:
        """``volume_share``: the most of a candle's volume one order fills (0: no limit);
        ``rests_stops``: stop-losses rest on this account, as on the venue it stands for."""
        self.supports_stop_orders = rests_stops
        self._stops: dict[str, dict[str, Any]] = {}  # resting stop-loss sells, as JSON
        self._feed = feed
        self._volume_share = volume_share
        self._clock = clock
        self._state = state
        self._balances = dict(balances)
        self._fee_rate = fee_rate
        self._slippage = slippage
        self._reports: dict[str, ExecutionReport] = {}
        self._resting: dict[str, dict[str, Any]] = {}  # limit buys: coid -> order as JSON

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
        rests_stops: bool = False,
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
            rests_stops=rests_stops,
        )
        if account is None:
            await exchange._save(clock.now())
        else:
            exchange._reports = {
                coid: report_from_json(value) for coid, value in account["orders"].items()
            }
            exchange._resting = dict(account.get("resting", {}))
            exchange._stops = dict(account.get("stops", {}))
        return exchange

    async def _save(self, now: datetime) -> None:
        """Balances and the order that moved them in one write: a crash keeps both or neither."""
        recent = dict(list(self._reports.items())[-KEPT_REPORTS:])
        self._reports = recent
        orders = {coid: report_to_json(report) for coid, report in recent.items()}
        account = {
            "balances": self._balances,
            "orders": orders,
            "resting": self._resting,
            "stops": self._stops,
        }
        await self._state.set(ACCOUNT_KEY, account, now)

    def balances(self) -> dict[str, float]:
        return dict(self._balances)

    async def lookup(self, order: Order) -> ExecutionReport | None:
        if order.client_order_id in self._resting:
            await self._match(order.client_order_id)
        if order.client_order_id in self._stops:
            await self._match_stop(order.client_order_id)
        return self._reports.get(order.client_order_id)

    async def fetch_balances(self) -> dict[str, float]:
        """Totals: what resting orders set aside counts, as on an exchange."""
        totals = self.balances()
        for resting in self._resting.values():
            quote = resting["pair"].split("/")[1]
            totals[quote] = totals.get(quote, 0.0) + resting["quote_amount"]
        return totals

    async def open_orders(self, pairs: Sequence[str]) -> list[OpenOrder]:
        """The resting limit buys and stops of ``pairs`` (a paper account holds no one else's
        orders)."""
        buys = [
            OpenOrder(r["pair"], coid, "buy", r["quote_amount"] / r["limit"], r["limit"])
            for coid, r in self._resting.items()
            if r["pair"] in pairs
        ]
        return buys + [
            OpenOrder(s["pair"], coid, "sell", s["amount"], s["level"])
            for coid, s in self._stops.items()
            if s["pair"] in pairs
        ]

    async def create_limit_order(self, intent: OrderIntent) -> ExecutionReport:
        """A limit buy for ``intent.quote_amount`` (fee included) at ``intent.limit_price``."""
        if intent.client_order_id in self._reports:
            return self._reports[intent.client_order_id]
        if intent.side is not Side.BUY or intent.quote_amount is None or not intent.limit_price:
            raise ExchangeRejected("paper limit orders are buys sized in the quote currency")
        quote = intent.pair.split("/")[1]
        self._debit(quote, intent.quote_amount, intent)
        self._balances[quote] -= intent.quote_amount  # set aside while it rests
        now = self._clock.now()
        self._resting[intent.client_order_id] = {
            "pair": intent.pair,
            "run_id": intent.run_id,
            "limit": intent.limit_price,
            "quote_amount": intent.quote_amount,
            "placed_ms": to_ms(now),
        }
        report = ExecutionReport(
            intent.client_order_id,
            f"paper-{intent.client_order_id}",
            OrderStatus.OPEN,
            0.0,
            None,
            (),
        )
        self._reports[intent.client_order_id] = report
        await self._save(now)
        return report

    async def _match(self, coid: str) -> None:
        """Fill a resting limit buy if the candle after its placement reached the limit."""
        resting = self._resting[coid]
        now = self._clock.now()
        candle = await self._feed.candle_after(resting["pair"], from_ms(resting["placed_ms"]), now)
        if candle is None or float(candle["low"]) > resting["limit"]:
            return
        pair, quote = resting["pair"], resting["pair"].split("/")[1]
        price = limit_bought_at(float(candle["open"]), resting["limit"])
        # Sized at its limit, as a venue's order is when placed: under it, the coins cost less.
        wanted = coins_for(resting["quote_amount"], resting["limit"], self._fee_rate, False)
        amount = await self._fillable(pair, wanted, from_ms(int(candle["timestamp"])))
        self._balances[quote] += resting["quote_amount"]  # released, then spent by the fill
        intent = OrderIntent(coid, resting["run_id"], pair, Side.BUY, amount, price, now)
        fills = (self._fill(intent, amount, price, now),) if amount > 0 else ()
        del self._resting[coid]
        self._reports[coid] = ExecutionReport(
            coid,
            f"paper-{coid}",
            OrderStatus.FILLED if amount >= wanted else OrderStatus.EXPIRED,
            amount,
            price if fills else None,
            fills,
        )
        await self._save(now)

    async def _cancel(self, coid: str) -> None:
        resting = self._resting.pop(coid)
        quote = resting["pair"].split("/")[1]
        self._balances[quote] += resting["quote_amount"]
        self._reports[coid] = ExecutionReport(
            coid, f"paper-{coid}", OrderStatus.CANCELED, 0.0, None, ()
        )
        await self._save(self._clock.now())

    def too_small(self, pair: str, amount: float, price: float) -> str | None:
        """The paper exchange fills any size (the risk step's min_order_value guards entries)."""
        return None

    async def place_stop(self, intent: OrderIntent) -> ExecutionReport:
        """A stop-loss sell of ``intent.amount`` resting at ``intent.stop_price`` from now."""
        if not self.supports_stop_orders:
            raise ExchangeRejected("this paper account checks stops per candle; none rest")
        coid = intent.client_order_id
        if coid in self._reports:
            return self._reports[coid]
        now = self._clock.now()
        self._stops[coid] = {
            "pair": intent.pair,
            "run_id": intent.run_id,
            "amount": intent.amount,
            "level": intent.stop_price,
            "seen_ms": to_ms(now),
        }
        report = ExecutionReport(coid, f"paper-{coid}", OrderStatus.OPEN, 0.0, None, ())
        self._reports[coid] = report
        await self._save(now)
        return report

    async def _match_stop(self, coid: str) -> None:
        """Fill a resting stop if a candle closed since it was last looked at reached it."""
        stop, now = self._stops[coid], self._clock.now()
        while True:
            candle = await self._feed.candle_after(stop["pair"], from_ms(stop["seen_ms"]), now)
            if candle is None:
                return
            stop["seen_ms"] = int(candle["timestamp"]) + 1
            if float(candle["low"]) <= stop["level"] and float(candle["volume"]) > 0:
                break
        price = stop_sold_at(float(candle["open"]), stop["level"], self._slippage)
        amount = await self._fillable(
            stop["pair"], stop["amount"], from_ms(int(candle["timestamp"]))
        )
        intent = OrderIntent(coid, stop["run_id"], stop["pair"], Side.SELL, amount, price, now)
        fills = (self._fill(intent, amount, price, now),) if amount > 0 else ()
        del self._stops[coid]
        self._reports[coid] = ExecutionReport(
            coid,
            f"paper-{coid}",
            OrderStatus.FILLED if amount >= stop["amount"] else OrderStatus.EXPIRED,
            amount,
            price if fills else None,
            fills,
        )
        await self._save(now)

    async def _cancel_stop(self, coid: str) -> None:
        del self._stops[coid]
        self._reports[coid] = ExecutionReport(
            coid, f"paper-{coid}", OrderStatus.CANCELED, 0.0, None, ()
        )
        await self._save(self._clock.now())

    async def cancel_order(self, order: Order) -> ExecutionReport | None:
        """A resting order is matched first (it may have filled), then cancelled."""
        coid = order.client_order_id
        if coid in self._resting:
            await self._match(coid)
        if coid in self._resting:
            await self._cancel(coid)
        if coid in self._stops:
            await self._match_stop(coid)
        if coid in self._stops:
            await self._cancel_stop(coid)
        return self._reports.get(coid)

    async def create_market_order(self, intent: OrderIntent) -> ExecutionReport:
        if intent.client_order_id in self._reports:  # a retry of an order already filled
            return self._reports[intent.client_order_id]
        now = self._clock.now()
        price = await self._feed.price(intent.pair, now)  # a triggered exit sells at market too
        if intent.side is Side.BUY:
            fill_price = bought_at(price, self._slippage)
            wanted = (
                intent.amount
                if intent.quote_amount is None  # else spend it, fee included
                else coins_for(intent.quote_amount, fill_price, self._fee_rate, False)
            )
        else:
            fill_price = sold_at(price, self._slippage)
            wanted = intent.amount
        amount = await self._fillable(intent.pair, wanted, now)
        at = await self._feed.fill_time(intent.pair, now)  # later inside the pair's data gap
        fills = (self._fill(intent, amount, fill_price, at),) if amount > 0 else ()
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
        fee = fee_of(amount, price, self._fee_rate)
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
        """Nothing in a candle with no volume (an exchange's placeholder around an outage:
        nobody traded, whatever the cap), else up to ``volume_share`` of its volume."""
        volume = await self._feed.volume(pair, now)
        return amount if volume is None else capped(amount, volume, self._volume_share)

    def _debit(self, asset: str, needed: float, intent: OrderIntent) -> None:
        available = self._balances.get(asset, 0.0)
        if needed > available * (1 + _DUST):
            raise InsufficientFunds(
                f"{intent.pair} {intent.side.value} {intent.amount:.8g}: needs {needed:.8g} "
                f"{asset}, the paper account has {available:.8g}"
            )

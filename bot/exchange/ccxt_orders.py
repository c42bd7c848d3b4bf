"""Orders placed on a venue through ccxt: at most once under our client id, and cancelled."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import ccxt

from bot.core.domain import ExecutionReport, Order, OrderIntent, Side
from bot.core.errors import ExchangeRejected, ExchangeUnavailable, InsufficientFunds, NotFound
from bot.exchange.ccxt_errors import classify, refused_unprocessed
from bot.exchange.ccxt_lookup import CcxtOrderLookup
from bot.exchange.ccxt_replies import FINAL

log = logging.getLogger(__name__)


class CcxtOrders(CcxtOrderLookup):
    """Market, limit and stop orders placed, sized to the market and the account's fee."""

    @property
    def supports_stop_orders(self) -> bool:
        return self.profile.stop_orders

    async def create_market_order(self, intent: OrderIntent) -> ExecutionReport:
        return await self._place_sized(intent)

    async def create_limit_order(self, intent: OrderIntent) -> ExecutionReport:
        """A limit order resting at ``intent.limit_price``, placed at most once."""
        return await self._place_sized(intent)

    async def _place_sized(self, intent: OrderIntent) -> ExecutionReport:
        """Place ``intent``; a buy is sized with the account's fee read within the day (a pair
        never read, started later, is read now), and one refused for insufficient funds is sent
        once more if the fee read again is higher (the tier fell: the venue adds the fee on
        top). A refused order was never placed, so its id is free to send again."""
        if intent.side is not Side.BUY:
            return await self._place(intent)
        if self.account_fees.due(intent.pair):
            await self.load_account_fees([intent.pair])
        try:
            return await self._place(intent)
        except InsufficientFunds:
            before = self.taker_fee(intent.pair)
            if not self.account_fees.in_use:
                raise
            await self.load_account_fees([intent.pair])
            if self.taker_fee(intent.pair) <= before:
                raise
            log.warning(
                "%s %s: refused for insufficient funds at a %.4f%% fee; the account's "
                "fee is now %.4f%%: sending again",
                self.name,
                intent.pair,
                before * 100,
                self.taker_fee(intent.pair) * 100,
            )
            return await self._place(intent)

    async def place_stop(self, intent: OrderIntent) -> ExecutionReport:
        """A stop-loss sell resting on the exchange: market once the price reaches
        ``intent.stop_price``."""
        if not self.supports_stop_orders:
            raise ExchangeRejected(f"{self.name}: stop orders are not supported here")
        self._stops.add(intent.client_order_id)
        return await self._place(intent)

    async def cancel_order(self, order: Order) -> ExecutionReport | None:
        """Cancel a resting order; returns what became of it (it may have filled first)."""
        exchange_id = order.exchange_order_id
        stop = order.client_order_id in self._stops and bool(self.profile.stop_cancel_params)
        if exchange_id is None:  # placed with an unknown outcome: its id is learnt first
            found = await self._find(order.pair, order.client_order_id, since=order.created_at)
            if found is None:
                return None
            exchange_id, stop = found[0]["id"], found[1]
        # Already final, or the cancel refused (Coinbase answers success: false for an order
        # that filled first, which ccxt raises as BadRequest): the lookup says how it ended.
        with contextlib.suppress(NotFound, ExchangeRejected):
            try:
                await self._call(
                    self._client.cancel_order,
                    exchange_id,
                    order.pair,
                    dict(self.profile.stop_cancel_params) if stop else {},
                )
            except NotFound:
                if stop or not self.profile.stop_cancel_params:
                    raise
                # A trigger/algo order: a plain cancel does not see it (OKX, Bybit).
                await self._call(
                    self._client.cancel_order,
                    exchange_id,
                    order.pair,
                    dict(self.profile.stop_cancel_params),
                )
        return await self.lookup(order)

    async def _place(self, intent: OrderIntent) -> ExecutionReport:
        """Place ``intent`` under its client order id, at most once.

        When the outcome is unknown (a timeout, a 5xx, a dropped connection) the order is looked
        up by its client order id; not found, it is not sent again (ExchangeUnavailable: the
        journal keeps it NEW for a later look-up). Only a request the venue refused unprocessed
        (rate limit, clock skew) is sent again; an exchange refusal is never retried. A report
        that is not final yet is fetched again to verify it.
        """
        self._check_order(intent)
        self._wire(intent.client_order_id)
        stop = intent.stop_price is not None
        order = None
        for attempt in range(1, self._attempts + 1):
            try:
                order = await self._send(intent)
                break
            except ccxt.BaseError as error:
                translated = classify(error, self.profile, self._client)
                if not isinstance(translated, ExchangeUnavailable):
                    raise translated from error
                log.warning(
                    "order %s: outcome unknown (%s); looking it up",
                    intent.client_order_id,
                    translated,
                )
                if translated.retry_after:  # rate-limited: no request at all before it is over
                    await self._pause(translated.retry_after)
                await self._resync_clock(translated)
                order = await self.find_order(
                    intent.pair, intent.client_order_id, stop=stop, since=intent.created_at
                )
                if order is not None:
                    break
                last = attempt == self._attempts or self._giving_up.is_set()
                if last or not refused_unprocessed(error, translated):
                    # Not found may only mean not processed yet, and Binance and OKX take a
                    # filled order's id again: a resend could buy twice. The order stays NEW,
                    # looked up again on the next tick (Executor.settle_unknown).
                    raise translated from error
                await self._pause(self._backoff * 2 ** (attempt - 1))
        assert order is not None  # the loop either found an order or raised
        if not self.profile.reply_complete and order.get("status") not in FINAL:
            # The reply says only that the order was taken (OKX, Bybit, Kraken, Coinbase): what
            # became of it is read back under our id. A read-back that fails leaves the outcome
            # unknown (the report says NEW, settled on a later tick), never a refusal: the
            # order was placed.
            try:
                found = await self.find_order(
                    intent.pair, intent.client_order_id, stop=stop, since=intent.created_at
                )
            except (ExchangeUnavailable, ExchangeRejected, NotFound) as error:
                log.warning(
                    "order %s placed; reading it back failed (%s): settled later",
                    intent.client_order_id,
                    error,
                )
                found = None
            order = found or {**order, "status": None}
        elif order.get("status") == "open":
            fetched: dict[str, Any] = await self._call(
                self._client.fetch_order, order["id"], intent.pair
            )
            order = fetched
        return await self._report(intent, order)

    async def _send(self, intent: OrderIntent) -> dict[str, Any]:
        stop = intent.stop_price is not None
        params: dict[str, Any] = {
            **self.profile.create_params,
            **self.profile.id_params(intent.client_order_id, stop=stop),
        }
        if intent.limit_price is not None:  # sized so that it spends at most quote_amount
            price = float(self._client.price_to_precision(intent.pair, intent.limit_price))
            budget = intent.quote_amount or intent.amount * price
            wanted = budget / (price * (1 + self.taker_fee(intent.pair)))
            amount = float(self._client.amount_to_precision(intent.pair, wanted))
            placed: dict[str, Any] = await self._client.create_order(
                intent.pair, "limit", intent.side.value, amount, price, params
            )
            return placed
        if intent.stop_price is not None:
            params["stopLossPrice"] = self._client.price_to_precision(
                intent.pair, intent.stop_price
            )
        if (
            intent.side is Side.BUY
            and intent.quote_amount is not None
            and self.profile.quote_sized_buys
            and self._client.has.get("createMarketBuyOrderWithCost")
        ):
            placed = await self._client.create_market_buy_order_with_cost(
                intent.pair, intent.quote_amount, params
            )
            return placed
        wanted = intent.amount
        if intent.side is Side.BUY and intent.quote_amount is not None:
            # Sized in coins here: the venue charges the fee on top (Kraken's fciq), which
            # stays inside the budget as a limit buy's does.
            fee = 1 + self.taker_fee(intent.pair)
            wanted = intent.quote_amount / (intent.reference_price * fee)
        amount = float(self._client.amount_to_precision(intent.pair, wanted))
        placed = await self._client.create_order(
            intent.pair, "market", intent.side.value, amount, None, params
        )
        return placed

    def _check_order(self, intent: OrderIntent) -> None:
        """Refuse, before sending, what the market's precision and limits would refuse, and an
        id the venue would refuse (or one from another venue's format)."""
        self.check_pair(intent.pair)
        self.profile.wire_id(intent.client_order_id)
        notional = intent.quote_amount or intent.amount * intent.reference_price
        why = self._under_minimum(
            intent.pair, notional, None if intent.quote_amount else intent.amount
        )
        if why:
            raise ExchangeRejected(why)

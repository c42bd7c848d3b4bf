"""Orders found again on a venue: by our client order id, by the venue's id, open ones.

Each venue finds an order by a client id its own way (its profile's ``lookup``): a direct
read, or a SCAN of its order lists around the order's journal time.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.core.domain import ExecutionReport, OpenOrder, Order, OrderIntent, to_ms
from bot.core.errors import ExchangeUnavailable, NotFound, OrderOutcomeUnknown, UserInputError
from bot.exchange.ccxt_account import CcxtAccount
from bot.exchange.ccxt_replies import order_report, trade_fees, trade_ids
from bot.exchange.venues import Lookup, carries

# A SCAN reads the order lists from this long before the journal's created_at (put on the
# venue's clock by the offset measured at the lookup: the host's may be hours off) to this
# long after it (an order is sent right after its journal entry, retries and pauses
# included), so the pages it reads never grow with time; it gives up, leaving the outcome
# unknown, after this many pages.
_SCAN_MARGIN_MS = 15 * 60_000
_SCAN_SPAN_MS = 60 * 60_000
_SCAN_PAGES = 50


class CcxtOrderLookup(CcxtAccount):
    """Reads what became of an order, and maps the client ids a venue lists back to ours."""

    async def find_order(
        self,
        pair: str,
        client_order_id: str,
        *,
        stop: bool = False,
        since: datetime | None = None,
    ) -> dict[str, Any] | None:
        """The order placed under ``client_order_id`` with its trades, or None if the exchange
        never got it. An order lookup carries no fills, so they are fetched by order id.
        ``stop``: it is a stop-loss (a trigger/algo order is looked for first). ``since``: when
        it was journaled (a SCAN reads the venue's lists from shortly before)."""
        found = await self._find(pair, client_order_id, stop=stop, since=since)
        if found is None:
            return None
        return await self._with_trades(pair, *found)

    async def _with_trades(self, pair: str, order: dict[str, Any], stop: bool) -> dict[str, Any]:
        """``order`` with its trades, fetched when the order read did not carry them (or named
        them only, as Kraken's order reads do)."""
        trades = order.get("trades") or []
        if trades and not trade_ids(order):
            return order
        if not trades and not ((order.get("filled") or 0) > 0 or order.get("status") == "closed"):
            return order
        return {**order, "trades": await self._trades(pair, order, stop)}

    async def _find(
        self,
        pair: str,
        client_order_id: str,
        *,
        stop: bool = False,
        since: datetime | None = None,
    ) -> tuple[dict[str, Any], bool] | None:
        """The order placed under ``client_order_id`` and whether it is a trigger/algo stop.
        A SCAN reads every page from shortly before ``since``; when several orders carry the
        id (an older, closed one may: Kraken keeps cl_ord_id unique among open orders only),
        the newest wins."""
        profile = self.profile
        kinds = [stop, not stop] if profile.stop_lookup_params else [False]
        if profile.lookup is Lookup.SCAN:
            start = end = None
            if since is not None:
                journaled = to_ms(since) + await self._venue_offset_ms()
                start, end = journaled - _SCAN_MARGIN_MS, journaled + _SCAN_SPAN_MS
            wires = self._wires(client_order_id)
            for algo in kinds:
                for wire in wires:
                    params = {**profile.scan_params}
                    params.update({profile.scan_param: wire} if profile.scan_param else {})
                    params.update(profile.stop_lookup_params if algo else {})
                    for method in self._order_lists():
                        listed = await self._scan(method, pair, start, end, params)
                        found = _newest(listed, wire, start)
                        if found is not None:
                            return found, algo
            return None
        for algo in kinds:
            params = profile.lookup_by_id(client_order_id, stop=algo)
            with contextlib.suppress(NotFound):
                return await self._call(self._client.fetch_order, None, pair, params), algo
        return None

    async def _venue_offset_ms(self) -> int:
        """The venue's clock less ours, measured now (one call). The journal dates an order on
        our clock, the venue on its own: a SCAN's window is put on the venue's. A failed
        measure raises ExchangeUnavailable: the order stays unknown, looked up again later."""
        venue = await self._call(self._client.fetch_time)
        if venue is None:
            raise ExchangeUnavailable(f"{self.name}: its clock could not be read")
        return int(venue) - int(self._client.milliseconds())

    async def _scan(
        self,
        method: Callable[..., Awaitable[list[dict[str, Any]]]],
        pair: str,
        start: int | None,
        end: int | None,
        params: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        """Every order ``method`` lists from ``start`` to ``end`` (venue milliseconds; open
        orders are not bounded by ``end``), page after page (Coinbase names the next page by a
        cursor, Kraken's closed orders come 50 an offset). A list that cannot be read to its
        end raises: a miss on a part of it must not read as "never sent"."""
        profile = self.profile
        if end is not None and profile.scan_end and method.__name__ != "fetch_open_orders":
            params = {**params, profile.scan_end: end // profile.scan_end_unit_ms}
        listed, asked = [], dict(params)
        paged = profile.scan_page and method.__name__ != "fetch_open_orders"
        for _ in range(_SCAN_PAGES):
            page = await self._call(method, pair, start, None, asked)
            listed.extend(page)
            cursor = _cursor(page, profile.scan_cursor) if profile.scan_cursor else None
            if cursor:
                asked = {**params, profile.scan_cursor: cursor}
            elif paged and len(page) >= profile.scan_page:
                asked = {**params, profile.scan_offset: len(listed)}
            else:
                return listed
        raise OrderOutcomeUnknown(
            f"{self.name} lists more than {_SCAN_PAGES} pages of orders around the order's "
            "journal time, more than a lookup reads: it cannot be found by reading the venue"
        )

    def _order_lists(self) -> list[Callable[..., Awaitable[list[dict[str, Any]]]]]:
        """The order reads a SCAN goes through: open, then closed and cancelled (a cancelled
        order may have filled in part), as far as ccxt offers them for this venue."""
        has, client = self._client.has, self._client
        lists = [client.fetch_open_orders] if has.get("fetchOpenOrders") else []
        if has.get("fetchCanceledAndClosedOrders"):
            return [*lists, client.fetch_canceled_and_closed_orders]
        if has.get("fetchClosedOrders"):
            lists.append(client.fetch_closed_orders)
        if has.get("fetchCanceledOrders"):
            lists.append(client.fetch_canceled_orders)
        return lists

    def lookup_problem(self) -> str | None:
        """Why orders could not be found again on this venue, if they could not: trading
        there would risk booking a filled order as never sent."""
        if self.profile.lookup is Lookup.SCAN:
            lists = self._order_lists()
            closed = [m for m in lists if m.__name__ != "fetch_open_orders"]
            if not closed:
                return (
                    f"{self.name}: ccxt reads no closed orders here, so an order whose "
                    "answer is lost could not be found again; not trading on it"
                )
        return None

    def _our_id(self, reported: str) -> str:
        """Our id for the client id a venue lists, when it is one this process sent: carried as
        a UUID or a number, or behind a tag of the venue's (see ``carries``; ours has no "-")."""
        ours = self._ours.get(reported)
        if ours is None and "-" in reported:
            ours = self._ours.get(reported.rsplit("-", 1)[1])
        return ours or reported

    def _wires(self, ours: str) -> list[str]:
        """The forms a SCAN looks for our id in, the current one first (an order an earlier
        version placed carries an older one), each remembered like ``_wire``'s."""
        wires = self.profile.wire_ids(ours)
        for wire in wires:
            self._ours.setdefault(wire, ours)
        return wires

    def _wire(self, ours: str) -> str:
        """Our id as the venue carries it, remembered so that the venue's lists map back."""
        wire = self.profile.wire_id(ours)
        self._ours[wire] = ours
        return wire

    async def _trades(self, pair: str, order: Mapping[str, Any], stop: bool) -> list[Any]:
        """The trades of ``order``; a triggered stop's trades belong to the order it placed
        (OKX's algo order names it in ``ordId``)."""
        order_id = order["id"]
        if stop:
            order_id = (order.get("info") or {}).get("ordId") or order_id
        named = trade_ids(order)
        if named:  # the order read named its trades only: they are read by their ids
            return await self._call(
                self._client.fetch_order_trades, order_id, pair, None, None, {"trades": named}
            )
        if self._client.has.get("fetchOrderTrades"):
            return await self._call(self._client.fetch_order_trades, order_id, pair)
        return await self._call(
            self._client.fetch_my_trades, pair, None, None, {self.profile.trades_param: order_id}
        )

    async def lookup(self, order: Order) -> ExecutionReport | None:
        """What became of a journaled order. A stop placed by this process is looked for among
        trigger/algo orders first (after a restart both kinds are tried, plain first)."""
        stop = order.client_order_id in self._stops
        found = await self._by_exchange_id(order, stop)
        if found is None:
            found = await self.find_order(
                order.pair, order.client_order_id, stop=stop, since=order.created_at
            )
        if found is None:
            return None
        return await self._report(order.as_intent(), found)

    async def read_by_venue_id(self, order: Order, venue_order_id: str) -> ExecutionReport:
        """``order`` read by the id the venue's website shows (one request, no list paging):
        refused unless the venue's order carries ``order``'s client order id (another's order,
        or a typo, is never booked as ours)."""
        stop = order.client_order_id in self._stops
        by_id = dataclasses.replace(order, exchange_order_id=venue_order_id)
        try:
            with self.one_attempt():  # an admin waits; a typo is no outage to retry
                found = await self._by_exchange_id(by_id, stop)
        except ExchangeUnavailable as error:  # an unknown id too (Coinbase: 404 NOT_FOUND)
            raise UserInputError(
                f"{self.name} could not read order {venue_order_id!r} ({error}); nothing changed"
            ) from None
        if found is None:
            raise UserInputError(f"{self.name} has no order {venue_order_id!r}; nothing changed")
        theirs = str(found.get("clientOrderId") or "")
        if theirs not in self.profile.wire_ids(order.client_order_id) + [order.client_order_id]:
            raise UserInputError(
                f"{self.name}'s order {venue_order_id} is not "
                f"{order.client_order_id} (its client order id is "
                f"{theirs or 'none'}); nothing changed"
            )
        return await self._report(order.as_intent(), found)

    async def _by_exchange_id(self, order: Order, stop: bool) -> dict[str, Any] | None:
        """A journaled order read by the exchange's own id, when the journal has it: found
        however old it is, whatever the venue's lookup by client id can reach."""
        if not order.exchange_order_id or not self._client.has.get("fetchOrder"):
            return None
        self._wire(order.client_order_id)  # its lists map back to ours
        profile = self.profile
        kinds = [stop, not stop] if profile.stop_lookup_params else [False]
        for algo in kinds:
            params = {**profile.lookup_params, **(profile.stop_lookup_params if algo else {})}
            with contextlib.suppress(NotFound):
                found = await self._call(
                    self._client.fetch_order, order.exchange_order_id, order.pair, params
                )
                return await self._with_trades(order.pair, found, algo)
        return None

    async def _report(self, intent: OrderIntent, order: Mapping[str, Any]) -> ExecutionReport:
        market = self._client.markets[intent.pair]
        return order_report(intent, order, market, await self._fee_prices(order, market))

    async def _fee_prices(
        self, order: Mapping[str, Any], market: Mapping[str, Any]
    ) -> dict[str, float]:
        """The quote price, now, of each third currency a trade's fee was paid in (BNB), so the
        fee is booked at its real value; a currency without a market to the quote is left out
        (its fee is then estimated from the trade: ``ccxt_replies``)."""
        trades = order.get("trades") or []
        charged: set[str] = {
            fee["currency"] for trade in trades for fee in trade_fees(trade) if fee.get("currency")
        }
        third = charged - {market.get("base"), market.get("quote")}
        prices = {}
        for currency in sorted(third):
            pair = f"{currency}/{market.get('quote')}"
            if pair in (self._client.markets or {}):
                prices[currency] = await self.fetch_price(pair)
        return prices

    async def _open_stops(self, pair: str) -> list[dict[str, Any]]:
        """Open trigger/algo stops, which a plain open-order read does not list."""
        if not self.profile.stop_list_params:
            return []
        params = dict(self.profile.stop_list_params)
        return await self._call(self._client.fetch_open_orders, pair, None, None, params)

    async def open_orders(self, pairs: Sequence[str]) -> list[OpenOrder]:
        """Asked pair by pair: an unfiltered request costs Binance's weight for every symbol."""
        found = []
        for pair in pairs:
            plain = await self._call(self._client.fetch_open_orders, pair)
            stops = await self._open_stops(pair)
            for order in [*plain, *stops]:
                price = (
                    order.get("price")
                    or order.get("stopPrice")
                    or order.get("triggerPrice")
                    or order.get("stopLossPrice")
                )
                client_id = order.get("clientOrderId") or ""
                if order in stops and self.profile.stop_create_param:  # the algo's own id
                    client_id = (order.get("info") or {}).get(self.profile.stop_create_param, "")
                client_id = self._our_id(client_id)
                found.append(
                    OpenOrder(
                        pair,
                        client_id,
                        order["side"],
                        float(order["amount"]),
                        float(price) if price else None,
                    )
                )
        return found


def _cursor(page: list[dict[str, Any]], name: str) -> str | None:
    """The next page's cursor a list read left in one of its orders' ``info`` (ccxt's coinbase
    puts it in the first order it was answered; none on the last page)."""
    return next((o["info"][name] for o in page if (o.get("info") or {}).get(name)), None)


def _newest(listed: list[dict[str, Any]], wire: str, start: int | None) -> dict[str, Any] | None:
    """The newest order in ``listed`` that carries ``wire`` and is not older than ``start``."""
    matches = [
        o
        for o in listed
        if carries(o.get("clientOrderId") or "", wire)
        and (start is None or o.get("timestamp") is None or o["timestamp"] >= start)
    ]
    return max(matches, key=lambda o: o.get("timestamp") or 0, default=None)

"""A local fake of Bybit's v5 spot REST API (unified trading account), for ccxt's real ``bybit``
class pointed at it.

It shares the account and the matching (balances, orders, several trades per order, stops firing)
with ``FakeBinance`` and answers in Bybit's own shapes, read from ccxt's ``bybit.py`` and Bybit's
v5 API docs, awkward parts included:

* every answer is ``{"retCode", "retMsg", "result", "retExtInfo", "time"}``, a refusal included
  (HTTP 200 with a non-zero ``retCode``: 170131 insufficient balance, 170213 unknown order,
  170141 a reused ``orderLinkId``, 10001 bad parameters);
* ``/v5/order/create`` and ``/v5/order/cancel`` answer ``orderId`` and ``orderLinkId`` only: no
  status, no trades;
* ``orderLinkId`` is at most 36 letters, digits, ``-`` and ``_``; anything else is refused (10001),
  and an id already used is refused (170141), whatever became of its order;
* a market buy is sized in the quote coin unless ``marketUnit=baseCoin``;
* spot fees are taken in the coin received (a buy pays in the base coin, a sell in the quote
  coin): ``execFee``/``feeCurrency`` of ``/v5/execution/list`` (Bybit has no third fee coin, so
  ``fee_asset`` can only be "received");
* a stop-loss is a TP/SL order (``orderFilter=tpslOrder``; its coins are held from placement):
  ``/v5/order/realtime`` lists it only when asked with that filter (a plain read lists plain
  orders only), ``/v5/order/cancel`` finds it only with that filter (pairpilot cancels one order
  at a time: no cancel-all is served); it rests ``Untriggered`` and, once the price crosses its
  trigger, sells at market under the same ``orderId``; a cancelled one reads ``Deactivated``;
* ``/v5/order/realtime`` lists open orders only, but finds a closed one by ``orderId`` or
  ``orderLinkId``; ``/v5/order/history`` lists closed ones (every kind unless filtered);
* a market order only part filled ends ``PartiallyFilledCanceled`` (ccxt reads it as closed);
* the wallet balance answers ``walletBalance`` and ``locked`` per coin with ``availableToWithdraw``
  empty (deprecated for unified accounts since January 2025: ccxt derives free from the rest);
* the key is a trading key: ``/v5/user/query-api`` and ``/v5/account/info`` (what ccxt asks to
  learn the account type unless told) answer 10005, permission denied;
* private calls are signed: hex HMAC-SHA256 over ``timestamp + key + recvWindow + query|body`` in
  ``X-BAPI-SIGN``, refused (10003 unknown key, 10004 bad signature) unless valid, and refused
  (10002) unless ``server time - recvWindow <= timestamp < server time + 1000``. The server
  clock for that rule (and ``/v5/market/time``) is the real clock shifted by ``skew_ms``; the
  market's simulated clock (``now_ms``) dates orders and trades.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.doubles.fake_exchange import FakeBinance, Order
from tests.doubles.loopback import serve_app

_LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
_ORDER_BASE = 1_900_000_000_000_000_000  # Bybit's order ids are 19-digit numbers
_TRADE_BASE = 2_100_000_000_000_000_000  # and so are its execution ids
_INTERVALS = {"1": "1m", "5": "5m", "15": "15m", "60": "1h", "240": "4h", "D": "1d"}
_STOP_FILTERS = ("tpslOrder", "StopOrder")
LOT_STEP = 0.00001
MIN_ORDER_VALUE = 5.0


@dataclass
class FakeBybit(FakeBinance):
    fee_asset: str = "received"
    trade_ids: int = _TRADE_BASE
    skew_ms: int = 0  # the server clock's offset from the real clock (clock-skew tests)
    order_paths: tuple[str, ...] = ("/v5/order/create",)
    # Per order id: its orderFilter ("Order", "tpslOrder", "StopOrder") and its marketUnit.
    filters: dict[int, str] = field(default_factory=dict)
    units: dict[int, str] = field(default_factory=dict)
    link_ids_used: set[str] = field(default_factory=set)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "fee_asset" and value != "received":
            raise ValueError(f"Bybit takes spot fees in the coin received only, not {value!r}")
        super().__setattr__(name, value)

    def server_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_inject])
        get, post = app.router.add_get, app.router.add_post
        post("/_test/advance", self._advance)  # the crash soak's child steps the market
        get("/v5/market/time", self._bybit_time)
        get("/v5/market/instruments-info", self._instruments)
        get("/v5/market/kline", self._kline)
        get("/v5/market/tickers", self._tickers)
        for path, handler in (
            ("/v5/asset/coin/query-info", self._coins),
            ("/v5/account/wallet-balance", self._wallet),
            ("/v5/order/realtime", self._realtime),
            ("/v5/order/history", self._history),
            ("/v5/execution/list", self._executions),
            ("/v5/user/query-api", self._key_info),
            ("/v5/account/info", self._key_info),
            ("/v5/account/fee-rate", self._fee_rate),
        ):
            get(path, self._bybit_signed(handler))
        for path, handler in (
            ("/v5/order/create", self._create),
            ("/v5/order/cancel", self._cancel_one),
        ):
            post(path, self._bybit_signed(handler))
        return app

    async def _fee_rate(self, params: dict[str, str]) -> web.Response:
        """GET /v5/account/fee-rate: the account's own rates for ``symbol`` of ``category``
        (spot here), as strings."""
        if params.get("category") != "spot":
            return self._refuse(10001, "category only support spot")
        rate = f"{self.fee_rate:.8f}".rstrip("0")
        symbols = [params["symbol"]] if params.get("symbol") else sorted(self.prices)
        return self._reply(
            {
                "list": [
                    {"symbol": symbol, "baseCoin": "", "takerFeeRate": rate, "makerFeeRate": rate}
                    for symbol in symbols
                ]
            }
        )

    def _reply(self, result: Any, code: int = 0, message: str = "OK") -> web.Response:
        return web.json_response(
            {
                "retCode": code,
                "retMsg": message,
                "result": result,
                "retExtInfo": {},
                "time": self.server_ms(),
            }
        )

    def _refuse(self, code: int, message: str) -> web.Response:
        return self._reply({}, code, message)

    def _bybit_signed(self, handler: Any) -> Any:
        async def checked(request: web.Request) -> web.StreamResponse:
            body = await request.text()
            headers = request.headers
            stamp, window = headers.get("X-BAPI-TIMESTAMP", ""), headers.get("X-BAPI-RECV-WINDOW")
            window = window or "5000"
            signed = body if request.method == "POST" else request.query_string
            payload = f"{stamp}{self.api_key}{window}{signed}"
            expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if headers.get("X-BAPI-API-KEY") != self.api_key:
                return self._refuse(10003, "API key is invalid.")
            if not hmac.compare_digest(headers.get("X-BAPI-SIGN", ""), expected):
                return self._refuse(10004, f"error sign! origin_string[{payload}]")
            now = self.server_ms()
            if not (stamp.isdigit() and window.isdigit()) or not (
                now - int(window) <= int(stamp) < now + 1000
            ):
                return self._refuse(
                    10002,
                    "invalid request, please check your server timestamp "
                    f"or recv_window param. req_timestamp[{stamp}],server_"
                    f"timestamp[{now}],recv_window[{window}]",
                )
            params: dict[str, Any] = json.loads(body) if body else dict(request.query)
            if params.get("category", "spot") != "spot":
                return self._reply({"category": params["category"], "list": []})
            return await handler(params)

        return checked

    async def _bybit_time(self, request: web.Request) -> web.Response:
        now = self.server_ms()
        return self._reply({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)})

    def _symbols(self) -> list[str]:
        return sorted(
            {symbol for symbol, _ in self.candles} | {"BTCUSDT", "ETHUSDT"} | set(self.prices)
        )

    async def _instruments(self, request: web.Request) -> web.Response:
        category = request.query.get("category", "")
        listed = [_instrument(symbol) for symbol in self._symbols()] if category == "spot" else []
        return self._reply({"category": category, "list": listed, "nextPageCursor": ""})

    async def _key_info(self, params: dict[str, Any]) -> web.Response:
        """The key's own details: Bybit answers them only to a key that may also move funds
        ("Account Transfer", "Subaccount Transfer" or "Withdrawal"); a trading key (the
        fake's, as a careful user makes it) is refused."""
        return self._refuse(10005, "Permission denied, please check your API key permissions.")

    async def _coins(self, params: dict[str, Any]) -> web.Response:
        return self._reply({"rows": []})

    async def _tickers(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        if symbol not in self.prices:
            return self._refuse(10001, "Not supported symbols")
        price = str(self.prices[symbol])
        return self._reply(
            {
                "category": "spot",
                "list": [
                    {
                        "symbol": symbol,
                        "bid1Price": price,
                        "bid1Size": "1",
                        "ask1Price": price,
                        "ask1Size": "1",
                        "lastPrice": price,
                        "prevPrice24h": price,
                        "price24hPcnt": "0",
                        "highPrice24h": price,
                        "lowPrice24h": price,
                        "turnover24h": "0",
                        "volume24h": "0",
                        "usdIndexPrice": price,
                    }
                ],
            }
        )

    async def _kline(self, request: web.Request) -> web.Response:
        """Newest first; from ``start`` (and to ``end``) when given; the forming candle too."""
        query = request.query
        interval = _INTERVALS.get(query.get("interval", ""))
        frame = self.candles.get((query.get("symbol", ""), interval or ""))
        if interval is None or frame is None:
            return self._refuse(
                10001, "Invalid period!" if interval is None else "Not supported symbols"
            )
        stamps = frame["timestamp"]
        end = min(int(query.get("end", self.now_ms)), self.now_ms)
        chosen = frame[(stamps >= int(query.get("start", 0))) & (stamps <= end)]
        limit = min(int(query.get("limit", 200)), 1000)
        chosen = chosen.iloc[:limit] if "start" in query else chosen.iloc[-limit:]
        rows = [
            [str(int(t)), f"{o}", f"{h}", f"{lo}", f"{c}", f"{v}", f"{v * c}"]
            for t, o, h, lo, c, v in chosen.itertuples(index=False, name=None)
        ]
        return self._reply(
            {"category": "spot", "symbol": query.get("symbol"), "list": list(reversed(rows))}
        )

    async def _wallet(self, params: dict[str, Any]) -> web.Response:
        if params.get("accountType") != "UNIFIED":
            return self._refuse(10001, "accountType only support UNIFIED.")
        coins = [
            {
                "coin": asset,
                "walletBalance": f"{free + used:.8f}",
                "locked": f"{used:.8f}",
                "equity": f"{free + used:.8f}",
                "availableToWithdraw": "",
                "availableToBorrow": "",
                "borrowAmount": "0",
                "accruedInterest": "0",
                "totalOrderIM": "0",
                "totalPositionIM": "0",
                "totalPositionMM": "0",
                "unrealisedPnl": "0",
                "cumRealisedPnl": "0",
                "usdValue": "0",
                "bonus": "0",
                "collateralSwitch": True,
                "marginCollateral": True,
                "spotHedgingQty": "0",
            }
            for asset in sorted(set(self.balances) | set(self.locked))
            for free, used in [(self.balances.get(asset, 0.0), self.locked.get(asset, 0.0))]
        ]
        account = {"accountType": "UNIFIED", "coin": coins, "totalEquity": "0"}
        return self._reply({"list": [account]})

    async def _create(self, params: dict[str, Any]) -> web.Response:
        """An order: the answer names it only (``orderId``, ``orderLinkId``)."""
        link = str(params.get("orderLinkId") or f"bybit-{len(self.orders) + 1}")
        if not _LINK_ID.fullmatch(link):
            return self._refuse(10001, "The parameter orderLinkId is invalid.")
        if link in self.link_ids_used:
            return self._refuse(170141, "Duplicate clientOrderId.")
        symbol, order_filter = str(params.get("symbol", "")), params.get("orderFilter", "Order")
        if symbol not in self.prices:
            return self._refuse(170121, "Invalid symbol.")
        side, kind = str(params.get("side", "")).upper(), str(params.get("orderType", ""))
        stop = order_filter in _STOP_FILTERS
        if (
            side not in ("BUY", "SELL")
            or kind not in ("Market", "Limit")
            or (stop and (side != "SELL" or kind != "Market" or "triggerPrice" not in params))
        ):
            return self._refuse(10001, "params error: side, orderType or triggerPrice invalid")
        unit = str(params.get("marketUnit") or ("quoteCoin" if side == "BUY" else "baseCoin"))
        if kind == "Limit":
            unit = "baseCoin"
        qty = float(params.get("qty", 0))
        price = float(params["price"]) if kind == "Limit" else self.prices[symbol]
        amount = qty / price if unit == "quoteCoin" else qty
        refused = _size_refusal(qty, amount * price, unit)
        if refused:
            return self._refuse(*refused)
        engine_kind = "STOP_LOSS" if stop else kind.upper()
        level = float(params["triggerPrice"]) if stop else (price if kind == "Limit" else 0.0)
        order = self.open_order(link, symbol, side, engine_kind, amount, level)
        self.link_ids_used.add(link)
        if order is None:
            return self._refuse(170131, "Insufficient balance.")
        self.filters[order.order_id] = order_filter if stop else "Order"
        self.units[order.order_id] = unit
        return self._reply({"orderId": _order_id(order), "orderLinkId": link})

    def _find(self, params: dict[str, Any]) -> Order | None:
        """The order named by ``orderId`` (first) or ``orderLinkId``."""
        wanted_id, wanted_link = params.get("orderId"), params.get("orderLinkId")
        for order in self.orders.values():
            if (wanted_id and _order_id(order) == str(wanted_id)) or (
                not wanted_id and wanted_link and order.client_id == wanted_link
            ):
                return order
        return None

    def _filter_of(self, order: Order) -> str:
        return self.filters.get(order.order_id, "Order")

    def _listed(self, params: dict[str, Any], *, closed: bool) -> list[Order]:
        """Orders a list read returns, newest first: by id whatever their status, else open
        (``closed``: closed) ones; realtime reads one kind only (plain orders unless a filter
        names another), history every kind unless filtered."""
        wanted = params.get("orderFilter") or (None if closed else "Order")
        if params.get("orderId") or params.get("orderLinkId"):
            found = self._find(params)
            candidates = [found] if found else []
        else:
            candidates = [o for o in self.orders.values() if (o.status != "NEW") == closed]
        listed = [
            o
            for o in reversed(candidates)
            if wanted in (None, self._filter_of(o))
            and params.get("symbol") in (None, o.symbol)
            and params.get("orderStatus") in (None, _status(o, self._filter_of(o)))
        ]
        return listed[: int(params.get("limit", 20))]

    async def _realtime(self, params: dict[str, Any]) -> web.Response:
        closed = str(params.get("openOnly", "0")) == "1"
        listed = self._listed(params, closed=closed)
        return self._reply(
            {
                "category": "spot",
                "nextPageCursor": "",
                "list": [self._order_json(o) for o in listed],
            }
        )

    async def _history(self, params: dict[str, Any]) -> web.Response:
        listed = [o for o in self._listed(params, closed=True) if o.status != "NEW"]
        return self._reply(
            {
                "category": "spot",
                "nextPageCursor": "",
                "list": [self._order_json(o) for o in listed],
            }
        )

    async def _cancel_one(self, params: dict[str, Any]) -> web.Response:
        order = self._find(params)
        wanted = params.get("orderFilter") or "Order"
        if order is None or order.status != "NEW" or self._filter_of(order) != wanted:
            return self._refuse(170213, "Order does not exist.")
        self.cancel(order)
        return self._reply({"orderId": _order_id(order), "orderLinkId": order.client_id})

    async def _executions(self, params: dict[str, Any]) -> web.Response:
        if params.get("orderId") or params.get("orderLinkId"):
            order = self._find(params)
            orders = [order] if order else []
        else:
            orders = [o for o in self.orders.values() if params.get("symbol") in (None, o.symbol)]
        return self._reply(
            {
                "category": "spot",
                "nextPageCursor": "",
                "list": [
                    {
                        "symbol": o.symbol,
                        "orderId": _order_id(o),
                        "orderLinkId": o.client_id,
                        "side": o.side.capitalize(),
                        "orderPrice": f"{o.stop_price}" if o.kind == "LIMIT" else "0",
                        "orderQty": f"{o.quantity:.8f}",
                        "leavesQty": "0",
                        "createType": "CreateByUser",
                        "orderType": "Limit" if o.kind == "LIMIT" else "Market",
                        "stopOrderType": self._stop_type(o),
                        "execFee": fill["commission"],
                        "feeCurrency": fill["commissionAsset"],
                        "execId": str(fill["tradeId"]),
                        "execPrice": fill["price"],
                        "execQty": fill["qty"],
                        "execType": "Trade",
                        "execValue": f"{float(fill['price']) * float(fill['qty']):.8f}",
                        "execTime": str(o.time),
                        "isMaker": False,
                        "feeRate": f"{self.fee_rate}",
                        "tradeIv": "",
                        "markIv": "",
                        "markPrice": "",
                        "indexPrice": "",
                        "underlyingPrice": "",
                        "blockTradeId": "",
                        "closedSize": "",
                        "seq": fill["tradeId"],
                    }
                    for o in reversed(orders)
                    for fill in o.fills
                ],
            }
        )

    def _stop_type(self, order: Order) -> str:
        return {"tpslOrder": "tpslOrder", "StopOrder": "Stop"}.get(self._filter_of(order), "")

    def _order_json(self, order: Order) -> dict[str, Any]:
        fee = sum(float(fill["commission"]) for fill in order.fills)
        fee_asset = order.fills[-1]["commissionAsset"] if order.fills else ""
        average = order.quote / order.executed if order.executed else 0.0
        order_filter = self._filter_of(order)
        unit = self.units.get(order.order_id, "baseCoin")
        stop = order_filter in _STOP_FILTERS
        qty = order.quantity * self.prices[order.symbol] if unit == "quoteCoin" else order.quantity
        limit = order.kind == "LIMIT"
        return {
            "orderId": _order_id(order),
            "orderLinkId": order.client_id,
            "blockTradeId": "",
            "symbol": order.symbol,
            "price": f"{order.stop_price}" if limit else "0",
            "qty": f"{qty:.8f}",
            "side": order.side.capitalize(),
            "isLeverage": "0",
            "positionIdx": 0,
            "orderStatus": _status(order, order_filter),
            "cancelType": "CancelByUser" if order.status == "CANCELED" else "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": f"{average}" if average else "",
            "leavesQty": f"{order.quantity - order.executed:.8f}" if order.status == "NEW" else "0",
            "leavesValue": "0",
            "cumExecQty": f"{order.executed:.8f}",
            "cumExecValue": f"{order.quote:.8f}",
            "cumExecFee": f"{fee:.8f}",
            "cumFeeDetail": {fee_asset: f"{fee:.8f}"} if fee_asset else {},
            "timeInForce": "GTC" if limit else "IOC",
            "orderType": "Limit" if limit else "Market",
            "stopOrderType": self._stop_type(order),
            "orderIv": "",
            "marketUnit": unit,
            "triggerPrice": f"{order.stop_price}" if stop else "0",
            "takeProfit": "0",
            "stopLoss": "0",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 2 if stop else 0,
            "triggerBy": "LastPrice" if stop else "",
            "lastPriceOnCreated": "",
            "reduceOnly": stop,
            "closeOnTrigger": False,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "slLimitPrice": "0",
            "tpLimitPrice": "0",
            "createdTime": str(order.time),
            "updatedTime": str(order.time),
        }


def _order_id(order: Order) -> str:
    return str(_ORDER_BASE + order.order_id)


def _status(order: Order, order_filter: str) -> str:
    """Bybit's orderStatus for the engine's order."""
    if order.status == "NEW":
        if order_filter in _STOP_FILTERS:
            return "Untriggered"
        return "PartiallyFilled" if order.executed else "New"
    if order.status == "FILLED":
        return "Filled"
    if order.executed:  # cancelled or expired after part of it filled
        return "PartiallyFilledCanceled"
    return "Deactivated" if order_filter in _STOP_FILTERS else "Cancelled"


def _size_refusal(qty: float, value: float, unit: str) -> tuple[int, str] | None:
    """Bybit's lot rules for the fake's instruments (see ``_instrument``)."""
    if unit == "baseCoin" and abs(qty / LOT_STEP - round(qty / LOT_STEP)) > 1e-6:
        return 170137, "Order quantity has too many decimals."
    if unit == "baseCoin" and qty < LOT_STEP:
        return 170136, "Order quantity below the lower limit."
    if value < MIN_ORDER_VALUE:
        return 170140, "Order value exceeded lower limit."
    return None


def _instrument(symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "baseCoin": symbol[:-4],
        "quoteCoin": symbol[-4:],
        "innovation": "0",
        "status": "Trading",
        "marginTrading": "utaOnly",
        "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": f"{LOT_STEP}",
            "quotePrecision": "0.00000001",
            "minOrderQty": f"{LOT_STEP}",
            "maxOrderQty": "9000",
            "minOrderAmt": f"{MIN_ORDER_VALUE}",
            "maxOrderAmt": "9000000",
        },
        "priceFilter": {"tickSize": "0.01"},
        "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.05"},
    }


def limit_spent_headers(wait: int, skew_ms: int = 0) -> dict[str, str]:
    """The headers of Bybit's 10006 answer: no Retry-After, only when the spent limit resets
    and the server's time now (its clock's milliseconds)."""
    now = int(time.time() * 1000) + skew_ms
    return {
        "X-Bapi-Limit": "20",
        "X-Bapi-Limit-Status": "0",
        "Timenow": str(now),
        "X-Bapi-Limit-Reset-Timestamp": str(now + wait * 1000),
    }


@asynccontextmanager
async def serve_bybit(fake: FakeBybit) -> AsyncIterator[str]:
    """Run the fake on a free loopback port; yields its base URL."""
    async with serve_app(fake.app()) as base:
        yield base


def bybit_config(base: str) -> dict[str, Any]:
    """ccxt settings that send Bybit's REST calls to ``base`` (its ``https://api.{hostname}``
    URLs are replaced whole) and read spot markets only."""
    return {
        "urls": {"api": {name: base for name in ("spot", "futures", "v2", "public", "private")}},
        "options": {"fetchMarkets": {"types": ["spot"]}},
        "has": {"watchOHLCV": False, "watchTicker": False},  # no Bybit websocket in the fake
    }

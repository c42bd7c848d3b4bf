"""A local fake of OKX's v5 spot REST API, for ccxt's real ``okx`` class pointed at it.

It shares the account and the matching (balances, orders, several trades per order, fees in
the coin received or in BNB, stops firing) with ``FakeBinance`` and answers in OKX's own shapes,
read from ccxt's ``okx.py`` and OKX's API docs, awkward parts included:

* every answer is ``{"code", "msg", "data"}``; an order refusal is HTTP 200 with ``code`` "1"
  and the reason in ``data[].sCode`` (51008 insufficient funds, 51016 duplicate id);
* a create reply carries no status and no trades (ordId, clOrdId, sCode only);
* ``clOrdId`` and ``algoClOrdId`` are 1-32 letters and digits, anything else is refused (51000);
* a stop-loss is an algo order (``/trade/order-algo``, ordType ``conditional``) with its own
  id space: ``/trade/orders-pending``, ``/trade/order`` and ``/trade/cancel-order`` never see
  it, ``/trade/orders-algo-pending`` lists it only when asked for ``ordType=conditional``, and
  once it fires, its trades belong to the market order it placed (``ordId`` on the algo order);
* trades carry the fee as a negative number (a charge) in ``fee``/``feeCcy``;
* private calls are signed: base64 HMAC-SHA256 over ``timestamp + METHOD + path[?query] + body``
  in ``OK-ACCESS-SIGN``, with the key and passphrase in headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.doubles.fake_exchange import INTERVALS_MS, FakeBinance, Order
from tests.doubles.loopback import serve_app

_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_CHILD = 500_000  # a fired algo order's market order: its id is the algo id plus this
_BARS = {"1m": "1m", "5m": "5m", "15m": "15m", "1h": "1H", "4h": "4H", "1d": "1Dutc"}
_STATE = {"NEW": "live", "FILLED": "filled", "CANCELED": "canceled", "EXPIRED": "canceled"}
_ALGO_STATE = {"NEW": "live", "FILLED": "effective", "CANCELED": "canceled", "EXPIRED": "effective"}


@dataclass
class FakeOkx(FakeBinance):
    passphrase: str = "test-pass"
    order_paths: tuple[str, ...] = (
        "/api/v5/trade/order",
        "/api/v5/trade/batch-orders",
        "/api/v5/trade/order-algo",
    )

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_inject])
        get, post = app.router.add_get, app.router.add_post
        post("/_test/advance", self._advance)  # the crash soak's child steps the market
        get("/api/v5/public/time", self._okx_time)
        get("/api/v5/public/instruments", self._instruments)
        get("/api/v5/market/ticker", self._okx_ticker)
        get("/api/v5/market/candles", self._candles)
        get("/api/v5/market/history-candles", self._candles)
        for path, handler in (
            ("/api/v5/asset/currencies", self._currencies),
            ("/api/v5/account/balance", self._balance),
            ("/api/v5/trade/order", self._get_order),
            ("/api/v5/trade/orders-pending", self._pending),
            ("/api/v5/trade/orders-history", self._history),
            ("/api/v5/trade/orders-algo-pending", self._algo_pending),
            ("/api/v5/trade/order-algo", self._get_algo),
            ("/api/v5/trade/fills", self._fills),
            ("/api/v5/trade/fills-history", self._fills),
            ("/api/v5/account/trade-fee", self._trade_fee),
        ):
            get(path, self._okx_signed(handler))
        for path, handler in (
            ("/api/v5/trade/order", self._place_one),
            ("/api/v5/trade/batch-orders", self._place_batch),
            ("/api/v5/trade/order-algo", self._place_algo),
            ("/api/v5/trade/cancel-order", self._cancel_one),
            ("/api/v5/trade/cancel-algos", self._cancel_algos),
        ):
            post(path, self._okx_signed(handler))
        return app

    def _okx_signed(self, handler: Any) -> Any:
        async def checked(request: web.Request) -> web.StreamResponse:
            body = await request.text()
            path = request.path + (f"?{request.query_string}" if request.query_string else "")
            stamp = request.headers.get("OK-ACCESS-TIMESTAMP", "")
            digest = hmac.new(
                self.secret.encode(),
                f"{stamp}{request.method}{path}{body}".encode(),
                hashlib.sha256,
            ).digest()
            if request.headers.get("OK-ACCESS-KEY") != self.api_key:
                return _error("50111", "Invalid OK-ACCESS-KEY", 401)
            if request.headers.get("OK-ACCESS-PASSPHRASE") != self.passphrase:
                return _error("50105", "Request header OK-ACCESS-PASSPHRASE incorrect", 401)
            if request.headers.get("OK-ACCESS-SIGN") != base64.b64encode(digest).decode():
                return _error("50113", "Invalid Sign", 401)
            payload: Any = json.loads(body) if body else dict(request.query)
            return await handler(payload)

        return checked

    async def _trade_fee(self, params: dict[str, Any]) -> web.Response:
        """GET /api/v5/account/trade-fee: the account's fee level for ``instType`` (SPOT here),
        its rates negative for a commission (OKX's sign: positive is a rebate), as strings."""
        if params.get("instType") != "SPOT":
            return _error("51000", "Parameter instType error")
        rate = f"-{self.fee_rate:.8f}".rstrip("0")
        return _ok(
            [
                {
                    "category": "1",
                    "delivery": "",
                    "exercise": "",
                    "instType": "SPOT",
                    "level": "Lv1",
                    "maker": rate,
                    "taker": rate,
                    "makerU": "",
                    "takerU": "",
                    "makerUSDC": "",
                    "takerUSDC": "",
                    "ruleType": "normal",
                    "ts": str(self.now_ms),
                }
            ]
        )

    async def _okx_time(self, request: web.Request) -> web.Response:
        return _ok([{"ts": str(self.now_ms)}])

    async def _instruments(self, request: web.Request) -> web.Response:
        if request.query.get("instType") != "SPOT":
            return _ok([])
        symbols = sorted(
            {symbol for symbol, _ in self.candles} | {"BTCUSDT", "ETHUSDT"} | set(self.prices)
        )
        return _ok([_instrument(symbol) for symbol in symbols])

    async def _currencies(self, params: dict[str, Any]) -> web.Response:
        return _ok([])

    async def _okx_ticker(self, request: web.Request) -> web.Response:
        symbol = _symbol(request.query.get("instId", ""))
        if symbol not in self.prices:
            return _error("51001", "Instrument ID does not exist")
        price = str(self.prices[symbol])
        return _ok(
            [
                {
                    "instType": "SPOT",
                    "instId": request.query["instId"],
                    "last": price,
                    "lastSz": "0",
                    "askPx": price,
                    "askSz": "1",
                    "bidPx": price,
                    "bidSz": "1",
                    "open24h": price,
                    "high24h": price,
                    "low24h": price,
                    "volCcy24h": "0",
                    "vol24h": "0",
                    "ts": str(self.now_ms),
                    "sodUtc0": price,
                    "sodUtc8": price,
                }
            ]
        )

    async def _candles(self, request: web.Request) -> web.Response:
        """Newest first; ``after``: older than, ``before``: newer than; the forming candle has
        confirm "0"."""
        query = request.query
        interval = next((k for k, v in _BARS.items() if v == query.get("bar", "1m")), "1m")
        frame = self.candles.get((_symbol(query.get("instId", "")), interval))
        if frame is None:
            return _error("51001", "Instrument ID does not exist")
        step = INTERVALS_MS[interval]
        stamps = frame["timestamp"]
        chosen = frame[
            (stamps <= self.now_ms)
            & (stamps < int(query.get("after", 1 << 62)))
            & (stamps > int(query.get("before", -1)))
        ]
        rows = [
            [
                str(int(t)),
                f"{o}",
                f"{h}",
                f"{lo}",
                f"{c}",
                f"{v}",
                "0",
                "0",
                "1" if int(t) + step <= self.now_ms else "0",
            ]
            for t, o, h, lo, c, v in chosen.itertuples(index=False, name=None)
        ]
        return _ok(list(reversed(rows))[: min(int(query.get("limit", 100)), 300)])

    async def _balance(self, params: dict[str, Any]) -> web.Response:
        details = [
            {
                "ccy": asset,
                "eq": f"{free + used:.8f}",
                "cashBal": f"{free + used:.8f}",
                "availBal": f"{free:.8f}",
                "availEq": f"{free:.8f}",
                "frozenBal": f"{used:.8f}",
                "ordFrozen": f"{used:.8f}",
                "uTime": str(self.now_ms),
            }
            for asset in sorted(set(self.balances) | set(self.locked))
            for free, used in [(self.balances.get(asset, 0.0), self.locked.get(asset, 0.0))]
        ]
        return _ok([{"totalEq": "0", "uTime": str(self.now_ms), "details": details}])

    async def _place_one(self, params: dict[str, Any]) -> web.Response:
        return self._answer_places([self._place(params)])

    async def _place_batch(self, params: list[dict[str, Any]]) -> web.Response:
        return self._answer_places([self._place(entry) for entry in params])

    def _answer_places(self, results: list[dict[str, Any]]) -> web.Response:
        failed = sum(result["sCode"] != "0" for result in results)
        code = "0" if not failed else ("1" if failed == len(results) else "2")
        msg = "" if not failed else "All operations failed"
        return web.json_response(
            {
                "code": code,
                "msg": msg,
                "data": results,
                "inTime": str(self.now_ms * 1000),
                "outTime": str(self.now_ms * 1000),
            }
        )

    def _place(self, params: dict[str, Any]) -> dict[str, Any]:
        """One order of /trade/order or /trade/batch-orders: an answer without any status."""
        client_id = str(params.get("clOrdId", ""))
        refused = self._refuse_id(client_id, "clOrdId")
        if refused:
            return refused
        symbol = _symbol(str(params.get("instId", "")))
        if symbol not in self.prices:
            return _refusal(client_id, "51001", "Instrument ID does not exist")
        side, kind = str(params["side"]).upper(), str(params.get("ordType", "market"))
        size = float(params["sz"])
        if kind == "market" and side == "BUY" and params.get("tgtCcy") == "quote_ccy":
            size /= self.prices[symbol]  # sz is the quote to spend
        level = float(params["px"]) if kind == "limit" else 0.0
        order = self.open_order(client_id, symbol, side, kind.upper(), size, level)
        if order is None:
            return _refusal(client_id, "51008", "Order failed. Insufficient balance.")
        order.quote_target = params.get("tgtCcy", "")  # type: ignore[attr-defined]
        return {
            "clOrdId": client_id,
            "ordId": str(order.order_id),
            "tag": params.get("tag", ""),
            "ts": str(self.now_ms),
            "sCode": "0",
            "sMsg": "Order placed",
        }

    async def _place_algo(self, params: dict[str, Any]) -> web.Response:
        client_id = str(params.get("algoClOrdId", ""))
        refused = self._refuse_id(client_id, "algoClOrdId") or self._refuse_id(
            str(params.get("clOrdId", "x")), "clOrdId"
        )
        if refused or params.get("ordType") != "conditional" or "slTriggerPx" not in params:
            refused = refused or _refusal(client_id, "51000", "Parameter ordType error")
            return self._answer_places([refused])
        symbol = _symbol(str(params.get("instId", "")))
        order = self.open_order(
            client_id,
            symbol,
            str(params["side"]).upper(),
            "STOP_LOSS",
            float(params["sz"]),
            float(params["slTriggerPx"]),
        )
        if order is None:
            return self._answer_places([_refusal(client_id, "51008", "Insufficient balance.")])
        return _ok(
            [
                {
                    "algoId": str(order.order_id),
                    "algoClOrdId": client_id,
                    "clOrdId": params.get("clOrdId", ""),
                    "tag": params.get("tag", ""),
                    "sCode": "0",
                    "sMsg": "",
                }
            ]
        )

    def _refuse_id(self, client_id: str, name: str) -> dict[str, Any] | None:
        if not _ID.fullmatch(client_id):
            return _refusal(client_id, "51000", f"Parameter {name} error")
        if any(order.client_id == client_id for order in self.orders.values()):
            return _refusal(client_id, "51016", "Duplicated clOrdId")
        return None

    def _plain(self, params: dict[str, Any]) -> Order | None:
        """The plain (non-algo) order named by ordId or clOrdId, or a fired stop's market order."""
        wanted_id, wanted_client = str(params.get("ordId", "")), params.get("clOrdId")
        for order in self.orders.values():
            if order.kind == "STOP_LOSS":
                if order.fills and wanted_id == str(order.order_id + _CHILD):
                    return order
                continue
            if wanted_id == str(order.order_id) or (
                wanted_client and order.client_id == wanted_client
            ):
                return order
        return None

    async def _get_order(self, params: dict[str, Any]) -> web.Response:
        order = self._plain(params)
        if order is None or order.kind == "STOP_LOSS":
            return _error("51603", "Order does not exist")
        return _ok([self._order_json(order)])

    async def _pending(self, params: dict[str, Any]) -> web.Response:
        symbol = _symbol(str(params.get("instId", ""))) if params.get("instId") else None
        return _ok(
            [
                self._order_json(o)
                for o in self.orders.values()
                if o.status == "NEW" and o.kind != "STOP_LOSS" and symbol in (None, o.symbol)
            ]
        )

    async def _history(self, params: dict[str, Any]) -> web.Response:
        """GET /api/v5/trade/orders-history: final plain orders, newest first, narrowed by
        ``state`` (filled, or canceled: an expired market order is "canceled" there too)."""
        symbol = _symbol(str(params.get("instId", ""))) if params.get("instId") else None
        final = [
            o
            for o in reversed(self.orders.values())
            if o.status != "NEW"
            and o.kind != "STOP_LOSS"
            and symbol in (None, o.symbol)
            and params.get("state") in (None, _STATE[o.status])
        ]
        return _ok([self._order_json(o) for o in final[: int(params.get("limit", 100))]])

    async def _algo_pending(self, params: dict[str, Any]) -> web.Response:
        if params.get("ordType") != "conditional":  # each algo type is listed on its own
            return _ok([])
        symbol = _symbol(str(params.get("instId", ""))) if params.get("instId") else None
        return _ok(
            [
                self._algo_json(o)
                for o in self.orders.values()
                if o.status == "NEW" and o.kind == "STOP_LOSS" and symbol in (None, o.symbol)
            ]
        )

    def _algo(self, params: dict[str, Any]) -> Order | None:
        for order in self.orders.values():
            if order.kind == "STOP_LOSS" and (
                str(order.order_id) == str(params.get("algoId"))
                or order.client_id == params.get("algoClOrdId")
            ):
                return order
        return None

    async def _get_algo(self, params: dict[str, Any]) -> web.Response:
        order = self._algo(params)
        if order is None:
            return _error("51603", "Order does not exist")
        return _ok([self._algo_json(order)])

    async def _cancel_one(self, params: dict[str, Any]) -> web.Response:
        order = self._plain(params)
        if order is None or order.kind == "STOP_LOSS" or order.status != "NEW":
            return self._answer_places(
                [
                    _refusal(
                        str(params.get("clOrdId", "")),
                        "51400",
                        "Cancellation failed as the order has been filled, canceled or does not "
                        "exist",
                    )
                ]
            )
        self.cancel(order)
        return _ok(
            [{"clOrdId": order.client_id, "ordId": str(order.order_id), "sCode": "0", "sMsg": ""}]
        )

    async def _cancel_algos(self, params: list[dict[str, Any]]) -> web.Response:
        results = []
        for entry in params:
            order = self._algo(entry)
            if order is None or order.status != "NEW":
                gone = "Cancellation failed as the order does not exist"
                results.append({"algoId": entry.get("algoId", ""), "sCode": "51400", "sMsg": gone})
                continue
            self.cancel(order)
            results.append({"algoId": str(order.order_id), "sCode": "0", "sMsg": ""})
        return self._answer_places(results)

    async def _fills(self, params: dict[str, Any]) -> web.Response:
        order = self._plain(params) if params.get("ordId") else None
        orders = [order] if order else []
        if not params.get("ordId"):
            orders = list(self.orders.values())
        return _ok(
            [
                {
                    "instType": "SPOT",
                    "instId": _inst(o.symbol),
                    "tradeId": str(fill["tradeId"]),
                    "ordId": self._order_id(o),
                    "clOrdId": "" if o.kind == "STOP_LOSS" else o.client_id,
                    "billId": str(fill["tradeId"]),
                    "tag": "",
                    "fillPx": fill["price"],
                    "fillSz": fill["qty"],
                    "side": o.side.lower(),
                    "posSide": "net",
                    "execType": "T",
                    "feeCcy": fill["commissionAsset"],
                    "fee": f"{-float(fill['commission']):.10f}",
                    "ts": str(o.time),
                    "fillTime": str(o.time),
                }
                for o in orders
                for fill in o.fills
            ]
        )

    def _order_id(self, order: Order) -> str:
        return str(order.order_id + (_CHILD if order.kind == "STOP_LOSS" else 0))

    def _order_json(self, order: Order) -> dict[str, Any]:
        fee = sum(float(fill["commission"]) for fill in order.fills)
        fee_asset = order.fills[-1]["commissionAsset"] if order.fills else ""
        average = order.quote / order.executed if order.executed else 0.0
        quote_sized = getattr(order, "quote_target", "") == "quote_ccy"
        state = _STATE[order.status]
        if order.status == "NEW" and order.executed:
            state = "partially_filled"
        return {
            "instType": "SPOT",
            "instId": _inst(order.symbol),
            "ccy": "",
            "ordId": self._order_id(order),
            "clOrdId": "" if order.kind == "STOP_LOSS" else order.client_id,
            "tag": "",
            "px": f"{order.stop_price}" if order.kind == "LIMIT" else "",
            "sz": f"{order.quantity * self.prices[order.symbol]:.8f}"
            if quote_sized
            else f"{order.quantity:.8f}",
            "pnl": "0",
            "ordType": "limit" if order.kind == "LIMIT" else "market",
            "side": order.side.lower(),
            "posSide": "net",
            "tdMode": "cash",
            "accFillSz": f"{order.executed:.8f}",
            "fillPx": order.fills[-1]["price"] if order.fills else "",
            "tradeId": str(order.fills[-1]["tradeId"]) if order.fills else "",
            "fillSz": order.fills[-1]["qty"] if order.fills else "0",
            "fillTime": str(order.time),
            "avgPx": f"{average}" if average else "",
            "state": state,
            "lever": "",
            "tpTriggerPx": "",
            "slTriggerPx": "",
            "feeCcy": fee_asset,
            "fee": f"{-fee:.10f}",
            "rebateCcy": "",
            "rebate": "0",
            "tgtCcy": getattr(order, "quote_target", ""),
            "source": "",
            "category": "normal",
            "uTime": str(order.time),
            "cTime": str(order.time),
            "reduceOnly": "false",
            "cancelSource": "",
            "attachAlgoOrds": [],
        }

    def _algo_json(self, order: Order) -> dict[str, Any]:
        fired = bool(order.fills)
        return {
            "instType": "SPOT",
            "instId": _inst(order.symbol),
            "ccy": "",
            "ordId": self._order_id(order) if fired else "",
            "ordIdList": [self._order_id(order)] if fired else [],
            "algoId": str(order.order_id),
            "clOrdId": "",
            "algoClOrdId": order.client_id,
            "sz": f"{order.quantity:.8f}",
            "ordType": "conditional",
            "side": order.side.lower(),
            "posSide": "net",
            "tdMode": "cash",
            "tgtCcy": "",
            "state": _ALGO_STATE[order.status],
            "lever": "",
            "tpTriggerPx": "",
            "tpOrdPx": "",
            "slTriggerPx": f"{order.stop_price}",
            "slOrdPx": "-1",
            "slTriggerPxType": "last",
            "triggerPx": "",
            "ordPx": "",
            "actualSz": f"{order.executed:.8f}" if fired else "",
            "actualPx": order.fills[-1]["price"] if fired else "",
            "actualSide": "sl" if fired else "",
            "triggerTime": str(order.time) if fired else "",
            "cTime": str(order.time),
            "uTime": str(order.time),
        }


def _symbol(inst_id: str) -> str:
    return inst_id.replace("-", "")


def _inst(symbol: str) -> str:
    return f"{symbol[:-4]}-{symbol[-4:]}"


def _instrument(symbol: str) -> dict[str, Any]:
    return {
        "instType": "SPOT",
        "instId": _inst(symbol),
        "uly": "",
        "instFamily": "",
        "baseCcy": symbol[:-4],
        "quoteCcy": symbol[-4:],
        "settleCcy": "",
        "ctVal": "",
        "ctMult": "",
        "ctValCcy": "",
        "optType": "",
        "stk": "",
        "listTime": "1606468572000",
        "expTime": "",
        "lever": "",
        "tickSz": "0.01",
        "lotSz": "0.00001",
        "minSz": "0.00001",
        "ctType": "",
        "alias": "",
        "state": "live",
        "ruleType": "normal",
        "maxLmtSz": "9999999999",
        "maxMktSz": "1000000",
        "maxLmtAmt": "20000000",
        "maxMktAmt": "1000000",
        "maxTwapSz": "9999999999",
        "maxIcebergSz": "9999999999",
        "maxTriggerSz": "9999999999",
        "maxStopSz": "1000000",
    }


def _ok(data: list[Any]) -> web.Response:
    return web.json_response({"code": "0", "msg": "", "data": data})


def _error(code: str, message: str, status: int = 200) -> web.Response:
    return web.json_response({"code": code, "msg": message, "data": []}, status=status)


def _refusal(client_id: str, code: str, message: str) -> dict[str, Any]:
    return {"clOrdId": client_id, "ordId": "", "tag": "", "sCode": code, "sMsg": message}


@asynccontextmanager
async def serve_okx(fake: FakeOkx) -> AsyncIterator[str]:
    """Run the fake on a free loopback port; yields its base URL."""
    async with serve_app(fake.app()) as base:
        yield base


def okx_config(base: str) -> dict[str, Any]:
    """ccxt settings that send OKX's REST calls to ``base`` (its ``https://{hostname}`` URL is
    replaced whole) and read spot markets only."""
    return {
        "urls": {"api": {"rest": base}},
        "options": {"fetchMarkets": {"types": ["spot"]}},
        "has": {"watchOHLCV": False, "watchTicker": False},  # no OKX websocket in the fake
    }

"""A local fake of Coinbase's Advanced Trade REST API (v3 brokerage), for ccxt's real
``coinbase`` class pointed at it.

It shares the account and the matching (balances, orders, several trades per order, limit buys
resting) with ``FakeBinance`` and answers in Coinbase's own shapes, read from ccxt's
``coinbase.py`` and Coinbase's Advanced Trade API reference, awkward parts included:

* ``POST /api/v3/brokerage/orders`` answers ``{"success": true, "success_response":
  {"order_id", "product_id", "side", "client_order_id"}}``: no status, no trades. A refusal is
  HTTP 200 with ``success: false`` and an ``error_response`` (``INSUFFICIENT_FUND`` with
  ``preview_failure_reason`` ``PREVIEW_INSUFFICIENT_FUND``);
* a ``client_order_id`` already used is not an error: the order placed under it is answered
  again and nothing new is placed;
* ``order_configuration`` says the kind: ``market_market_ioc`` (a buy sized in ``quote_size``,
  the quote to spend fees included; a sell in ``base_size``) or ``limit_limit_gtc``. Coinbase
  offers no resting stop-market for spot: a stop is a stop-limit (``stop_limit_stop_limit_gtc``),
  not served here (ccxt refuses a stop-market before sending it);
* order and trade ids are UUIDs; fees are always in the quote currency (``commission``; an
  order's ``total_fees``); a quote-sized buy's fills say ``size_in_quote: true`` and give
  ``size`` in the quote (ccxt divides it by the price);
* ``/orders/historical/batch`` lists orders newest first, filtered by ``order_status``,
  ``product_id`` and ``order_ids``: there is no filter by ``client_order_id``; a market order only
  part filled ends ``CANCELLED``; ``/orders/historical/{order_id}`` reads one order by Coinbase's
  id; ``/orders/historical/fills`` filters by ``order_ids`` and ``product_id`` and, as
  Coinbase's gateway does, ignores a parameter it does not know (``orderId`` included);
* ``/orders/batch_cancel`` answers per order ``success`` and a ``failure_reason``
  (``UNKNOWN_CANCEL_ORDER`` for an order that is not open);
* ``/accounts`` gives ``available_balance`` and ``hold`` per currency (what resting orders
  hold);
* a rate limit is HTTP 429 without Retry-After (the limits are per second), its body the
  gateway's HTML page (``limit_pages``) or the documented ``rate_limit_exceeded`` JSON;
* private calls are signed with a legacy API key: hex HMAC-SHA256 over ``timestamp + METHOD +
  path + body`` in ``CB-ACCESS-SIGN`` (what ccxt sends for a key that is neither a CDP key name
  nor a base64 secret), refused (401) unless valid and stamped within 30 s of the server's
  clock (the real clock shifted by ``skew_ms``); or with a CDP key: an ES256 JWT in
  ``Authorization: Bearer`` (see ``_jwt_refusal``). The market's simulated clock (``now_ms``) dates
  orders, trades and candles.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.doubles.fake_exchange import INTERVALS_MS, FakeBinance, Order
from tests.doubles.loopback import serve_app

_IDS = uuid.UUID("0f6f4c52-2b1e-4c55-9d0c-5a6e0c3b7a10")  # the fake's UUIDs: pure functions
_GRANULARITY = {
    "ONE_MINUTE": "1m",
    "FIVE_MINUTE": "5m",
    "FIFTEEN_MINUTE": "15m",
    "ONE_HOUR": "1h",
    "ONE_DAY": "1d",
}
_STATUS = {"NEW": "OPEN", "FILLED": "FILLED", "CANCELED": "CANCELLED", "EXPIRED": "CANCELLED"}
_STAMP_WINDOW_S = 30
_MAX_CANDLES = 350
BASE_STEP = 0.00001
QUOTE_MIN = 1.0
ORDERS_PATH = "/api/v3/brokerage/orders"


def order_uuid(order_id: int) -> str:
    return str(uuid.uuid5(_IDS, f"order-{order_id}"))


def trade_uuid(trade_id: object) -> str:
    return str(uuid.uuid5(_IDS, f"trade-{trade_id}"))


def coinbase_trade_key(symbol: str, trade_id: object) -> str:
    """The trade id the books give the fake's trade ``trade_id`` of ``symbol``."""
    return f"{_product_id(symbol)}-{trade_uuid(trade_id)}"


@dataclass
class FakeCoinbase(FakeBinance):
    skew_ms: int = 0  # the server clock's offset from the real clock (clock-skew tests)
    order_paths: tuple[str, ...] = (ORDERS_PATH,)
    # Per order id: how it was sized ("quote_size" or "base_size") and its configuration.
    sized: dict[int, str] = field(default_factory=dict)
    configurations: dict[int, dict[str, Any]] = field(default_factory=dict)
    # The next requests the gateway answers with its HTML page and 429, no Retry-After: what
    # Advanced Trade sends when it limits order placements (coinbase-samples/
    # advanced-trade-sdk-go#18), not the JSON body its docs show.
    limit_pages: int = 0

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "fee_asset" and value != "quote":
            raise ValueError(f"Coinbase takes fees in the quote currency only, not {value!r}")
        super().__setattr__(name, value)

    def server_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_inject, self._limit_page])
        get, post = app.router.add_get, app.router.add_post
        post("/_test/advance", self._advance)  # the crash soak's child steps the market
        get("/api/v3/brokerage/time", self._cb_time)
        get("/v2/currencies", self._fiat)
        get("/v2/currencies/crypto", self._crypto)
        get("/v2/exchange-rates", self._rates)
        get("/api/v3/brokerage/market/products", self._products)
        get("/api/v3/brokerage/market/products/{product}/candles", self._candles)
        get("/api/v3/brokerage/market/products/{product}/ticker", self._ticker_v3)
        for path, handler in (
            ("/api/v3/brokerage/transaction_summary", self._summary),
            ("/api/v3/brokerage/accounts", self._accounts),
            ("/api/v3/brokerage/orders/historical/batch", self._batch),
            ("/api/v3/brokerage/orders/historical/fills", self._fills),
            ("/api/v3/brokerage/orders/historical/{order_id}", self._get_order),
        ):
            get(path, self._cb_signed(handler))
        post(ORDERS_PATH, self._cb_signed(self._create))
        post("/api/v3/brokerage/orders/batch_cancel", self._cb_signed(self._batch_cancel))
        return app

    @web.middleware
    async def _limit_page(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.limit_pages <= 0:
            return await handler(request)
        self.limit_pages -= 1
        return web.Response(status=429, content_type="text/html", text=_LIMIT_PAGE)

    def _cb_signed(self, handler: Any) -> Any:
        async def checked(request: web.Request) -> web.StreamResponse:
            body = await request.text()
            if "Authorization" in request.headers:
                refused = self._jwt_refusal(request)
            else:
                refused = self._hmac_refusal(request, body)
            if refused is not None:
                return refused
            params: dict[str, Any] = json.loads(body) if body else {}
            for key in set(request.query):  # a list is sent as repeated keys (order_ids=..)
                values = request.query.getall(key)
                params[key] = values if key in _LISTS else values[-1]
            return await handler(params, request)

        return checked

    def _hmac_refusal(self, request: web.Request, body: str) -> web.Response | None:
        """A legacy key's request: hex HMAC-SHA256 of timestamp, method, path and body."""
        headers = request.headers
        stamp = headers.get("CB-ACCESS-TIMESTAMP", "")
        payload = f"{stamp}{request.method}{request.path}{body}"
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if headers.get("CB-ACCESS-KEY") != self.api_key or not hmac.compare_digest(
            headers.get("CB-ACCESS-SIGN", ""), expected
        ):
            return _error("unauthorized", "invalid api key or signature", 401)
        if not stamp.isdigit() or abs(self.server_ms() / 1000 - int(stamp)) > _STAMP_WINDOW_S:
            return web.json_response(
                {
                    "errors": [
                        {"id": "authentication_error", "message": "request timestamp expired"}
                    ]
                },
                status=401,
            )
        return None

    def _jwt_refusal(self, request: web.Request) -> web.Response | None:
        """A CDP key's request (key name "organizations/.../apiKeys/...", an EC private key as
        secret): a Bearer ES256 JWT whose kid and sub are the key's name and whose uri is this
        request's method, host and path, signed by the key (the fake knows its public half),
        valid from nbf to exp (120 s) give or take the legacy stamp's 30 s."""
        token = request.headers["Authorization"].removeprefix("Bearer ")
        try:
            head, body, signature = token.split(".")
            header, claims = (json.loads(_unbase64(part)) for part in (head, body))
            raw = _unbase64(signature)
            key = serialization.load_pem_private_key(self.secret.encode(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
            key.public_key().verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        except (ValueError, AssertionError, InvalidSignature):
            return _error("unauthorized", "invalid JWT", 401)
        # ccxt strips "https://" only: against the fake's http:// URL the scheme stays in it.
        uri = str(claims.get("uri", "")).replace("http://", "")
        now = self.server_ms() / 1000
        if (
            header.get("alg") != "ES256"
            or header.get("kid") != self.api_key
            or claims.get("sub") != self.api_key
            or uri != f"{request.method} {request.host}{request.path}"
            or not claims.get("nbf", now) - _STAMP_WINDOW_S
            <= now
            <= claims.get("exp", 0) + _STAMP_WINDOW_S
        ):
            return _error("unauthorized", "JWT claims do not match the request", 401)
        return None

    async def _cb_time(self, request: web.Request) -> web.Response:
        now = self.server_ms()
        return web.json_response(
            {"iso": _iso(now), "epochSeconds": str(now // 1000), "epochMillis": str(now)}
        )

    async def _fiat(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "USD", "name": "US Dollar", "min_size": "0.01"}]})

    async def _crypto(self, request: web.Request) -> web.Response:
        coins = sorted({s[:-4] for s in self._symbols()} | {s[-4:] for s in self._symbols()})
        return web.json_response(
            {
                "data": [
                    {
                        "asset_id": str(uuid.uuid5(_IDS, code)),
                        "code": code,
                        "name": code,
                        "color": "",
                        "sort_index": 0,
                        "exponent": 8,
                        "type": "crypto",
                        "address_regex": "",
                    }
                    for code in coins
                ]
            }
        )

    async def _rates(self, request: web.Request) -> web.Response:
        rates = {s[:-4]: f"{1 / price}" for s, price in self.prices.items() if price}
        return web.json_response({"data": {"currency": "USD", "rates": rates}})

    def _symbols(self) -> list[str]:
        return sorted(
            {symbol for symbol, _ in self.candles} | {"BTCUSDT", "ETHUSDT"} | set(self.prices)
        )

    async def _products(self, request: web.Request) -> web.Response:
        if request.query.get("product_type", "SPOT") != "SPOT":
            return web.json_response({"products": [], "num_products": 0})
        products = [_product(symbol, self.prices.get(symbol, 0.0)) for symbol in self._symbols()]
        return web.json_response({"products": products, "num_products": len(products)})

    async def _summary(self, params: dict[str, Any], request: web.Request) -> web.Response:
        rate = f"{self.fee_rate}"
        return web.json_response(
            {
                "total_volume": 0,
                "total_fees": 0,
                "fee_tier": {
                    "pricing_tier": "Advanced 1",
                    "usd_from": "0",
                    "usd_to": "1000",
                    "taker_fee_rate": rate,
                    "maker_fee_rate": rate,
                    "aop_from": "",
                    "aop_to": "",
                },
                "margin_rate": None,
                "goods_and_services_tax": None,
                "advanced_trade_only_volume": 0,
                "advanced_trade_only_fees": 0,
                "coinbase_pro_volume": 0,
                "coinbase_pro_fees": 0,
                "total_balance": "",
                "has_promo_fee": False,
            }
        )

    async def _ticker_v3(self, request: web.Request) -> web.Response:
        product = request.match_info["product"]
        symbol = _symbol(product)
        if symbol not in self.prices:
            return _error("NOT_FOUND", "ProductID is invalid", 404)
        price = f"{self.prices[symbol]}"
        return web.json_response(
            {
                "trades": [
                    {
                        "trade_id": "1",
                        "product_id": product,
                        "price": price,
                        "size": "0.001",
                        "time": _iso(self.now_ms),
                        "side": "BUY",
                        "bid": "",
                        "ask": "",
                    }
                ],
                "best_bid": price,
                "best_ask": price,
            }
        )

    async def _candles(self, request: web.Request) -> web.Response:
        """Newest first, from ``start`` to ``end`` (seconds) at most 350 of them; the forming
        candle too."""
        query = request.query
        interval = _GRANULARITY.get(query.get("granularity", ""))
        frame = self.candles.get((_symbol(request.match_info["product"]), interval or ""))
        if interval is None or frame is None:
            return _error("INVALID_ARGUMENT", "granularity or product is invalid", 400)
        start, end = int(query.get("start", 0)) * 1000, int(query.get("end", 0)) * 1000
        if (end - start) // INTERVALS_MS[interval] > _MAX_CANDLES:
            return _error(
                "INVALID_ARGUMENT",
                f"number of candles requested should be less than {_MAX_CANDLES}",
                400,
            )
        stamps = frame["timestamp"]
        chosen = frame[(stamps >= start) & (stamps <= min(end, self.now_ms))]
        rows = [
            {
                "start": str(int(t) // 1000),
                "low": f"{lo}",
                "high": f"{h}",
                "open": f"{o}",
                "close": f"{c}",
                "volume": f"{v}",
            }
            for t, o, h, lo, c, v in chosen.itertuples(index=False, name=None)
        ]
        return web.json_response({"candles": list(reversed(rows))})

    async def _accounts(self, params: dict[str, Any], request: web.Request) -> web.Response:
        accounts = [
            {
                "uuid": str(uuid.uuid5(_IDS, f"account-{asset}")),
                "name": f"{asset} Wallet",
                "currency": asset,
                "available_balance": {"value": f"{free:.8f}", "currency": asset},
                "default": True,
                "active": True,
                "created_at": _iso(0),
                "updated_at": _iso(0),
                "deleted_at": None,
                "type": "ACCOUNT_TYPE_CRYPTO",
                "ready": True,
                "hold": {"value": f"{used:.8f}", "currency": asset},
            }
            for asset in sorted(set(self.balances) | set(self.locked))
            for free, used in [(self.balances.get(asset, 0.0), self.locked.get(asset, 0.0))]
        ]
        return web.json_response(
            {"accounts": accounts, "has_next": False, "cursor": "", "size": len(accounts)}
        )

    async def _create(self, params: dict[str, Any], request: web.Request) -> web.Response:
        """An order: the answer names it only; a client id used before answers its order."""
        client_id = str(params.get("client_order_id") or "")
        product, side = str(params.get("product_id", "")), str(params.get("side", ""))
        if not client_id:
            return _error("INVALID_ARGUMENT", "client_order_id is required", 400)
        for order in self.orders.values():
            if order.client_id == client_id:
                return _taken(order)
        symbol = _symbol(product)
        configuration = params.get("order_configuration") or {}
        if symbol not in self.prices or side not in ("BUY", "SELL") or len(configuration) != 1:
            return _error(
                "INVALID_ARGUMENT", "product_id, side or order_configuration is invalid", 400
            )
        ((kind, terms),) = configuration.items()
        price = self.prices[symbol]
        if kind == "market_market_ioc" and "quote_size" in terms and side == "BUY":
            spend = float(terms["quote_size"])  # fees included: what the buy costs in all
            quantity = math.floor(spend / (price * (1 + self.fee_rate)) / BASE_STEP) * BASE_STEP
            sized, value, engine_kind, level = "quote_size", spend, "MARKET", 0.0
        elif kind == "market_market_ioc" and "base_size" in terms:
            quantity = float(terms["base_size"])
            sized, value, engine_kind, level = "base_size", quantity * price, "MARKET", 0.0
        elif kind == "limit_limit_gtc" and side == "BUY":
            quantity, level = float(terms["base_size"]), float(terms["limit_price"])
            sized, value, engine_kind = "base_size", quantity * level, "LIMIT"
        else:
            return _failed(
                "UNSUPPORTED_ORDER_CONFIGURATION",
                "order configuration not supported",
                "PREVIEW_INVALID_ORDER_CONFIG",
                configuration,
            )
        if value < QUOTE_MIN or quantity < BASE_STEP:
            return _failed(
                "UNKNOWN_FAILURE_REASON",
                "order size is too small",
                "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
                configuration,
            )
        order = self.open_order(client_id, symbol, side, engine_kind, round(quantity, 8), level)
        if order is None:
            return _failed(
                "INSUFFICIENT_FUND",
                "Insufficient balance in source account",
                "PREVIEW_INSUFFICIENT_FUND",
                configuration,
            )
        self.sized[order.order_id] = sized
        self.configurations[order.order_id] = configuration
        return _taken(order)

    def _by_uuid(self, wanted: str) -> Order | None:
        return next((o for o in self.orders.values() if order_uuid(o.order_id) == wanted), None)

    async def _get_order(self, params: dict[str, Any], request: web.Request) -> web.Response:
        order = self._by_uuid(request.match_info["order_id"])
        if order is None:
            return web.json_response(
                {
                    "error": "NOT_FOUND",
                    "error_details": "order with this orderID was not found",
                    "message": "order with this orderID was not found",
                },
                status=404,
            )
        return web.json_response({"order": self._order_json(order)})

    async def _batch(self, params: dict[str, Any], request: web.Request) -> web.Response:
        """Newest first; ``order_status``, ``product_id``, ``order_ids``, ``start_date`` and
        ``end_date`` narrow the list. ``limit`` orders a page (at most 1000); while
        ``has_next``, the ``cursor`` asks for the next page (an opaque string; "" on the last
        page)."""
        statuses = params.get("order_status") or []
        products = (params.get("product_ids") or []) + (params.get("product_id") or [])
        wanted = params.get("order_ids") or []
        start, end = params.get("start_date"), params.get("end_date")
        since = datetime.fromisoformat(start).timestamp() * 1000 if start else None
        until = datetime.fromisoformat(end).timestamp() * 1000 if end else None
        listed = [
            o
            for o in reversed(self.orders.values())
            if (not statuses or _STATUS[o.status] in statuses)
            and (not products or _product_id(o.symbol) in products)
            and (not wanted or order_uuid(o.order_id) in wanted)
            and (since is None or o.time >= since)
            and (until is None or o.time <= until)
        ]
        limit = min(int(params.get("limit") or 100), 1000)
        offset = int(params.get("cursor") or 0)
        more = len(listed) > offset + limit
        return web.json_response(
            {
                "orders": [self._order_json(o) for o in listed[offset : offset + limit]],
                "sequence": "0",
                "has_next": more,
                "cursor": str(offset + limit) if more else "",
            }
        )

    async def _fills(self, params: dict[str, Any], request: web.Request) -> web.Response:
        wanted = params.get("order_ids") or []
        products = (params.get("product_ids") or []) + (params.get("product_id") or [])
        fills = [
            self._fill_json(o, fill)
            for o in reversed(self.orders.values())
            if (not wanted or order_uuid(o.order_id) in wanted)
            and (not products or _product_id(o.symbol) in products)
            for fill in reversed(o.fills)
        ]
        return web.json_response({"fills": fills, "cursor": ""})

    async def _batch_cancel(self, params: dict[str, Any], request: web.Request) -> web.Response:
        results = []
        for wanted in params.get("order_ids") or []:
            order = self._by_uuid(str(wanted))
            if order is None or order.status != "NEW":
                results.append(
                    {"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": wanted}
                )
                continue
            self.cancel(order)
            results.append(
                {
                    "success": True,
                    "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON",
                    "order_id": wanted,
                }
            )
        return web.json_response({"results": results})

    def _fill_json(self, order: Order, fill: dict[str, Any]) -> dict[str, Any]:
        in_quote = self.sized.get(order.order_id) == "quote_size"
        price, qty = float(fill["price"]), float(fill["qty"])
        return {
            "entry_id": hashlib.sha256(str(fill["tradeId"]).encode()).hexdigest(),
            "trade_id": trade_uuid(fill["tradeId"]),
            "order_id": order_uuid(order.order_id),
            "trade_time": _iso(order.time),
            "trade_type": "FILL",
            "price": fill["price"],
            "size": f"{price * qty:.10f}" if in_quote else fill["qty"],
            "commission": fill["commission"],
            "product_id": _product_id(order.symbol),
            "sequence_timestamp": _iso(order.time),
            "liquidity_indicator": "TAKER",
            "size_in_quote": in_quote,
            "user_id": "3333-333333-3333333",
            "side": order.side,
            "retail_portfolio_id": "",
        }

    def _order_json(self, order: Order) -> dict[str, Any]:
        fees = sum(float(fill["commission"]) for fill in order.fills)
        average = order.quote / order.executed if order.executed else 0.0
        limit = order.kind == "LIMIT"
        configuration = self.configurations.get(order.order_id, {})
        return {
            "order_id": order_uuid(order.order_id),
            "product_id": _product_id(order.symbol),
            "user_id": "3333-333333-3333333",
            "order_configuration": configuration,
            "side": order.side,
            "client_order_id": order.client_id,
            "status": _STATUS[order.status],
            "time_in_force": "GOOD_UNTIL_CANCELLED" if limit else "IMMEDIATE_OR_CANCEL",
            "created_time": _iso(order.time),
            "completion_percentage": f"{100 * order.executed / order.quantity:.2f}",
            "filled_size": f"{order.executed:.8f}",
            "average_filled_price": f"{average}",
            "fee": "",
            "number_of_fills": str(len(order.fills)),
            "filled_value": f"{order.quote:.8f}",
            "pending_cancel": False,
            "size_in_quote": self.sized.get(order.order_id) == "quote_size",
            "total_fees": f"{fees:.8f}",
            "size_inclusive_of_fees": self.sized.get(order.order_id) == "quote_size",
            "total_value_after_fees": f"{order.quote + fees:.8f}",
            "trigger_status": "INVALID_ORDER_TYPE",
            "order_type": "LIMIT" if limit else "MARKET",
            "reject_reason": "REJECT_REASON_UNSPECIFIED",
            "settled": True,
            "product_type": "SPOT",
            "reject_message": "",
            "cancel_message": "",
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": "0",
            "is_liquidation": False,
            "last_fill_time": _iso(order.time) if order.fills else None,
            "edit_history": [],
            "leverage": "",
            "margin_type": "UNKNOWN_MARGIN_TYPE",
            "retail_portfolio_id": "",
        }


_LISTS = ("order_status", "order_ids", "product_ids", "product_id")
_LIMIT_PAGE = (
    '<html>\n  <head>\n    <title>Coinbase</title>\n    <meta name="robots" '
    'content="noindex">\n  </head>\n  <body>Too many requests</body>\n</html>'
)


def _taken(order: Order) -> web.Response:
    return web.json_response(
        {
            "success": True,
            "success_response": {
                "order_id": order_uuid(order.order_id),
                "product_id": _product_id(order.symbol),
                "side": order.side,
                "client_order_id": order.client_id,
            },
        }
    )


def _failed(error: str, message: str, preview: str, configuration: Any) -> web.Response:
    """Coinbase's refusal of an order: HTTP 200, ``success`` false."""
    return web.json_response(
        {
            "success": False,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": "",
            "error_response": {
                "error": error,
                "message": message,
                "error_details": "",
                "preview_failure_reason": preview,
            },
            "order_configuration": configuration,
        }
    )


def _error(error: str, message: str, status: int) -> web.Response:
    return web.json_response(
        {"error": error, "error_details": message, "message": message}, status=status
    )


def _unbase64(part: str) -> bytes:
    """A JWT part (base64url without padding)."""
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _product_id(symbol: str) -> str:
    return f"{symbol[:-4]}-{symbol[-4:]}"


def _symbol(product_id: str) -> str:
    return product_id.replace("-", "")


def _product(symbol: str, price: float) -> dict[str, Any]:
    base, quote = symbol[:-4], symbol[-4:]
    return {
        "product_id": _product_id(symbol),
        "price": f"{price}",
        "price_percentage_change_24h": "0",
        "volume_24h": "0",
        "volume_percentage_change_24h": "0",
        "base_increment": f"{BASE_STEP}",
        "quote_increment": "0.01",
        "quote_min_size": f"{QUOTE_MIN}",
        "quote_max_size": "10000000",
        "base_min_size": f"{BASE_STEP}",
        "base_max_size": "3400",
        "base_name": base,
        "quote_name": quote,
        "watched": False,
        "is_disabled": False,
        "new": False,
        "status": "online",
        "cancel_only": False,
        "limit_only": False,
        "post_only": False,
        "trading_disabled": False,
        "auction_mode": False,
        "product_type": "SPOT",
        "quote_currency_id": quote,
        "base_currency_id": base,
        "fcm_trading_session_details": None,
        "mid_market_price": "",
        "alias": "",
        "alias_to": [],
        "base_display_symbol": base,
        "quote_display_symbol": quote,
        "view_only": False,
        "price_increment": "0.01",
        "display_name": _product_id(symbol),
        "product_venue": "CBE",
    }


@asynccontextmanager
async def serve_coinbase(fake: FakeCoinbase) -> AsyncIterator[str]:
    """Run the fake on a free loopback port; yields its base URL."""
    async with serve_app(fake.app()) as base:
        yield base


def coinbase_config(base: str) -> dict[str, Any]:
    """ccxt settings that send Coinbase's REST calls to ``base`` (its ``rest`` URL is replaced
    whole); no Coinbase websocket in the fake, and no client-side pacing against it (ccxt's
    costs for the public v2 calls of load_markets add up to a second)."""
    return {
        "urls": {"api": {"rest": base}},
        "enableRateLimit": False,
        "has": {"watchOHLCV": False, "watchTicker": False},
    }


def limit_body() -> dict[str, Any]:
    """Coinbase's rate-limit answer (HTTP 429): no Retry-After, the limits are per second."""
    return {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}

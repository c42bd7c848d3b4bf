"""A local fake of Binance's spot REST API and market streams, on loopback for unmodified ccxt.

It serves what ccxt's public calls need (exchangeInfo for load_markets, klines, time) from real
candles handed to it, and injects faults on request. ``point_ccxt_at`` rewrites an exchange's
base URLs to it (recipe A of the team's EXCHANGE_TESTING notes).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from aiohttp import WSMsgType, web

from tests.doubles.loopback import serve_app

INTERVALS_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


@dataclass
class Fault:
    """Answer the next ``times`` requests to ``path`` with this instead of the real thing.

    With ``after`` the real handler runs first (an order is placed) and the client still gets
    the fault: Binance's "5XX: execution status UNKNOWN". ``method`` narrows the match.
    ``delay``: seconds to wait before answering (longer than the client's timeout: a timeout);
    ``drop``: close the connection instead of answering; ``fill_share``: no fault, but the
    request's market order fills only this share of its size (the rest expires); ``late``:
    the real handler runs this many seconds after the request, on its own (the venue carries
    out a request its client gave up on: ``FakeBinance.late_requests`` holds those runs).
    """

    path: str
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    after: bool = False
    method: str | None = None
    delay: float = 0.0
    drop: bool = False
    fill_share: float | None = None
    late: float | None = None


@dataclass
class Order:
    order_id: int
    client_id: str
    symbol: str
    side: str
    quantity: float
    executed: float
    quote: float
    status: str
    time: int
    fills: list[dict[str, Any]]
    kind: str = "MARKET"
    stop_price: float = 0.0  # the stop of a STOP_LOSS, the limit of a LIMIT


@dataclass
class Subscriber:
    socket: web.WebSocketResponse
    streams: set[str] = field(default_factory=set)
    sent: dict[tuple[str, str], int] = field(default_factory=dict)  # last kline open time pushed


@dataclass
class FakeBinance:
    now_ms: int
    candles: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    api_key: str = "test-key"
    secret: str = "test-secret"
    balances: dict[str, float] = field(default_factory=lambda: {"USDT": 1000.0})  # free
    locked: dict[str, float] = field(default_factory=dict)  # held by resting orders
    prices: dict[str, float] = field(default_factory=dict)  # symbol -> last price
    # a symbol's price step (PRICE_FILTER tickSize, as Binance gives it: "0.00010000");
    # 0.01 when not named, as BTCUSDT's
    tick_sizes: dict[str, str] = field(default_factory=dict)
    fee_rate: float = 0.001
    fill_share: float = 1.0  # a market order fills this share of its size; the rest expires
    # A market order fills this fraction worse than the price (a buy above it, a sell below):
    # the slippage of a thin book, which the paper model cannot see (the drift monitor's test).
    slippage: float = 0.0
    # Each execution is split into trades of these shares (Binance fills a large order against
    # several resting orders: one trade each, own id, own commission).
    split: tuple[float, ...] = (1.0,)
    # Which asset a commission is taken in: "quote" (always the quote: the old kind fake);
    # "received" (Binance's default: a buy pays in the coin bought, a sell in the quote);
    # "BNB" (Binance's "pay fees with BNB": converted at ``prices["BNBUSDT"]``, 25% off, and
    # back to "received" for any trade the BNB balance cannot pay, as Binance does).
    fee_asset: str = "quote"
    bnb_discount: float = 0.25
    orders: dict[int, Order] = field(default_factory=dict)
    trade_ids: int = 0
    order_posts: int = 0  # order placements received, answered or not
    subscribers: list[Subscriber] = field(default_factory=list)
    chaos: Callable[[web.Request], Fault | None] | None = None  # picks a fault per request
    order_delay: float = 0.0  # seconds a placement takes, half before and half after it
    placing: int = 0  # order placements in progress
    order_paths: tuple[str, ...] = ("/api/v3/order",)  # where placements are POSTed
    # Dust Transfer (POST /sapi/v1/asset/dust): each conversion as Binance's dust log keeps it
    # (GET /sapi/v1/asset/dribblet); an asset converts when worth under ``dust_btc`` BTC, once
    # per ``dust_window_ms`` (6 h), for ``dust_charge`` of the BNB it buys.
    dust_log: list[dict[str, Any]] = field(default_factory=list)
    dust_btc: float = 0.001
    dust_window_ms: int = 6 * 3_600_000
    dust_charge: float = 0.02
    # The price walks each candle the clock passes (``walk``): resting orders fill inside it.
    walks: bool = False
    late_requests: list[asyncio.Task[Any]] = field(default_factory=list)  # see ``Fault.late``

    def move_to(self, now_ms: int) -> None:
        """The exchange's clock; each symbol's price is its forming candle's open (with
        ``walks``, after walking every candle that closed on the way)."""
        if self.walks:
            self.walk(now_ms)
        self.now_ms = now_ms
        for (symbol, _), frame in self.candles.items():
            forming = int(frame["timestamp"].searchsorted(now_ms, "right")) - 1
            if forming >= 0:
                self.prices[symbol] = float(frame["open"].iloc[forming])

    def walk(self, now_ms: int) -> None:
        """Move the price through each candle that closes between now and ``now_ms``, as the
        market did: open, the extreme away from the close (the low of a rising candle, the
        high of a falling one), the other extreme, the close. A resting stop-loss or limit
        buy the path crosses fills at its level, as a stop-market fills at the market
        reaching it and a resting bid is taken at its price; one the next open gaps past
        fills at that open (``trigger_stops``). The backtest kernel fills the same: at
        min(open, level) once the low reaches the level (one order rests at a time, so which
        extreme comes first changes no fill). Only a symbol's finest candles walk."""
        finest: dict[str, tuple[int, pd.DataFrame]] = {}
        for (symbol, interval), frame in self.candles.items():
            if symbol not in finest or INTERVALS_MS[interval] < finest[symbol][0]:
                finest[symbol] = (INTERVALS_MS[interval], frame)
        for symbol, (step, frame) in finest.items():
            stamps = frame["timestamp"]
            first = max(int(stamps.searchsorted(self.now_ms, "right")) - 1, 0)
            last = int(stamps.searchsorted(now_ms, "right")) - 1
            for row in frame.iloc[first:last].itertuples(index=False):
                opened = int(row.timestamp)
                self.now_ms = max(self.now_ms, opened)
                self.prices[symbol] = float(row.open)
                self.trigger_stops()  # what the open gapped past fills there
                extremes = (row.low, row.high) if row.close >= row.open else (row.high, row.low)
                for third, point in enumerate((*extremes, row.close), start=1):
                    # each leg's fills are stamped at its end: a third, two, the candle's last ms
                    self.now_ms = max(self.now_ms, opened + min(third * step // 3, step - 1))
                    self._cross(symbol, float(point))

    def _cross(self, symbol: str, price: float) -> None:
        """The price of ``symbol`` moves to ``price``: each resting sell stop or buy limit it
        passes on the way down fills at its level."""
        before = self.prices[symbol]
        self.prices[symbol] = price
        for order in list(self.orders.values()):
            level = order.stop_price
            if order.symbol != symbol or order.status != "NEW" or not price <= level < before:
                continue
            if order.kind == "STOP_LOSS":
                self._execute(order, level, self.locked)
            elif order.kind == "LIMIT":
                self.fill_limit(order)

    def add_candles(self, symbol: str, interval: str, frame: pd.DataFrame) -> None:
        self.candles[(symbol, interval)] = frame.reset_index(drop=True)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_inject])
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/fapi/v1/exchangeInfo", self._empty_info)
        app.router.add_get("/dapi/v1/exchangeInfo", self._empty_info)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/api/v3/ticker/24hr", self._ticker)
        for path in (
            "/sapi/v1/capital/config/getall",
            "/sapi/v1/margin/allPairs",
            "/sapi/v1/margin/isolated/allPairs",
        ):
            app.router.add_get(path, self._signed(self._empty_list))
        app.router.add_get("/api/v3/account", self._signed(self._account))
        app.router.add_post("/api/v3/order", self._signed(self._create_order))
        app.router.add_get("/api/v3/order", self._signed(self._get_order))
        app.router.add_get("/api/v3/openOrders", self._signed(self._open_orders))
        app.router.add_get("/api/v3/myTrades", self._signed(self._my_trades))
        app.router.add_delete("/api/v3/order", self._signed(self._cancel_order))
        app.router.add_post("/sapi/v1/asset/dust-btc", self._signed(self._dust_btc))
        app.router.add_post("/sapi/v1/asset/dust", self._signed(self._dust))
        app.router.add_get("/sapi/v1/asset/dribblet", self._signed(self._dribblet))
        app.router.add_get("/sapi/v1/asset/tradeFee", self._signed(self._trade_fee))
        app.router.add_get("/ws/{index}", self._stream)
        app.router.add_post("/_test/advance", self._advance)
        return app

    async def _advance(self, request: web.Request) -> web.Response:
        """Test control: move the clock on by ``ms`` (a process under test steps the market)."""
        self.move_to(self.now_ms + int(request.query["ms"]))
        return web.json_response({"serverTime": self.now_ms})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """Binance's market streams: SUBSCRIBE, then kline and miniTicker events on push()."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        subscriber = Subscriber(socket)
        self.subscribers.append(subscriber)
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                command = json.loads(message.data)
                if command.get("method") == "SUBSCRIBE":
                    subscriber.streams.update(command.get("params", []))
                    await socket.send_json({"result": None, "id": command.get("id")})
                    await self._push_to(subscriber)
        finally:
            self.subscribers.remove(subscriber)
        return socket

    async def push(self) -> None:
        """Send every subscriber what changed since its last push, like the live streams do."""
        for subscriber in list(self.subscribers):
            await self._push_to(subscriber)

    async def drop_streams(self) -> None:
        """Close every stream connection from the server side (a network blip)."""
        for subscriber in list(self.subscribers):
            await subscriber.socket.close()

    async def _push_to(self, subscriber: Subscriber) -> None:
        for stream in sorted(subscriber.streams):
            market, _, kind = stream.partition("@")
            symbol = market.upper()
            if kind.startswith("kline_"):
                for event in self._kline_events(subscriber, symbol, kind.removeprefix("kline_")):
                    await subscriber.socket.send_json(event)
            elif kind in ("miniTicker", "ticker") and symbol in self.prices:
                price = f"{self.prices[symbol]}"
                await subscriber.socket.send_json(
                    {
                        "e": "24hrMiniTicker",
                        "E": self.now_ms,
                        "s": symbol,
                        "c": price,
                        "o": price,
                        "h": price,
                        "l": price,
                        "v": "0",
                        "q": "0",
                    }
                )

    def _kline_events(self, subscriber: Subscriber, symbol: str, interval: str) -> list[dict]:
        """The forming candle, preceded by the final state of any candle closed since."""
        frame = self.candles.get((symbol, interval))
        if frame is None:
            return []
        step = INTERVALS_MS[interval]
        key = (symbol, interval)
        shown = frame[frame["timestamp"] <= self.now_ms]
        if shown.empty:
            return []
        last_sent = subscriber.sent.get(key, int(shown["timestamp"].iloc[-1]))
        chosen = shown[shown["timestamp"] >= last_sent]
        subscriber.sent[key] = int(shown["timestamp"].iloc[-1])
        return [
            {
                "e": "kline",
                "E": self.now_ms,
                "s": symbol,
                "k": {
                    "t": int(t),
                    "T": int(t) + step - 1,
                    "s": symbol,
                    "i": interval,
                    "f": 1,
                    "L": 2,
                    "o": f"{o}",
                    "c": f"{c}",
                    "h": f"{h}",
                    "l": f"{lo}",
                    "v": f"{v}",
                    "n": 2,
                    "x": int(t) + step <= self.now_ms,
                    "q": "0",
                    "V": "0",
                    "Q": "0",
                    "B": "0",
                },
            }
            for t, o, h, lo, c, v in chosen.itertuples(index=False, name=None)
        ]

    @web.middleware
    async def _record_and_inject(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.query)))
        self.trigger_stops()  # the market moved (tests set prices): resting stops may fire
        if request.method == "POST" and request.path in self.order_paths:
            self.order_posts += 1
            if self.order_delay:
                return await self._slowly(request, handler)
        for fault in self.faults:
            if (
                fault.path == request.path
                and fault.times > 0
                and fault.method in (None, request.method)
            ):
                fault.times -= 1
                return await self._inject(fault, request, handler)
        chosen = self.chaos(request) if self.chaos else None
        if chosen is not None:
            return await self._inject(chosen, request, handler)
        return await handler(request)

    async def _slowly(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.placing += 1
        try:
            await asyncio.sleep(self.order_delay / 2)
            response = await handler(request)
            await asyncio.sleep(self.order_delay / 2)
            return response
        finally:
            self.placing -= 1

    async def _inject(self, fault: Fault, request: web.Request, handler: Any) -> web.StreamResponse:
        if fault.fill_share is not None:
            usual, self.fill_share = self.fill_share, fault.fill_share
            try:
                return await handler(request)
            finally:
                self.fill_share = usual
        if fault.after:
            await handler(request)
        if fault.late is not None:
            await request.read()  # the body, kept for the late run
            self.late_requests.append(asyncio.create_task(_later(fault.late, handler, request)))
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop and request.transport is not None:
            request.transport.close()  # the client sees the connection go, with no answer
        return web.json_response(fault.body, status=fault.status, headers=fault.headers)

    def _signed(self, handler: Any) -> Any:
        """Check the key and the HMAC-SHA256 signature the way Binance documents it."""

        async def checked(request: web.Request) -> web.StreamResponse:
            body = await request.text()
            payload = (request.query_string + body).replace(
                "&signature=" + _signature_of(request.query_string + "&" + body), ""
            )
            given = _signature_of(request.query_string + "&" + body)
            expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if request.headers.get("X-MBX-APIKEY") != self.api_key:
                return web.json_response({"code": -2015, "msg": "Invalid API-key."}, status=401)
            if given != expected:
                return web.json_response({"code": -1022, "msg": "Signature invalid."}, status=400)
            params: dict[str, str] = {}  # a repeated key (asset=A&asset=B) is joined: "A,B"
            for key, value in [*request.query.items(), *urllib.parse.parse_qsl(body)]:
                params[key] = f"{params[key]},{value}" if key in params else value
            return await handler(params)

        return checked

    async def _empty_list(self, params: dict[str, str]) -> web.Response:
        return web.json_response([])

    async def _ticker(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        price = self.prices.get(symbol, 0.0)
        return web.json_response(
            {
                "symbol": symbol,
                "lastPrice": str(price),
                "bidPrice": str(price),
                "askPrice": str(price),
                "closeTime": self.now_ms,
                "openTime": self.now_ms - 86_400_000,
            }
        )

    async def _account(self, params: dict[str, str]) -> web.Response:
        return web.json_response(
            {
                "canTrade": True,
                "accountType": "SPOT",
                "updateTime": self.now_ms,
                "balances": [
                    {
                        "asset": asset,
                        "free": f"{self.balances.get(asset, 0.0):.8f}",
                        "locked": f"{self.locked.get(asset, 0.0):.8f}",
                    }
                    for asset in sorted(set(self.balances) | set(self.locked))
                ],
                "permissions": ["SPOT"],
            }
        )

    async def _create_order(self, params: dict[str, str]) -> web.Response:
        client_id = params.get("newClientOrderId", f"x-{len(self.orders)}")
        if any(order.client_id == client_id for order in self.orders.values()):
            return web.json_response({"code": -2010, "msg": "Duplicate order sent."}, status=400)
        symbol, side, kind = params["symbol"], params["side"], params.get("type", "MARKET")
        price = self.prices[symbol]
        if "quoteOrderQty" in params:
            quantity = float(params["quoteOrderQty"]) / price
        else:
            quantity = float(params["quantity"])
        limit = float(params["price"]) if kind == "LIMIT" else 0.0
        order = self.open_order(
            client_id, symbol, side, kind, quantity, limit or float(params.get("stopPrice", 0.0))
        )
        if order is None:
            return _insufficient()
        return web.json_response({**_order_json(order), "fills": order.fills})

    def open_order(
        self, client_id: str, symbol: str, side: str, kind: str, quantity: float, level: float
    ) -> Order | None:
        """Take an order (any venue's fake): a MARKET fills now, a LIMIT buy rests at ``level``
        with its cost and fee locked, a STOP_LOSS sell rests with its coins locked until the
        price reaches ``level``. None: the balance cannot pay it (nothing changes)."""
        price = self.prices[symbol]
        base, quote = symbol[:-4], symbol[-4:]
        order = Order(
            len(self.orders) + 1,
            client_id,
            symbol,
            side,
            quantity,
            0.0,
            0.0,
            "NEW",
            self.now_ms,
            [],
            kind,
            level,
        )
        if kind == "LIMIT":  # a buy rests, its cost and fee locked, until the price comes down
            lock = quantity * level * (1 + self.fee_rate)
            if side != "BUY" or lock > self.balances.get(quote, 0.0) + 1e-9:
                return None
            self.balances[quote] -= lock
            self.locked[quote] = self.locked.get(quote, 0.0) + lock
            self.orders[order.order_id] = order
            self.trigger_stops()
            return order
        if kind == "STOP_LOSS":  # rests, its amount locked, until the price reaches the stop
            if side != "SELL" or quantity > self.balances.get(base, 0.0) + 1e-12:
                return None
            self.balances[base] -= quantity
            self.locked[base] = self.locked.get(base, 0.0) + quantity
            self.orders[order.order_id] = order
            self.trigger_stops()
            return order
        slipped = price * (1 + self.slippage if side == "BUY" else 1 - self.slippage)
        if not self._execute(order, slipped, self.balances):
            return None
        self.orders[order.order_id] = order
        return order

    def _execute(self, order: Order, price: float, source: dict[str, float]) -> bool:
        """Fill ``order`` at ``price`` (``fill_share`` of it; the rest expires), taking the sold
        asset from ``source`` (free or locked balances); False when that cannot pay. The
        execution is booked as one trade per ``split`` share, each charged its own commission."""
        base, quote = order.symbol[:-4], order.symbol[-4:]
        executed = round(order.quantity * self.fill_share, 5)
        cost = executed * price
        quote_fee = cost * self.fee_rate if self._fee_asset(order, cost) == quote else 0.0
        if order.side == "BUY" and cost + quote_fee > self.balances.get(quote, 0.0) + 1e-9:
            return False
        if order.side == "SELL" and executed > source.get(base, 0.0) + 1e-12:
            return False
        if order.side == "SELL":
            source[base] -= executed
            if source is self.locked:  # what did not fill is freed
                self.balances[base] = self.balances.get(base, 0.0) + order.quantity - executed
                source[base] -= order.quantity - executed
        for part in _parts(executed, self.split):
            self._trade(order, price, part)
        order.executed, order.quote, order.time = executed, cost, self.now_ms
        order.status = "FILLED" if executed >= order.quantity - 1e-12 else "EXPIRED"
        return True

    def _trade(self, order: Order, price: float, amount: float) -> None:
        """One trade of ``order``: the coins and cash move, the commission is taken."""
        base, quote = order.symbol[:-4], order.symbol[-4:]
        cost = amount * price
        asset = self._fee_asset(order, cost)
        if asset == "BNB":
            fee = cost * self.fee_rate * (1 - self.bnb_discount) / self.prices["BNBUSDT"]
        elif asset == base:
            fee = amount * self.fee_rate
        else:
            fee = cost * self.fee_rate
        if order.side == "BUY":
            self.balances[base] = self.balances.get(base, 0.0) + amount
            self.balances[quote] -= cost
        else:
            self.balances[quote] = self.balances.get(quote, 0.0) + cost
        self.balances[asset] = self.balances.get(asset, 0.0) - fee
        self.trade_ids += 1
        order.fills.append(
            {
                "price": f"{price}",
                "qty": f"{amount}",
                "commission": f"{fee:.8f}",
                "commissionAsset": asset,
                "tradeId": self.trade_ids,
            }
        )

    def _fee_asset(self, order: Order, cost: float) -> str:
        """The asset this trade's commission is taken in (see ``fee_asset``)."""
        base, quote = order.symbol[:-4], order.symbol[-4:]
        if self.fee_asset == "quote":
            return quote
        if self.fee_asset == "BNB":
            needed = cost * self.fee_rate * (1 - self.bnb_discount) / self.prices["BNBUSDT"]
            if self.balances.get("BNB", 0.0) >= needed:
                return "BNB"
        return base if order.side == "BUY" else quote

    def trigger_stops(self) -> None:
        """Resting orders the price has reached: a stop-loss sells at market, a limit buy
        fills at its limit. The fake does it before each request (tests set prices); a test
        calls it for a market that reached an order while no request came."""
        for order in self.orders.values():
            price = self.prices.get(order.symbol)
            if order.status != "NEW" or price is None or price > order.stop_price:
                continue
            if order.kind == "STOP_LOSS":
                self._execute(order, price, self.locked)
            elif order.kind == "LIMIT":
                self.fill_limit(order, price if self.walks else order.stop_price)

    def fill_limit(self, order: Order, price: float | None = None) -> None:
        """A resting limit buy fills at ``price`` (its limit when not given; a walking market
        gives a limit it opens under the better price, as a taker would get it). A test calls
        it for a market that came down to the order."""
        quote = order.symbol[-4:]
        lock = order.quantity * order.stop_price * (1 + self.fee_rate)
        self.locked[quote] -= lock
        self.balances[quote] += lock  # unlocked, then paid from the free balance
        self._execute(order, order.stop_price if price is None else price, self.balances)

    async def _cancel_order(self, params: dict[str, str]) -> web.Response:
        for order in self.orders.values():
            if order.client_id == params.get("origClientOrderId") or str(
                order.order_id
            ) == params.get("orderId"):
                if order.status != "NEW":
                    break
                self.cancel(order)
                return web.json_response(_order_json(order))
        return web.json_response({"code": -2011, "msg": "Unknown order sent."}, status=400)

    def cancel(self, order: Order) -> None:
        """A resting order is cancelled and what it locked freed: the API's cancel, or a test's
        cancel elsewhere (the venue's site, another client: behind pairpilot's back)."""
        order.status = "CANCELED"
        if order.kind == "LIMIT":
            quote = order.symbol[-4:]
            lock = order.quantity * order.stop_price * (1 + self.fee_rate)
            self.locked[quote] -= lock
            self.balances[quote] += lock
        if order.kind == "STOP_LOSS":
            base = order.symbol[:-4]
            self.locked[base] -= order.quantity
            self.balances[base] = self.balances.get(base, 0.0) + order.quantity

    async def _get_order(self, params: dict[str, str]) -> web.Response:
        wanted = params.get("origClientOrderId")
        for order in self.orders.values():
            if order.client_id == wanted or str(order.order_id) == params.get("orderId"):
                return web.json_response(_order_json(order))
        return web.json_response({"code": -2013, "msg": "Order does not exist."}, status=400)

    async def _my_trades(self, params: dict[str, str]) -> web.Response:
        order = self.orders.get(int(params.get("orderId", 0)))
        if order is None:
            return web.json_response([])
        return web.json_response(
            [
                {
                    "symbol": order.symbol,
                    "id": fill["tradeId"],
                    "orderId": order.order_id,
                    "orderListId": -1,
                    "price": fill["price"],
                    "qty": fill["qty"],
                    "quoteQty": str(float(fill["price"]) * float(fill["qty"])),
                    "commission": fill["commission"],
                    "commissionAsset": fill["commissionAsset"],
                    "time": order.time,
                    "isBuyer": order.side == "BUY",
                    "isMaker": False,
                    "isBestMatch": True,
                }
                for fill in order.fills
            ]
        )

    async def _open_orders(self, params: dict[str, str]) -> web.Response:
        symbol = params.get("symbol")
        return web.json_response(
            [
                _order_json(o)
                for o in self.orders.values()
                if o.status == "NEW" and symbol in (None, o.symbol)
            ]
        )

    def _dust_values(self, asset: str, amount: float) -> tuple[float, float] | None:
        """``amount`` of ``asset`` in BTC and in BNB, at the last prices (None: no price)."""
        price = 1.0 if asset == "USDT" else self.prices.get(f"{asset}USDT")
        btc, bnb = self.prices.get("BTCUSDT"), self.prices.get("BNBUSDT")
        if not price or not btc or not bnb:
            return None
        return amount * price / btc, amount * price / bnb

    def _convertible(self) -> dict[str, tuple[float, float, float]]:
        """Each free asset Binance would convert now: amount, its value in BTC and in BNB."""
        found = {}
        for asset, amount in sorted(self.balances.items()):
            values = self._dust_values(asset, amount) if asset != "BNB" and amount > 0 else None
            if values is not None and values[0] < self.dust_btc:
                found[asset] = (amount, *values)
        return found

    async def _dust_btc(self, params: dict[str, str]) -> web.Response:
        """POST /sapi/v1/asset/dust-btc: the assets that can be converted into BNB."""
        details = [
            {
                "asset": asset,
                "assetFullName": asset,
                "amountFree": f"{amount:.8f}",
                "toBTC": f"{btc:.8f}",
                "toBNB": f"{bnb:.8f}",
                "toBNBOffExchange": f"{bnb * (1 - self.dust_charge):.8f}",
                "exchange": f"{bnb * self.dust_charge:.8f}",
            }
            for asset, (amount, btc, bnb) in self._convertible().items()
        ]
        return web.json_response(
            {
                "details": details,
                "totalTransferBtc": f"{sum(float(d['toBTC']) for d in details):.8f}",
                "totalTransferBNB": f"{sum(float(d['toBNB']) for d in details):.8f}",
                "dribbletPercentage": f"{self.dust_charge}",
            }
        )

    async def _dust(self, params: dict[str, str]) -> web.Response:
        """POST /sapi/v1/asset/dust: convert the whole free balance of each asset to BNB, all
        or nothing, refused as Binance refuses (codes and texts as ccxt's table has them)."""
        assets = [asset for asset in params.get("asset", "").split(",") if asset]
        if not assets:
            return _refusal(
                -1102, "Mandatory parameter 'asset' was not sent, was empty/null, or malformed."
            )
        last = max((int(entry["operateTime"]) for entry in self.dust_log), default=None)
        if last is not None and self.now_ms - last < self.dust_window_ms:
            return _refusal(-5006, "Only transfer once in 24 hours.")  # Binance's text; 6 h
        convertible = self._convertible()
        for asset in assets:
            if self.balances.get(asset, 0.0) <= 0:
                return _refusal(-5003, "You don't have this asset.")
            if asset == "BNB":
                return _refusal(-5001, "Don't allow transfer to micro assets.")
            if asset not in convertible:
                return _refusal(
                    -5004,
                    f"The residual balances of {asset} have exceeded 0.001BTC, Please re-choose.",
                )
        tran_id = 2_970_932_918 + len(self.dust_log)
        results = []
        for asset in assets:
            amount, _, bnb = convertible[asset]
            charge = bnb * self.dust_charge
            del self.balances[asset]
            self.balances["BNB"] = self.balances.get("BNB", 0.0) + bnb - charge
            results.append(
                {
                    "amount": f"{amount:.8f}",
                    "fromAsset": asset,
                    "operateTime": self.now_ms,
                    "serviceChargeAmount": f"{charge:.8f}",
                    "tranId": tran_id,
                    "transferedAmount": f"{bnb:.8f}",
                }
            )
        charged = sum(float(r["serviceChargeAmount"]) for r in results)
        moved = sum(float(r["transferedAmount"]) for r in results)
        self.dust_log.append(
            {
                "operateTime": self.now_ms,
                "totalServiceChargeAmount": f"{charged:.8f}",
                "totalTransferedAmount": f"{moved:.8f}",
                "transId": tran_id,
                "userAssetDribbletDetails": [
                    {
                        **{
                            k: r[k]
                            for k in (
                                "fromAsset",
                                "amount",
                                "transferedAmount",
                                "serviceChargeAmount",
                                "operateTime",
                            )
                        },
                        "transId": tran_id,
                    }
                    for r in results
                ],
            }
        )
        return web.json_response(
            {
                "totalServiceCharge": f"{charged:.8f}",
                "totalTransfered": f"{moved:.8f}",
                "transferResult": results,
            }
        )

    async def _dribblet(self, params: dict[str, str]) -> web.Response:
        """GET /sapi/v1/asset/dribblet: the dust log between startTime and endTime."""
        start, end = int(params.get("startTime", 0)), int(params.get("endTime", 2**62))
        rows = [e for e in self.dust_log if start <= int(e["operateTime"]) <= end]
        return web.json_response({"total": len(rows), "userAssetDribblets": rows})

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.now_ms})

    async def _empty_info(self, request: web.Request) -> web.Response:
        return web.json_response({"timezone": "UTC", "serverTime": self.now_ms, "symbols": []})

    async def _trade_fee(self, params: dict[str, str]) -> web.Response:
        """GET /sapi/v1/asset/tradeFee: the account's own commission per symbol (its VIP tier:
        ``fee_rate``, what it is charged), a list even for one ``symbol``, rates as strings."""
        symbols = [params["symbol"]] if "symbol" in params else sorted(self.prices)
        rate = f"{self.fee_rate:.8f}".rstrip("0")
        return web.json_response(
            [
                {"symbol": symbol, "makerCommission": rate, "takerCommission": rate}
                for symbol in symbols
            ]
        )

    async def _exchange_info(self, request: web.Request) -> web.Response:
        symbols = sorted(
            {symbol for symbol, _ in self.candles} | {"BTCUSDT", "ETHUSDT"} | set(self.prices)
        )
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self.now_ms,
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [_symbol(name, self.tick_sizes.get(name, "0.01")) for name in symbols],
            }
        )

    async def _klines(self, request: web.Request) -> web.Response:
        query = request.query
        frame = self.candles.get((query.get("symbol", ""), query.get("interval", "")))
        if frame is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        step = INTERVALS_MS[query["interval"]]
        limit = min(int(query.get("limit", 500)), 1000)
        start = int(query.get("startTime", 0))
        end = int(query.get("endTime", self.now_ms))
        stamps = frame["timestamp"]
        # Binance serves the candle still forming too; the client must drop it.
        chosen = frame[(stamps >= start) & (stamps <= end) & (stamps <= self.now_ms)]
        if "startTime" not in query:
            chosen = chosen.iloc[-limit:]
        rows = [
            [
                int(t),
                f"{o}",
                f"{h}",
                f"{lo}",
                f"{c}",
                f"{v}",
                int(t) + step - 1,
                "0",
                1,
                "0",
                "0",
                "0",
            ]
            for t, o, h, lo, c, v in chosen.iloc[:limit].itertuples(index=False, name=None)
        ]
        return web.json_response(rows)


def _parts(amount: float, shares: tuple[float, ...]) -> list[float]:
    """``amount`` cut into trades of ``shares`` at the lot step (0.00001); the last takes the
    rest; nothing for an empty execution."""
    if amount <= 0:
        return []
    parts = [round(amount * share / sum(shares), 5) for share in shares[:-1]]
    parts = [part for part in parts if part > 0]
    last = round(amount - sum(parts), 8)
    return [*parts, last] if last > 0 else parts


def _refusal(code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "msg": message}, status=400)


def _insufficient() -> web.Response:
    return web.json_response(
        {"code": -2010, "msg": "Account has insufficient balance for requested action."},
        status=400,
    )


def _signature_of(text: str) -> str:
    for part in text.split("&"):
        if part.startswith("signature="):
            return part.removeprefix("signature=")
    return ""


async def _later(seconds: float, handler: Any, request: web.Request) -> None:
    """Run ``handler`` on ``request`` ``seconds`` from now (see ``Fault.late``)."""
    await asyncio.sleep(seconds)
    await handler(request)


def _order_json(order: Order) -> dict[str, Any]:
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_id,
        "transactTime": order.time,
        "time": order.time,
        "updateTime": order.time,
        "price": "0.00000000",
        "origQty": f"{order.quantity:.8f}",
        "executedQty": f"{order.executed:.8f}",
        "cummulativeQuoteQty": f"{order.quote:.8f}",
        "status": order.status,
        "timeInForce": "GTC",
        "type": order.kind,
        "side": order.side,
        "stopPrice": f"{order.stop_price:.8f}",
        "workingTime": order.time,
        "selfTradePreventionMode": "NONE",
        "isWorking": True,
        "origQuoteOrderQty": "0.00000000",
    }


def _symbol(name: str, tick: str = "0.01") -> dict[str, Any]:
    base, quote = name[:-4], name[-4:]
    return {
        "symbol": name,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": "1000000.00",
                "tickSize": tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001",
                "maxQty": "9000.0",
                "stepSize": "0.00001",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.0",
                "applyMinToMarket": True,
                "maxNotional": "9000000.0",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
    }


@asynccontextmanager
async def serve(fake: FakeBinance) -> AsyncIterator[str]:
    """Run the fake on a free loopback port; yields its base URL."""
    async with serve_app(fake.app()) as base:
        yield base


def binance_urls(base: str) -> dict[str, Any]:
    """ccxt ``urls.api`` overrides that send every Binance REST family and stream to ``base``."""
    import ccxt

    urls: dict[str, Any] = {
        key: base + "/" + url.split("://", 1)[1].split("/", 1)[1]
        for key, url in ccxt.binance().urls["api"].items()
        if isinstance(url, str) and url.startswith("https://")
    }
    urls["ws"] = {"spot": base.replace("http://", "ws://") + "/ws"}
    return urls

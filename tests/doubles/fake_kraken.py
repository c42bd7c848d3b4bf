"""A local fake of Kraken's spot REST API, for ccxt's real ``kraken`` class pointed at it.

It shares the account and the matching (balances, orders, several trades per order, stops firing)
with ``FakeBinance`` and answers in Kraken's own shapes, read from ccxt's ``kraken.py`` and
Kraken's REST docs, awkward parts included:

* every answer is ``{"error": [...], "result": {...}}`` with HTTP 200, a refusal included
  ("EOrder:Insufficient funds", "EOrder:Order minimum not met", "EGeneral:Invalid arguments",
  "EAPI:Invalid nonce", "EAPI:Rate limit exceeded", "EOrder:Unknown order");
* Kraken's own names: assets ``XXBT``/``XETH``/``USDT``, pairs ``XBTUSDT`` (altname) and
  ``XBT/USDT`` (wsname), with the engine's ``BTCUSDT`` kept inside;
* ``AddOrder`` answers ``txid`` and a one-line description only: no status, no trades;
* ``cl_ord_id`` is a UUID (with or without dashes) or free text of at most 18 characters, unique
  among open orders only (a closed order's id may be used again); ``userref`` is a 32-bit number;
  the two are mutually exclusive;
* ``QueryOrders`` needs the txid; ``OpenOrders`` and ``ClosedOrders`` (newest first, 50 a page
  by ``ofs``, from ``start``) filter by ``cl_ord_id`` or ``userref``; each lists trade ids
  only when asked ``trades=true``, and ``QueryTrades`` gives the trades themselves;
* a ``stop-loss`` (``price`` is the trigger) is a plain order: ``OpenOrders`` lists it and
  ``CancelOrder`` cancels it; once the price reaches the trigger it sells at market under the
  same txid;
* fees are charged per order, not per account: ``oflags`` ``fciq`` takes them in the quote coin,
  ``fcib`` in the base coin, and without either Kraken's documented defaults apply (quote when
  buying, base when selling); a trade's ``fee`` names no currency and is valued in the quote
  ("total fee (quote currency)"), whichever coin paid it;
* ``viqc`` (a market buy sized in the quote coin) makes the order's ``vol`` and ``vol_exec`` quote
  amounts, as Kraken documents them;
* private calls are POSTs signed with ``API-Sign``: base64 HMAC-SHA512, keyed by the
  base64-decoded secret, over the URI path followed by SHA256(nonce + POST data); a nonce not
  above the key's last one is refused ("EAPI:Invalid nonce": a nonce window of 0, Kraken's
  default);
* with ``limits`` on, the API counter of Kraken's Starter tier: each call but ``AddOrder`` and
  ``CancelOrder`` adds 1 (``TradesHistory`` 2), up to 15, decaying 0.33 a second; a call past it
  is refused "EAPI:Rate limit exceeded" (no header says how long to wait).

The market trades in lots of 0.00001 (the shared matching's; Kraken's XBT lot is 0.00000001),
so the pairs list 5 lot decimals.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from aiohttp import web

from tests.doubles.fake_exchange import FakeBinance, Order
from tests.doubles.loopback import serve_app

SECRET = base64.b64encode(b"test-secret").decode()  # Kraken's secrets are base64
# Kraken's asset ids and altnames for the engine's coins.
_ASSETS = {
    "BTC": ("XXBT", "XBT", 10),
    "ETH": ("XETH", "ETH", 10),
    "USDT": ("USDT", "USDT", 8),
    "USD": ("ZUSD", "USD", 4),
}
_INTERVALS = {"1": "1m", "5": "5m", "15": "15m", "60": "1h", "240": "4h", "1440": "1d"}
_FREE_TEXT = re.compile(r"[\x20-\x7e]{1,18}")
_UUID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STATUS = {"NEW": "open", "FILLED": "closed", "CANCELED": "canceled", "EXPIRED": "canceled"}
_COSTS = {"AddOrder": 0, "CancelOrder": 0, "TradesHistory": 2}
LOT_DECIMALS = 5
ORDER_MIN = 0.00005  # XBT
COST_MIN = 0.5  # USDT
LIMIT_MAX, LIMIT_DECAY = 15.0, 0.33  # the Starter tier's API counter


@dataclass
class FakeKraken(FakeBinance):
    secret: str = SECRET
    fee_rate: float = 0.0026  # what the account is charged (TradeVolume tells it)
    published_fee: float | None = None  # the first taker tier AssetPairs lists; None: fee_rate
    order_paths: tuple[str, ...] = ("/0/private/AddOrder",)
    flags: dict[int, set[str]] = field(default_factory=dict)  # oflags per order
    viqc_cost: dict[int, float] = field(default_factory=dict)  # the quote volume of a viqc buy
    last_nonce: int = 0
    skew_ms: int = 0  # the server clock's offset from the real clock (clock-skew tests)
    limits: bool = False  # the API counter is enforced
    counter: float = 0.0
    counter_at: float = 0.0
    # The counter's clock (seconds); a test passes time by shifting it.
    limit_clock: Callable[[], float] = time.monotonic

    def __setattr__(self, name: str, value: Any) -> None:
        """Kraken has no account-wide fee coin: each order's oflags choose (``_fee_asset``),
        so a soak's "quote" or "received" changes nothing, and no third coin exists."""
        if name == "fee_asset" and value not in ("quote", "received"):
            raise ValueError(f"Kraken takes fees in the base or the quote coin, not {value!r}")
        super().__setattr__(name, value)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_inject])
        get, post = app.router.add_get, app.router.add_post
        post("/_test/advance", self._advance)  # the crash soak's child steps the market
        for name, handler in (
            ("Time", self._kraken_time),
            ("Assets", self._assets),
            ("AssetPairs", self._pairs),
            ("Ticker", self._kraken_ticker),
            ("OHLC", self._ohlc),
        ):
            get(f"/0/public/{name}", handler)
        for name, handler in (
            ("BalanceEx", self._balance_ex),
            ("Balance", self._balance),
            ("AddOrder", self._add_order),
            ("CancelOrder", self._cancel_one),
            ("QueryOrders", self._query_orders),
            ("OpenOrders", self._open),
            ("ClosedOrders", self._closed),
            ("QueryTrades", self._query_trades),
            ("TradesHistory", self._history),
            ("TradeVolume", self._trade_volume),
        ):
            post(f"/0/private/{name}", self._kraken_signed(name, handler))
        return app

    # The wire -------------------------------------------------------------------------------

    def _kraken_signed(self, name: str, handler: Any) -> Any:
        async def checked(request: web.Request) -> web.StreamResponse:
            body = await request.text()
            params = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
            nonce = params.get("nonce", "")
            digest = hashlib.sha256((nonce + body).encode()).digest()
            expected = base64.b64encode(
                hmac.new(
                    base64.b64decode(self.secret), request.path.encode() + digest, hashlib.sha512
                ).digest()
            ).decode()
            if request.headers.get("API-Key") != self.api_key:
                return _error("EAPI:Invalid key")
            if not hmac.compare_digest(request.headers.get("API-Sign", ""), expected):
                return _error("EAPI:Invalid signature")
            if not nonce.isdigit() or int(nonce) <= self.last_nonce:
                return _error("EAPI:Invalid nonce")
            self.last_nonce = int(nonce)
            if not self._spend(_COSTS.get(name, 1)):
                return _error("EAPI:Rate limit exceeded")
            return await handler(params)

        return checked

    def _spend(self, cost: float) -> bool:
        """Kraken's API counter: False when this call would take it past its maximum."""
        if not self.limits:
            return True
        now = self.limit_clock()
        self.counter = max(0.0, self.counter - (now - self.counter_at) * LIMIT_DECAY)
        self.counter_at = now
        if self.counter + cost > LIMIT_MAX:
            return False
        self.counter += cost
        return True

    def pair_id(self, symbol: str) -> str:
        return _ASSETS[symbol[:-4]][1] + _ASSETS[symbol[-4:]][1]

    def _symbol(self, pair: str) -> str | None:
        """The engine's symbol of a Kraken pair id, altname or wsname."""
        for symbol in self._symbols():
            if pair in (self.pair_id(symbol), self._wsname(symbol)):
                return symbol
        return None

    def _wsname(self, symbol: str) -> str:
        return f"{_ASSETS[symbol[:-4]][1]}/{_ASSETS[symbol[-4:]][1]}"

    def _symbols(self) -> list[str]:
        listed = {symbol for symbol, _ in self.candles} | {"BTCUSDT", "ETHUSDT"} | set(self.prices)
        return sorted(s for s in listed if s[:-4] in _ASSETS and s[-4:] in _ASSETS)

    # Public ---------------------------------------------------------------------------------

    async def _kraken_time(self, request: web.Request) -> web.Response:
        # The real clock (nonces and the client's offset are measured on it), shifted by skew_ms.
        now = time.time() + self.skew_ms / 1000
        return _ok({"unixtime": int(now), "rfc1123": formatdate(now, usegmt=True)})

    async def _assets(self, request: web.Request) -> web.Response:
        return _ok(
            {
                asset: {
                    "aclass": "currency",
                    "altname": altname,
                    "decimals": decimals,
                    "display_decimals": min(decimals, 5),
                    "collateral_value": 1.0,
                    "status": "enabled",
                }
                for asset, altname, decimals in _ASSETS.values()
            }
        )

    async def _pairs(self, request: web.Request) -> web.Response:
        return _ok(
            {
                self.pair_id(symbol): {
                    "altname": self.pair_id(symbol),
                    "wsname": self._wsname(symbol),
                    "aclass_base": "currency",
                    "base": _ASSETS[symbol[:-4]][0],
                    "aclass_quote": "currency",
                    "quote": _ASSETS[symbol[-4:]][0],
                    "lot": "unit",
                    "cost_decimals": 5,
                    "pair_decimals": 1,
                    "lot_decimals": LOT_DECIMALS,
                    "lot_multiplier": 1,
                    "leverage_buy": [],
                    "leverage_sell": [],
                    "fees": [
                        [
                            0,
                            (self.fee_rate if self.published_fee is None else self.published_fee)
                            * 100,
                        ],
                        [50000, 0.24],
                    ],
                    "fees_maker": [[0, 0.16], [50000, 0.14]],
                    "fee_volume_currency": "ZUSD",
                    "margin_call": 80,
                    "margin_stop": 40,
                    "ordermin": f"{ORDER_MIN}",
                    "costmin": f"{COST_MIN}",
                    "tick_size": "0.1",
                    "status": "online",
                }
                for symbol in self._symbols()
            }
        )

    async def _kraken_ticker(self, request: web.Request) -> web.Response:
        pair = request.query.get("pair", "")
        symbol = self._symbol(pair)
        if symbol is None or symbol not in self.prices:
            return _error("EQuery:Unknown asset pair")
        price = f"{self.prices[symbol]}"
        return _ok(
            {
                self.pair_id(symbol): {
                    "a": [price, "1", "1.000"],
                    "b": [price, "1", "1.000"],
                    "c": [price, "0.001"],
                    "v": ["0", "0"],
                    "p": [price, price],
                    "t": [0, 0],
                    "l": [price, price],
                    "h": [price, price],
                    "o": price,
                }
            }
        )

    async def _ohlc(self, request: web.Request) -> web.Response:
        """The last 720 candles at most, the forming one included, those after ``since``
        (seconds) only; ``last`` is the newest committed candle's time."""
        query = request.query
        symbol = self._symbol(query.get("pair", ""))
        interval = _INTERVALS.get(query.get("interval", "1"))
        if symbol is None:
            return _error("EQuery:Unknown asset pair")
        frame = self.candles.get((symbol, interval or ""))
        if interval is None or frame is None:
            return _error("EGeneral:Invalid arguments")
        shown = frame[frame["timestamp"] <= self.now_ms].iloc[-720:]
        since_ms = int(float(query.get("since", 0)) * 1000)
        chosen = shown[shown["timestamp"] > since_ms]
        rows = [
            [int(t) // 1000, f"{o}", f"{h}", f"{lo}", f"{c}", f"{c}", f"{v}", 1]
            for t, o, h, lo, c, v in chosen.itertuples(index=False, name=None)
        ]
        last = int(shown["timestamp"].iloc[-2]) // 1000 if len(shown) > 1 else 0
        return _ok({self.pair_id(symbol): rows, "last": last})

    # Account --------------------------------------------------------------------------------

    def _assets_held(self) -> list[tuple[str, float, float]]:
        """(Kraken asset id, total, held by orders) per coin the account has."""
        coins = sorted(set(self.balances) | set(self.locked))
        return [
            (
                _ASSETS[c][0] if c in _ASSETS else c,
                self.balances.get(c, 0.0) + self.locked.get(c, 0.0),
                self.locked.get(c, 0.0),
            )
            for c in coins
        ]

    async def _balance_ex(self, params: dict[str, str]) -> web.Response:
        return _ok(
            {
                asset: {
                    "balance": f"{total:.10f}",
                    "hold_trade": f"{held:.10f}",
                    "credit": "0.0000",
                    "credit_used": "0.0000",
                }
                for asset, total, held in self._assets_held()
            }
        )

    async def _balance(self, params: dict[str, str]) -> web.Response:
        return _ok({asset: f"{total:.10f}" for asset, total, _ in self._assets_held()})

    async def _trade_volume(self, params: dict[str, str]) -> web.Response:
        """TradeVolume: the account's 30-day volume and, for each pair of ``pair`` (a comma
        list), its own fee in percent (``fees``: taker, ``fees_maker``), as strings."""
        pairs = [pair for pair in params.get("pair", "").split(",") if pair]
        if any(self._symbol(pair) is None for pair in pairs):
            return _error("EQuery:Unknown asset pair")

        def tier(fee: float, top: float) -> dict[str, str]:
            return {
                "fee": f"{fee:.4f}",
                "minfee": "0.1000",
                "maxfee": f"{top:.4f}",
                "nextfee": f"{max(fee - 0.02, 0.0):.4f}",
                "tiervolume": "0.0000",
                "nextvolume": "50000.0000",
            }

        return _ok(
            {
                "currency": "ZUSD",
                "volume": "0.0000",
                "fees": {pair: tier(self.fee_rate * 100, 0.26) for pair in pairs},
                "fees_maker": {pair: tier(0.16, 0.16) for pair in pairs},
            }
        )

    # Orders ---------------------------------------------------------------------------------

    async def _add_order(self, params: dict[str, str]) -> web.Response:
        """An order: the answer is its txid and a description, nothing more."""
        symbol = self._symbol(params.get("pair", ""))
        if symbol is None:
            return _error("EQuery:Unknown asset pair")
        refused = self._id_refusal(params)
        if refused:
            return _error(refused)
        side, kind = params.get("type", ""), params.get("ordertype", "")
        flags = {flag for flag in params.get("oflags", "").split(",") if flag}
        sized = _shape_refusal(side, kind, flags) or self._size(params, symbol, kind, flags)
        if isinstance(sized, str):
            return _error(sized)
        amount, level = sized
        engine_kind = {"market": "MARKET", "limit": "LIMIT", "stop-loss": "STOP_LOSS"}[kind]
        ours = params.get("cl_ord_id") or params.get("userref", "")
        serial = len(self.orders) + 1
        self.flags[serial] = flags  # read while it fills
        if "viqc" in flags:
            self.viqc_cost[serial] = float(params["volume"])
        order = self.open_order(ours, symbol, side.upper(), engine_kind, amount, level)
        if order is None:
            return _error("EOrder:Insufficient funds")
        return _ok(
            {
                "descr": {"order": _description(order, self.pair_id(symbol), params["volume"])},
                "txid": [txid(order)],
            }
        )

    def _size(
        self, params: dict[str, str], symbol: str, kind: str, flags: set[str]
    ) -> tuple[float, float] | str:
        """The order's amount in coins and its level (limit or trigger), or why Kraken refuses
        its volume."""
        try:
            volume = float(params["volume"])
            level = float(params["price"]) if kind != "market" else 0.0
        except (KeyError, ValueError):
            return "EGeneral:Invalid arguments:volume"
        price = level if kind == "limit" else self.prices[symbol]
        if "viqc" in flags:  # whole lots of what the quote volume buys
            amount = int(volume / price * 10**LOT_DECIMALS) / 10**LOT_DECIMALS
        elif round(volume, LOT_DECIMALS) != volume:
            return "EGeneral:Invalid arguments:volume"
        else:
            amount = volume
        if amount < ORDER_MIN:
            return "EOrder:Order minimum not met"
        if amount * price < COST_MIN:
            return "EOrder:Cost minimum not met"
        return amount, level

    def _id_refusal(self, params: dict[str, str]) -> str | None:
        """Why Kraken refuses the order's cl_ord_id or userref, if it does."""
        ours, userref = params.get("cl_ord_id"), params.get("userref")
        if ours is not None and userref is not None:
            return "EGeneral:Invalid arguments:cl_ord_id and userref are mutually exclusive"
        if userref is not None and not (
            userref.lstrip("-").isdigit() and -(2**31) <= int(userref) < 2**31
        ):
            return "EGeneral:Invalid arguments:userref"
        if ours is None:
            return None
        if not (_UUID.fullmatch(ours) or _FREE_TEXT.fullmatch(ours)):
            return "EGeneral:Invalid arguments:cl_ord_id"
        if any(o.status == "NEW" and o.client_id == ours for o in self.orders.values()):
            return "EOrder:Duplicate cl_ord_id"  # unique among open orders only
        return None

    def _fee_asset(self, order: Order, cost: float) -> str:
        """Per order: fciq the quote, fcib the base; Kraken's default: quote buying, base
        selling."""
        flags = self.flags.get(order.order_id, set())
        if "fcib" in flags or ("fciq" not in flags and order.side == "SELL"):
            return order.symbol[:-4]
        return order.symbol[-4:]

    def _find_txid(self, wanted: str) -> Order | None:
        return next((o for o in self.orders.values() if txid(o) == wanted), None)

    async def _cancel_one(self, params: dict[str, str]) -> web.Response:
        wanted, ours = params.get("txid"), params.get("cl_ord_id")
        for order in self.orders.values():
            named = txid(order) == wanted or (ours is not None and order.client_id == ours)
            if named and order.status == "NEW":
                self.cancel(order)
                return _ok({"count": 1, "pending": False})
        return _error("EOrder:Unknown order")

    async def _query_orders(self, params: dict[str, str]) -> web.Response:
        wanted = [t for t in params.get("txid", "").split(",") if t]
        if not wanted or len(wanted) > 50:
            return _error("EGeneral:Invalid arguments:txid")
        found = {}
        for name in wanted:
            order = self._find_txid(name)
            if order is None:
                return _error("EOrder:Invalid order")
            found[name] = self._order_json(order, _asked(params, "trades"))
        return _ok(found)

    def _listed(self, params: dict[str, str], *, closed: bool) -> list[Order]:
        """Orders of a list read, newest first, filtered by ``cl_ord_id`` or ``userref``."""
        ours = params.get("cl_ord_id") or params.get("userref")
        return [
            o
            for o in reversed(self.orders.values())
            if (o.status != "NEW") == closed and ours in (None, o.client_id)
        ]

    async def _open(self, params: dict[str, str]) -> web.Response:
        trades = _asked(params, "trades")
        return _ok(
            {
                "open": {
                    txid(o): self._order_json(o, trades) for o in self._listed(params, closed=False)
                }
            }
        )

    async def _closed(self, params: dict[str, str]) -> web.Response:
        """``start``: only orders opened after it (unix seconds, exclusive); ``end``: up to it
        (unix seconds, inclusive)."""
        start = float(params.get("start") or 0) * 1000
        end = float(params["end"]) * 1000 if params.get("end") else float("inf")
        listed = [o for o in self._listed(params, closed=True) if start < o.time <= end]
        offset = int(params.get("ofs", 0))
        page = listed[offset : offset + 50]
        trades = _asked(params, "trades")
        return _ok(
            {"closed": {txid(o): self._order_json(o, trades) for o in page}, "count": len(listed)}
        )

    def _trades_of(self, orders: list[Order]) -> dict[str, dict[str, Any]]:
        return {
            trade_txid(fill["tradeId"]): {
                "ordertxid": txid(o),
                "postxid": "",
                "pair": self.pair_id(o.symbol),
                "time": o.time / 1000,
                "type": o.side.lower(),
                "ordertype": "market" if o.kind == "STOP_LOSS" else o.kind.lower(),
                "price": fill["price"],
                "cost": f"{float(fill['price']) * float(fill['qty']):.5f}",
                "fee": _quote_fee(o, fill),
                "vol": fill["qty"],
                "margin": "0.00000",
                "leverage": "0",
                "misc": "",
                "trade_id": fill["tradeId"],
                "maker": False,
            }
            for o in orders
            for fill in o.fills
        }

    async def _query_trades(self, params: dict[str, str]) -> web.Response:
        wanted = {t for t in params.get("txid", "").split(",") if t}
        if not wanted or len(wanted) > 20:
            return _error("EGeneral:Invalid arguments:txid")
        trades = self._trades_of(list(self.orders.values()))
        if wanted - set(trades):
            return _error("EGeneral:Invalid arguments:txid")
        return _ok({name: trades[name] for name in sorted(wanted)})

    async def _history(self, params: dict[str, str]) -> web.Response:
        trades = self._trades_of(list(reversed(self.orders.values())))
        return _ok({"trades": trades, "count": len(trades)})

    def _order_json(self, order: Order, trades: bool) -> dict[str, Any]:
        flags = self.flags.get(order.order_id, set())
        viqc = order.order_id in self.viqc_cost
        fee = sum(float(fill["commission"]) for fill in order.fills)
        average = order.quote / order.executed if order.executed else 0.0
        kind = {"MARKET": "market", "LIMIT": "limit", "STOP_LOSS": "stop-loss"}[order.kind]
        volume = f"{self.viqc_cost[order.order_id] if viqc else order.quantity:.8f}"
        level = f"{order.stop_price:.1f}" if order.kind != "MARKET" else "0"
        ours = order.client_id
        info: dict[str, Any] = {
            "refid": None,
            "userref": 0,
            "cl_ord_id": ours or None,
            "status": _STATUS[order.status],
            "opentm": order.time / 1000,
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": self.pair_id(order.symbol),
                "type": order.side.lower(),
                "ordertype": kind,
                "price": level,
                "price2": "0",
                "leverage": "none",
                "order": _description(order, self.pair_id(order.symbol), volume),
                "close": "",
            },
            # with viqc Kraken counts the order's volumes in the quote coin
            "vol": volume,
            "vol_exec": f"{order.quote:.8f}" if viqc else f"{order.executed:.8f}",
            "cost": f"{order.quote:.5f}",
            "fee": f"{fee:.5f}",
            "price": f"{average:.1f}",
            "stopprice": "0.00000",
            "limitprice": "0.00000",
            "misc": "stopped" if order.kind == "STOP_LOSS" and order.executed else "",
            "oflags": ",".join(sorted(flags)),
        }
        if order.status != "NEW":
            info["closetm"] = order.time / 1000
            info["reason"] = None if order.status == "FILLED" else "User requested"
        if trades and order.fills:
            info["trades"] = [trade_txid(fill["tradeId"]) for fill in order.fills]
        return info


def txid(order: Order) -> str:
    """Kraken's order id (six, five and six characters) for the engine's order."""
    return f"O{order.order_id:05d}-KRKNF-AKEORD"


def trade_txid(trade_id: int) -> str:
    return f"T{trade_id:05d}-KRKNF-AKETRD"


def trade_key(symbol: str, trade_id: object) -> str:
    """The trade id the books give a trade of the fake (ccxt's market id, dash, trade txid)."""
    return f"{_ASSETS[symbol[:-4]][1]}{_ASSETS[symbol[-4:]][1]}-{trade_txid(int(str(trade_id)))}"


def _shape_refusal(side: str, kind: str, flags: set[str]) -> str | None:
    """Why Kraken refuses the order's side, type or flags, if it does."""
    if side not in ("buy", "sell") or kind not in ("market", "limit", "stop-loss"):
        return "EGeneral:Invalid arguments"
    if flags - {"fciq", "fcib", "viqc", "post", "nompp"} or {"fciq", "fcib"} <= flags:
        return "EGeneral:Invalid arguments:oflags"
    if "viqc" in flags and (kind, side) != ("market", "buy"):
        return "EGeneral:Invalid arguments:viqc"
    if kind == "stop-loss" and side != "sell":  # the shared matching rests sell stops only
        return "EGeneral:Invalid arguments"
    return None


def _description(order: Order, pair: str, amount: str) -> str:
    """AddOrder's one line: "buy 0.00500000 XBTUSDT @ market" (the volume as sent)."""
    if order.kind == "LIMIT":
        return f"{order.side.lower()} {amount} {pair} @ limit {order.stop_price:.1f}"
    if order.kind == "STOP_LOSS":
        return f"{order.side.lower()} {amount} {pair} @ stop loss {order.stop_price:.1f}"
    return f"{order.side.lower()} {amount} {pair} @ market"


def _quote_fee(order: Order, fill: dict[str, Any]) -> str:
    """A trade's ``fee`` as Kraken documents it, in the quote coin, whatever coin paid it."""
    fee = float(fill["commission"])
    if fill["commissionAsset"] == order.symbol[:-4]:
        fee *= float(fill["price"])
    return f"{fee:.8f}"


def _asked(params: dict[str, str], name: str) -> bool:
    return params.get(name, "").lower() in ("true", "1")


def _ok(result: Any) -> web.Response:
    return web.json_response({"error": [], "result": result})


def _error(message: str) -> web.Response:
    return web.json_response({"error": [message]})


@asynccontextmanager
async def serve_kraken(fake: FakeKraken) -> AsyncIterator[str]:
    """Run the fake on a free loopback port; yields its base URL."""
    async with serve_app(fake.app()) as base:
        yield base


def kraken_config(base: str) -> dict[str, Any]:
    """ccxt settings that send Kraken's REST calls to ``base``."""
    return {
        "urls": {"api": {"public": base, "private": base}},
        "has": {"watchOHLCV": False, "watchTicker": False},  # no Kraken websocket in the fake
    }

"""A local fake of Binance's spot REST API, served over HTTP on loopback for unmodified ccxt.

It serves what ccxt's public calls need (exchangeInfo for load_markets, klines, time) from real
candles handed to it, and injects faults on request. ``point_ccxt_at`` rewrites an exchange's
base URLs to it (recipe A of the team's EXCHANGE_TESTING notes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from aiohttp import web

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
    """Answer the next ``times`` requests to ``path`` with this instead of the real thing."""

    path: str
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class FakeBinance:
    now_ms: int
    candles: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def add_candles(self, symbol: str, interval: str, frame: pd.DataFrame) -> None:
        self.candles[(symbol, interval)] = frame.reset_index(drop=True)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_inject])
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/fapi/v1/exchangeInfo", self._empty_info)
        app.router.add_get("/dapi/v1/exchangeInfo", self._empty_info)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/klines", self._klines)
        return app

    @web.middleware
    async def _record_and_inject(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.query)))
        for fault in self.faults:
            if fault.path == request.path and fault.times > 0:
                fault.times -= 1
                return web.json_response(fault.body, status=fault.status, headers=fault.headers)
        return await handler(request)

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.now_ms})

    async def _empty_info(self, request: web.Request) -> web.Response:
        return web.json_response({"timezone": "UTC", "serverTime": self.now_ms, "symbols": []})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        symbols = sorted({symbol for symbol, _ in self.candles} | {"BTCUSDT", "ETHUSDT"})
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self.now_ms,
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [_symbol(name) for name in symbols],
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


def _symbol(name: str) -> dict[str, Any]:
    base, quote = name[:-4], name[-4:]
    return {
        "symbol": name,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01",
                "maxPrice": "1000000.00",
                "tickSize": "0.01",
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
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def binance_urls(base: str) -> dict[str, str]:
    """ccxt ``urls.api`` overrides that send every Binance REST family to ``base``."""
    import ccxt

    return {
        key: base + "/" + url.split("://", 1)[1].split("/", 1)[1]
        for key, url in ccxt.binance().urls["api"].items()
        if isinstance(url, str) and url.startswith("https://")
    }

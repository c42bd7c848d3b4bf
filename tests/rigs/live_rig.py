"""The live stack on the fake exchange: the real service, ccxt and SQLite, on a test clock.

Every entry point takes ``venue``: the exchange id whose fake and ccxt class run (``VENUES``);
Binance by default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from bot.app.bootstrap import Trading, assemble_on_exchange, credentials
from bot.app.config import Settings
from bot.app.secret_values import Secrets
from bot.app.twin_root import attach_twin, twin_path
from bot.core.clock import FakeClock
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.market.streaming import StreamingFeed
from bot.ops.scheduler import Jobs
from storage.db import open_database
from tests.doubles.fake_bybit import FakeBybit, bybit_config, limit_spent_headers
from tests.doubles.fake_coinbase import (
    FakeCoinbase,
    coinbase_config,
    coinbase_trade_key,
    limit_body,
)
from tests.doubles.fake_exchange import FakeBinance, binance_urls, serve
from tests.doubles.fake_kraken import SECRET as KRAKEN_SECRET
from tests.doubles.fake_kraken import FakeKraken, kraken_config
from tests.doubles.fake_kraken import trade_key as kraken_trade_key
from tests.doubles.fake_okx import FakeOkx, okx_config
from tests.rigs.checked import check_configured

PAIR = "BTC/USDT"
HOUR = timedelta(hours=1)
SECRETS = Secrets(
    exchange_key="test-key", exchange_secret="test-secret", exchange_password="test-pass"
)


@dataclass(frozen=True)
class VenueRig:
    """One venue's fake and how ccxt reaches it, and the request paths a fault soak tells
    apart (placements, market data, start-up)."""

    name: str
    fake: type[FakeBinance]
    config: Callable[[str], dict[str, Any]]  # ccxt settings for the fake at a base URL
    order_paths: frozenset[str]
    market_data: frozenset[str]
    start_up: frozenset[str]
    time_path: str  # the public clock (a child process waits for the fake with it)
    # The venue's own answers for a fault soak: (HTTP status, body) of a rate limit, a
    # refusal and a clock-skew refusal.
    refusals: dict[str, tuple[int, Any]]
    # The headers of a rate-limit answer that say how long to wait (``wait`` seconds).
    limit_headers: Callable[[int], dict[str, str]] = lambda wait: {"Retry-After": str(wait)}
    secret: str = "test-secret"  # the API secret ccxt signs with (Kraken's must be base64)
    # How long (seconds) a fault soak's rate limits last: any of these when the venue says how
    # long in its answer; its fixed window when it does not.
    limit_waits: tuple[int, ...] = (1, 2, 3)
    # The trade id the books give a fake's trade, when the venue's ids are not the fake's.
    books_trade: Callable[[str, object], str] | None = None

    def trade_key(self, symbol: str, trade_id: object) -> str:
        """The trade id the books give a fake's trade (ccxt's market id, dash, trade id)."""
        if self.books_trade is not None:
            return self.books_trade(symbol, trade_id)
        market = f"{symbol[:-4]}-{symbol[-4:]}" if self.name == "okx" else symbol
        return f"{market}-{trade_id}"


def _bybit(code: int, message: str) -> dict[str, Any]:
    return {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": 0}


VENUES = {
    "binance": VenueRig(
        "binance",
        FakeBinance,
        lambda base: {"urls": {"api": binance_urls(base)}},
        frozenset({"/api/v3/order"}),
        frozenset({"/api/v3/klines", "/api/v3/ticker/24hr"}),
        frozenset(
            {
                "/api/v3/exchangeInfo",
                "/api/v3/time",
                "/fapi/v1/exchangeInfo",
                "/dapi/v1/exchangeInfo",
                "/sapi/v1/capital/config/getall",
                "/sapi/v1/margin/allPairs",
                "/sapi/v1/margin/isolated/allPairs",
            }
        ),
        "/api/v3/time",
        {
            "rate_limit": (429, {"code": -1003, "msg": "Too much request weight used"}),
            "rejected": (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}),
            "clock_skew": (
                400,
                {
                    "code": -1021,
                    "msg": "Timestamp for this request was 1000ms ahead of the server's time.",
                },
            ),
        },
    ),
    "okx": VenueRig(
        "okx",
        FakeOkx,
        okx_config,
        frozenset(FakeOkx.order_paths),
        frozenset(
            {"/api/v5/market/candles", "/api/v5/market/history-candles", "/api/v5/market/ticker"}
        ),
        frozenset(
            {"/api/v5/public/time", "/api/v5/public/instruments", "/api/v5/asset/currencies"}
        ),
        "/api/v5/public/time",
        {
            "rate_limit": (429, {"code": "50011", "msg": "Rate limit reached.", "data": []}),
            "rejected": (
                200,
                {
                    "code": "1",
                    "msg": "All operations failed",
                    "data": [
                        {
                            "clOrdId": "",
                            "ordId": "",
                            "sCode": "51121",
                            "sMsg": "Order quantity must be a multiple of the lot size.",
                        }
                    ],
                },
            ),
            "clock_skew": (401, {"code": "50102", "msg": "Timestamp request expired", "data": []}),
        },
    ),
    "bybit": VenueRig(
        "bybit",
        FakeBybit,
        bybit_config,
        frozenset(FakeBybit.order_paths),
        frozenset({"/v5/market/kline", "/v5/market/tickers"}),
        frozenset({"/v5/market/time", "/v5/market/instruments-info", "/v5/asset/coin/query-info"}),
        "/v5/market/time",
        {
            "rate_limit": (200, _bybit(10006, "Too many visits!")),
            "rejected": (200, _bybit(170136, "Order quantity below the lower limit.")),
            "clock_skew": (
                200,
                _bybit(
                    10002,
                    "invalid request, please check your server timestamp or recv_window param",
                ),
            ),
        },
        limit_spent_headers,
    ),
    "kraken": VenueRig(
        "kraken",
        FakeKraken,
        kraken_config,
        frozenset(FakeKraken.order_paths),
        frozenset({"/0/public/OHLC", "/0/public/Ticker"}),
        frozenset({"/0/public/Time", "/0/public/Assets", "/0/public/AssetPairs"}),
        "/0/public/Time",
        {
            "rate_limit": (200, {"error": ["EAPI:Rate limit exceeded"]}),
            "rejected": (200, {"error": ["EOrder:Order minimum not met"]}),
            "clock_skew": (200, {"error": ["EAPI:Invalid nonce"]}),
        },
        lambda wait: {},  # Kraken names no wait: the profile's limit_wait covers its counter
        secret=KRAKEN_SECRET,
        books_trade=kraken_trade_key,
    ),
    "coinbase": VenueRig(
        "coinbase",
        FakeCoinbase,
        coinbase_config,
        frozenset(FakeCoinbase.order_paths),
        frozenset(
            {
                "/api/v3/brokerage/market/products/BTC-USDT/candles",
                "/api/v3/brokerage/market/products/BTC-USDT/ticker",
            }
        ),
        frozenset(
            {
                "/api/v3/brokerage/time",
                "/api/v3/brokerage/market/products",
                "/api/v3/brokerage/transaction_summary",
                "/v2/currencies",
                "/v2/currencies/crypto",
                "/v2/exchange-rates",
            }
        ),
        "/api/v3/brokerage/time",
        {
            "rate_limit": (429, limit_body()),
            "rejected": (
                400,
                {
                    "error": "INVALID_ARGUMENT",
                    "error_details": "base_size is too small",
                    "message": "base_size is too small",
                },
            ),
            "clock_skew": (
                401,
                {
                    "errors": [
                        {"id": "authentication_error", "message": "request timestamp expired"}
                    ]
                },
            ),
        },
        lambda wait: {},  # no Retry-After: the limits are per second
        limit_waits=(1,),
        books_trade=coinbase_trade_key,
    ),
}


def venue_secrets(venue: str, secrets: Secrets = SECRETS) -> Secrets:
    """``secrets`` with the API secret ``venue``'s fake checks."""
    return dataclasses.replace(secrets, exchange_secret=VENUES[venue].secret)


@asynccontextmanager
async def venue_client[F: FakeBinance](
    venue: str, fake: F, **options: Any
) -> AsyncIterator[tuple[F, CcxtExchange]]:
    """ccxt's class for ``venue``, markets loaded, on ``fake`` (that venue's) over loopback;
    ``options``: the adapter's (``sleep``, say). No client-side pacing: a fake's own limits
    are what a test of them turns on."""
    rig = VENUES[venue]
    keys = {
        "apiKey": SECRETS.exchange_key,
        "secret": rig.secret,
        "password": SECRETS.exchange_password,
    }
    async with serve(fake) as base:
        exchange = CcxtExchange.create(
            venue,
            {**rig.config(base), "enableRateLimit": False},
            credentials=keys,
            attempts=3,
            backoff=0.01,
            **options,
        )
        try:
            await exchange.load_markets()
            yield fake, exchange
        finally:
            await exchange.close()


def live_settings(
    tmp_path: Path,
    base: str,
    params: dict[str, float] | None = None,
    client: dict[str, Any] | None = None,
    risk: dict[str, float] | None = None,
    venue: str = "binance",
    drift: dict[str, Any] | None = None,
    strategy: str = "ema_cross",
) -> Settings:
    """``client``: more ccxt options (a short timeout, say); ``risk``: limits to change;
    ``drift``: the [drift] settings (None: no paper twin); ``strategy``: the pair's."""
    # No client-side pacing against a local fake: it only makes the suite slower.
    ccxt_config = {**VENUES[venue].config(base), "enableRateLimit": False, **(client or {})}
    return Settings.model_validate(
        {
            "mode": "live",
            "data_dir": tmp_path,
            "exchange": {"name": venue, "ccxt_config": ccxt_config},
            "market_data": {"source": "exchange"},
            "risk": {"max_position_fraction": 1.0, **(risk or {})},
            "drift": drift if drift is not None else {"enabled": False},
            "pairs": [
                {"pair": PAIR, "capital_share": 0.5, "strategy": strategy, "params": params or {}}
            ],
        }
    )


def funded_fake(
    candles: pd.DataFrame, venue: str = "binance", fee_asset: str | None = None
) -> FakeBinance:
    """The fake exchange with 1,000 USDT in the account and ``candles`` as BTC/USDT 1h, its
    fees in ``fee_asset`` (see ``FakeBinance``; None: the venue fake's own). With "BNB" the
    user keeps 0.05 BNB (at 600 USDT) for fees: about 40 trades' worth, then fees come out of
    the coins as on Binance."""
    fake = VENUES[venue].fake(now_ms=0, balances={"USDT": 1000.0})
    fake.add_candles("BTCUSDT", "1h", candles)
    if fee_asset is not None:
        fake.fee_asset = fee_asset
    if fee_asset == "BNB":
        fake.prices["BNBUSDT"] = 600.0
        fake.balances["BNB"] = 0.05
    return fake


class Market:
    """The fake exchange and the test clock moved together, prices at the forming candle."""

    def __init__(self, fake: FakeBinance, clock: FakeClock) -> None:
        self.fake, self.clock = fake, clock

    def at(self, moment: datetime) -> None:
        self.clock.set(moment)
        self.fake.move_to(int(moment.timestamp() * 1000))


@asynccontextmanager
async def live_stack(
    tmp_path: Path,
    fake: FakeBinance,
    start: datetime,
    params: dict[str, float] | None = None,
    *,
    client: dict[str, Any] | None = None,
    risk: dict[str, float] | None = None,
    attempts: int = 2,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    venue: str = "binance",
    drift: dict[str, Any] | None = None,
    strategy: str = "ema_cross",
) -> AsyncIterator[tuple[Trading, Market, Jobs]]:
    """``attempts`` and ``sleep``: the adapter's retries and how it waits between them;
    ``venue``: the exchange id (``fake`` must be that venue's, see ``funded_fake``);
    ``drift``: the [drift] settings: a paper twin (``trading.service.twin``) when enabled;
    ``strategy``: BTC/USDT's (one of the installed registry's)."""
    clock = FakeClock(start)
    market = Market(fake, clock)
    market.at(start)
    async with serve(fake) as base:
        settings = live_settings(tmp_path, base, params, client, risk, venue, drift, strategy)
        exchange = CcxtExchange.create(
            venue,
            settings.exchange.ccxt_config,
            credentials=credentials(settings, venue_secrets(venue)),
            attempts=attempts,
            backoff=0.01,
            **({"sleep": sleep} if sleep else {}),
        )
        feed = StreamingFeed(exchange)
        try:
            await exchange.load_markets()
            async with AsyncExitStack() as stack:
                db = await stack.enter_async_context(open_database(settings.database_path))
                await check_configured(db, settings)  # the user ran `strategy check` on them
                jobs = Jobs(clock)
                trading = await assemble_on_exchange(db, settings, exchange, feed, clock, jobs)
                twin_file = twin_path(settings)
                if twin_file is not None:
                    twin_db = await stack.enter_async_context(open_database(twin_file))
                    await attach_twin(twin_db, db, settings, trading)
                yield trading, market, jobs
        finally:
            await feed.close()
            await exchange.close()


async def hourly(trading: Trading, market: Market, start: datetime, end: datetime) -> None:
    moment = start
    while moment < end:
        market.at(moment)
        await trading.service.tick("1h")
        moment += HOUR

"""The only module that imports ccxt. It returns our types and raises our exceptions.

Errors are translated in one place (``translate``) by what the caller should do: retry
(network trouble, timeouts, 5xx, rate limits), reject (the exchange refused: never retried),
or fail hard (authentication). Retries live here and nowhere else: exponential backoff with
jitter, never shorter than a Retry-After the exchange sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import difflib
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import numpy as np
import pandas as pd
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
)
from tenacity.wait import wait_exponential_jitter

from bot.core.domain import (
    DustConversion,
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
from bot.core.errors import (
    BotError,
    ClockSkew,
    ConfigError,
    ExchangeAuthFailed,
    ExchangeRejected,
    ExchangeUnavailable,
    InsufficientFunds,
    NotFound,
    OrderOutcomeUnknown,
    UserInputError,
)
from bot.exchange import dust
from bot.exchange.account_fees import AccountFees
from bot.exchange.venues import Lookup, carries, profile_for
from bot.market.candle_files import COLUMNS
from bot.ops.telemetry import EXCHANGE_ERRORS

log = logging.getLogger(__name__)
T = TypeVar("T")

_DEFAULT_TAKER_FEE = 0.001  # when the exchange states none
_TIMESTAMP_EXPIRED = "request timestamp expired"
# A SCAN reads the order lists from this long before the journal's created_at (put on the
# venue's clock by the offset measured at the lookup: the host's may be hours off) to this
# long after it (an order is sent right after its journal entry, retries and pauses
# included), so the pages it reads never grow with time; it gives up, leaving the outcome
# unknown, after this many pages.
_SCAN_MARGIN_MS = 15 * 60_000
_SCAN_SPAN_MS = 60 * 60_000
_SCAN_PAGES = 50


def translate(error: ccxt.BaseError, headers: Mapping[str, str] | None = None) -> BotError:
    """The one mapping from ccxt's exceptions to ours, by what the caller does next."""
    text = f"{type(error).__name__}: {error}"[:300]
    if isinstance(error, ccxt.AuthenticationError) and _TIMESTAMP_EXPIRED in str(error):
        # Coinbase's refusal of a stale timestamp ({"errors": [{"id": "authentication_error",
        # "message": "request timestamp expired"}]}), which ccxt maps by its id alone.
        return ClockSkew(text)
    if isinstance(error, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return ExchangeAuthFailed(text)
    if isinstance(error, ccxt.InsufficientFunds):
        return InsufficientFunds(text)
    if isinstance(error, ccxt.BadSymbol | ccxt.OrderNotFound):
        return NotFound(text)
    if isinstance(error, ccxt.InvalidNonce):  # e.g. Binance -1021: timestamp outside recvWindow
        return ClockSkew(text)
    if isinstance(error, ccxt.OperationFailed):  # network trouble, timeouts, 5xx, rate limits
        return ExchangeUnavailable(text, retry_after=_retry_after(headers))
    if type(error) is ccxt.ExchangeError:
        # Unclassified: ccxt's OKX and Bybit classes raise it for any answer without their
        # success code (a gateway's 5xx body included), so it is no proof of a refusal: the
        # outcome is unknown, and an order is looked up before anything is sent again.
        return ExchangeUnavailable(text, retry_after=_retry_after(headers))
    return ExchangeRejected(text)


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the venue asked us to wait: a Retry-After, or, from Bybit (which sends none),
    its X-Bapi-Limit-Reset-Timestamp less its Timenow (both the venue's own milliseconds, so
    no clock of ours is read), rounded up to a whole second like a Retry-After."""
    named = {key.lower(): value for key, value in (headers or {}).items()}
    try:
        if "retry-after" in named:
            return float(named["retry-after"])
        if named.get("x-bapi-limit-status") == "0" and "timenow" in named:
            reset, now = int(named["x-bapi-limit-reset-timestamp"]), int(named["timenow"])
            return float(math.ceil((reset - now) / 1000)) if reset > now else None
    except (KeyError, ValueError):
        return None
    return None


def published_taker_fee(exchange: str) -> float:
    """The venue's published base taker fee from ccxt's fee table, without the network: what
    the markets the live engine reads its fee from start from, for a backtest of a live account."""
    return float(getattr(ccxt, exchange)().fees["trading"]["taker"])


class CcxtExchange:
    """One ccxt client with markets loaded: market data (REST and streams), orders, balances."""

    def __init__(
        self,
        client: ccxt_async.Exchange,
        *,
        attempts: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``sleep`` waits between attempts (a soak passes simulated time)."""
        self._client = client
        self._retries = attempts
        # Set by one_attempt() for the task that asked only (and the tasks it starts): another
        # chat's read served meanwhile keeps its retries.
        self._one: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"one_attempt_{id(self)}", default=False
        )
        self._backoff = backoff
        self._sleep = sleep
        self._giving_up = asyncio.Event()  # a stop was asked: no more retries
        self.name: str = client.id
        # What differs between exchanges and ccxt does not say (bot/exchange/venues.py).
        self.profile = profile_for(client.id)
        self._stops: set[str] = set()  # client ids placed as stops by this process
        self._ours: dict[str, str] = {}  # wire id -> our id, for venues that cannot carry ours
        self.account_fees = AccountFees(client.id)  # the account's own, where read

    @classmethod
    def create(
        cls,
        name: str,
        ccxt_config: Mapping[str, Any],
        *,
        credentials: Mapping[str, str] | None = None,
        attempts: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> CcxtExchange:
        """A client for exchange ``name`` built from ``ccxt_config`` (options, proxies, URLs)
        and, for trading, ``credentials`` from the environment (apiKey, secret, password)."""
        if name not in ccxt_async.exchanges:
            close = difflib.get_close_matches(name, ccxt_async.exchanges, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserInputError(f"unknown exchange {name!r}{hint}")
        config = {"enableRateLimit": True, **dict(ccxt_config), **dict(credentials or {})}
        # Only the user's own options stand before the profile's (Bybit's account-type question
        # needs a key that may move funds, which a trading key must not; Coinbase's default
        # balances count held funds as free).
        config["options"] = {**profile_for(name).ccxt_options, **dict(config.get("options") or {})}
        # ccxt.pro's class adds the streams (watch_*) to the same REST client where it has them.
        family = ccxt_pro if name in ccxt_pro.exchanges else ccxt_async
        client = getattr(family, name)(config)
        return cls(client, attempts=attempts, backoff=backoff, sleep=sleep)

    async def close(self) -> None:
        await self._client.close()

    def stop_retrying(self) -> None:
        """A stop was asked: the request in flight is each call's last attempt and a wait
        between attempts ends now, so a tick in an outage ends within one request's timeout
        (an order still gets its one look-up: its outcome is never guessed)."""
        self._giving_up.set()

    @contextlib.contextmanager
    def one_attempt(self) -> Iterator[None]:
        """Within it each call of the task that entered it makes one attempt: an admin's
        command that must answer soon (its refusal is the outcome of a failure anyway)."""
        token = self._one.set(True)
        try:
            yield
        finally:
            self._one.reset(token)

    @property
    def _attempts(self) -> int:
        """How many attempts a call makes here: one within this task's one_attempt()."""
        return 1 if self._one.get() else self._retries

    async def _pause(self, seconds: float) -> None:
        """``sleep``, cut short by ``stop_retrying``."""
        if self._giving_up.is_set():
            return
        waits = [
            asyncio.ensure_future(self._sleep(seconds)),
            asyncio.ensure_future(self._giving_up.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def load_markets(self) -> None:
        """Markets with precision and limits, once; the clock offset first when trading, since
        signed start-up calls fail on a skewed clock."""
        warning = self.profile.warning()
        if warning:
            log.warning("%s", warning)
        problem = self.lookup_problem() if self._client.apiKey else None
        if problem:
            raise ConfigError(problem)
        if self._client.apiKey and self._client.has.get("fetchTime"):
            await self._call(self._client.load_time_difference)
        await self._call(self._client.load_markets)

    def check_pair(self, pair: str) -> None:
        markets = self._client.markets or {}
        if pair not in markets:
            close = difflib.get_close_matches(pair, list(markets), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise NotFound(f"{pair} is not listed on {self.name}{hint}")

    def check_timeframe(self, timeframe: str) -> None:
        offered = list(self._client.timeframes or {})
        if timeframe not in offered:
            raise UserInputError(
                f"{self.name} does not offer {timeframe} candles; it offers {', '.join(offered)}"
            )

    def price_decimals(self, pair: str) -> int | None:
        """How many decimals the exchange quotes ``pair``'s price in (its market's price
        precision: a tick size or a count of decimals, per the exchange's precision mode);
        None when the market is not loaded or counts significant digits."""
        market = (self._client.markets or {}).get(pair) or {}
        precision = (market.get("precision") or {}).get("price")
        if precision is None or self._client.precisionMode == ccxt.SIGNIFICANT_DIGITS:
            return None
        if self._client.precisionMode == ccxt.TICK_SIZE:
            tick = self._client.number_to_string(precision)
            return max(0, int(self._client.precision_from_string(tick)))
        return max(0, int(precision))

    def taker_fee(self, pair: str) -> float:
        """The fee rate a market order in ``pair`` pays: the account's own (``load_account_fees``;
        for a pair not read, the highest of those read and its own published one), else the
        venue's published one its markets state."""
        fee = self.account_fees.fee(pair, self._published_fee(pair))
        return fee if fee is not None else _DEFAULT_TAKER_FEE

    def _published_fee(self, pair: str) -> float | None:
        fee = (self._client.markets or {}).get(pair, {}).get("taker")
        return float(fee) if fee is not None else None

    async def load_account_fees(self, pairs: Sequence[str]) -> dict[str, float]:
        """Read the account's own taker fee for ``pairs`` where the venue tells it (its volume
        tier, a VIP rate, a promotion): entries are sized with it, since an account charged
        more than the published fee is refused a buy of all its cash, and the books would
        assume the wrong cost. Read again before a pair's buy once a day, and when a buy is
        refused for insufficient funds (bot/exchange/account_fees.py). Where the venue cannot
        say, or the read fails (a pair's failure keeps the others'), the published fee stays,
        and a log line says so. Returns the fees kept."""
        has = self._client.has
        found: dict[str, Any] = {}
        for pair in pairs:
            self.account_fees.tried(pair)
        try:
            if has.get("fetchTradingFee") is True:  # one request a pair: Binance, OKX, Kraken
                for pair in pairs:
                    found[pair] = await self._pair_fee(pair)
            elif has.get("fetchTradingFees"):  # the account's tier for every pair at once
                fees = await self._call(self._client.fetch_trading_fees, attempts=2)
                found = {pair: (fees.get(pair) or {}).get("taker") for pair in pairs}
        except BotError as error:
            log.warning(
                "%s: the account's fee could not be read (%s); sizing with the published taker fee",
                self.name,
                error,
            )
        read: dict[str, float] = {}
        for pair, fee in found.items():
            published = self._published_fee(pair)
            kept = None if fee is None else self.account_fees.record(pair, float(fee), published)
            if kept is not None:
                read[pair] = kept
                log.info(
                    "%s %s: the account's taker fee is %.4f%% (published %s)",
                    self.name,
                    pair,
                    kept * 100,
                    "unknown" if published is None else f"{published:.4%}",
                )
        unread = [pair for pair in pairs if pair not in read]
        if unread:
            log.warning(
                "%s tells no account fee for %s: sizing with %s",
                self.name,
                ", ".join(unread),
                ", ".join(f"{self.taker_fee(pair):.4%}" for pair in unread),
            )
        return read

    async def _pair_fee(self, pair: str) -> Any:
        """``pair``'s taker fee as the venue answers it; None when the read fails."""
        try:
            fee = await self._call(self._client.fetch_trading_fee, pair, attempts=2)
        except BotError as error:
            log.warning("%s %s: the account's fee could not be read (%s)", self.name, pair, error)
            return None
        return fee.get("taker")

    @property
    def ohlcv_limit(self) -> int:
        return self.profile.ohlcv_limit

    async def fetch_candles(self, pair: str, timeframe: str, since_ms: int) -> pd.DataFrame:
        """Up to ``ohlcv_limit`` candles opening at or after ``since_ms``, oldest first."""
        rows = await self._call(
            self._client.fetch_ohlcv, pair, timeframe, since_ms, self.ohlcv_limit
        )
        return _candle_frame(rows)

    async def fetch_price(self, pair: str) -> float:
        """The last traded price."""
        ticker = await self._call(self._client.fetch_ticker, pair)
        return float(ticker["last"])

    @property
    def streams(self) -> bool:
        """Whether the exchange pushes candles and tickers (ccxt.pro); REST is the fallback."""
        has = self._client.has
        return bool(has.get("watchOHLCV") and has.get("watchTicker"))

    async def watch_candles(self, pair: str, timeframe: str) -> pd.DataFrame:
        """Waits for the stream's next update: the candles it changed, the forming one included.

        Not retried here: the caller owns the reconnect policy (ExchangeUnavailable = reconnect).
        """
        try:
            return _candle_frame(await self._client.watch_ohlcv(pair, timeframe))
        except ccxt.BaseError as error:
            raise translate(error) from None

    async def watch_price(self, pair: str) -> float:
        """Waits for the next pushed ticker; its last traded price."""
        try:
            ticker = await self._client.watch_ticker(pair)
        except ccxt.BaseError as error:
            raise translate(error) from None
        return float(ticker["last"])

    @property
    def supports_stop_orders(self) -> bool:
        return self.profile.stop_orders

    @property
    def dust_target(self) -> str | None:
        """What the venue converts dust into through its API; None: it offers no conversion."""
        return self.profile.dust_to or None

    async def convertible_dust(self) -> dict[str, float]:
        """The assets the venue would convert now (bot/exchange/dust.py), with their amount."""
        return dust.convertible(await self._call(self._client.sapiPostAssetDustBtc, {}))

    async def convert_dust(self, assets: Sequence[str]) -> list[DustConversion]:
        """Convert ``assets`` once, never retried: an unknown outcome is read back from the
        venue's dust log (``dust_conversions``)."""
        reply = await self._call(
            self._client.sapiPostAssetDust, {"asset": list(assets)}, attempts=1
        )
        return dust.transfers(reply, self.dust_target or "")

    async def dust_conversions(self, since: datetime) -> list[DustConversion]:
        """What the venue's dust log holds from ``since`` on."""
        start = to_ms(since)
        span = {"startTime": start, "endTime": start + dust.LOG_SPAN_MS}
        reply = await self._call(self._client.sapiGetAssetDribblet, span)
        return dust.log_entries(reply, self.dust_target or "")

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
                translated = self._failed(error)
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
                if last or not _refused_unprocessed(error, translated):
                    # Not found may only mean not processed yet, and Binance and OKX take a
                    # filled order's id again: a resend could buy twice. The order stays NEW,
                    # looked up again on the next tick (Executor.settle_unknown).
                    raise translated from error
                await self._pause(self._backoff * 2 ** (attempt - 1))
        assert order is not None  # the loop either found an order or raised
        if not self.profile.reply_complete and order.get("status") not in _FINAL:
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
        if trades and not _trade_ids(order):
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
        named = _trade_ids(order)
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
        return _report(intent, order, market, await self._fee_prices(order, market))

    async def _fee_prices(
        self, order: Mapping[str, Any], market: Mapping[str, Any]
    ) -> dict[str, float]:
        """The quote price, now, of each third currency a trade's fee was paid in (BNB), so the
        fee is booked at its real value; a currency without a market to the quote is left out
        (its fee is then estimated from the trade, see ``_fill``)."""
        trades = order.get("trades") or []
        charged: set[str] = {
            fee["currency"] for trade in trades for fee in _fees(trade) if fee.get("currency")
        }
        third = charged - {market.get("base"), market.get("quote")}
        prices = {}
        for currency in sorted(third):
            pair = f"{currency}/{market.get('quote')}"
            if pair in (self._client.markets or {}):
                prices[currency] = await self.fetch_price(pair)
        return prices

    async def fetch_balances(self) -> dict[str, float]:
        """Totals: what open orders hold counts."""
        return (await self.fetch_balance_parts())[0]

    async def fetch_balance_parts(self) -> tuple[dict[str, float], dict[str, float]]:
        """Totals and the free part of them (what no open order holds), in one request."""
        balance = await self._call(self._client.fetch_balance)
        totals, free = balance.get("total") or {}, balance.get("free") or {}
        return (
            {asset: float(amount) for asset, amount in totals.items() if amount},
            {asset: float(amount) for asset, amount in free.items() if amount},
        )

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
            return await self._client.create_order(
                intent.pair, "limit", intent.side.value, amount, price, params
            )
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
            return await self._client.create_market_buy_order_with_cost(
                intent.pair, intent.quote_amount, params
            )
        wanted = intent.amount
        if intent.side is Side.BUY and intent.quote_amount is not None:
            # Sized in coins here: the venue charges the fee on top (Kraken's fciq), which
            # stays inside the budget as a limit buy's does.
            fee = 1 + self.taker_fee(intent.pair)
            wanted = intent.quote_amount / (intent.reference_price * fee)
        amount = float(self._client.amount_to_precision(intent.pair, wanted))
        return await self._client.create_order(
            intent.pair, "market", intent.side.value, amount, None, params
        )

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

    def too_small(self, pair: str, amount: float, price: float) -> str | None:
        """Why the exchange would refuse to trade ``amount`` of ``pair`` at ``price``, if it
        would: under its minimum order value or amount (dust)."""
        return self._under_minimum(pair, amount * price, amount)

    def _under_minimum(self, pair: str, notional: float, amount: float | None) -> str | None:
        limits = self._client.markets[pair].get("limits") or {}
        minimum_cost = (limits.get("cost") or {}).get("min")
        if minimum_cost and notional < minimum_cost:
            return (
                f"{pair}: order worth {notional:.2f} is under the exchange's minimum of "
                f"{minimum_cost}"
            )
        if amount is None:
            return None
        try:
            rounded = float(self._client.amount_to_precision(pair, amount))
        except ccxt.BaseError:  # ccxt refuses to round some amounts under its precision
            rounded = 0.0
        minimum = (limits.get("amount") or {}).get("min")
        if rounded <= 0 or (minimum and rounded < minimum):
            return (
                f"{pair}: amount {amount:.8g} is under the exchange's minimum of {minimum} "
                "once rounded to its precision"
            )
        return None

    async def _call(
        self, method: Callable[..., Awaitable[T]], *args: Any, attempts: int | None = None
    ) -> T:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts or self._attempts)
            # tenacity annotates threading.Event but only calls is_set(), as asyncio's has.
            | stop_when_event_set(self._giving_up),  # type: ignore[arg-type]
            wait=self._wait,
            retry=retry_if_exception_type(ExchangeUnavailable),
            reraise=True,
            sleep=self._pause,
        )
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1 and self._giving_up.is_set():
                    raise ExchangeUnavailable(
                        f"{self.name} {method.__name__}: not retried, the service is stopping"
                    )
                try:
                    return await method(*args)
                except ccxt.BaseError as error:
                    translated = self._failed(error)
                    log.warning("%s %s: %s", self.name, method.__name__, translated)
                    await self._resync_clock(translated)
                    raise translated from error
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _failed(self, error: ccxt.BaseError) -> BotError:
        translated = translate(self._by_venue_code(error), self._client.last_response_headers)
        if any(text in str(error) for text in self.profile.auth_errors):
            translated = ExchangeAuthFailed(f"{type(error).__name__}: {error}"[:300])
        EXCHANGE_ERRORS.labels(type(translated).__name__).inc()
        return self._limit_waited(error, translated)

    def _limit_waited(self, error: ccxt.BaseError, translated: BotError) -> BotError:
        """A rate limit the venue's answer gave no wait for lasts the profile's window."""
        if (
            isinstance(error, ccxt.RateLimitExceeded | ccxt.DDoSProtection)  # Kraken's: DDoS
            and isinstance(translated, ExchangeUnavailable)
            and translated.retry_after is None
            and self.profile.limit_wait
        ):
            translated.retry_after = self.profile.limit_wait
        return translated

    def _by_venue_code(self, error: ccxt.BaseError) -> ccxt.BaseError:
        """``error`` as ccxt raises it at the venue's own URLs, whatever URL the client was
        given: where ccxt classified the venue's code by its URL-independent table or not at
        all, the table the venue's URLs select (the profile's ``error_table``) comes first, as
        ccxt reads it there. The venue's own table decides: a refusal there is a refusal here,
        an unknown outcome there (Binance's -1004 "server busy") stays unknown here, and a code
        it does not name keeps ccxt's class."""
        table = self.profile.error_table
        code = _venue_code(str(error))
        if not table or code is None:
            return error
        exceptions = self._client.exceptions or {}
        if type(error) not in (ccxt.ExchangeError, (exceptions.get("exact") or {}).get(code)):
            return error  # classified before the code (429, a message): as at the venue's URLs
        found = ((exceptions.get(table) or {}).get("exact") or {}).get(code)
        return found(str(error)) if found else error

    async def _resync_clock(self, error: BotError) -> None:
        """After a clock-skew refusal, measure the offset again so the retry is signed right."""
        if not isinstance(error, ClockSkew):
            return
        with contextlib.suppress(ccxt.BaseError):  # the retry reports it if this failed too
            await self._client.load_time_difference()

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=self._backoff, max=60, jitter=self._backoff)(
            state
        )
        error = state.outcome.exception() if state.outcome else None
        asked = getattr(error, "retry_after", None) or 0.0
        return max(backoff, asked)


_FINAL = ("closed", "canceled", "expired", "rejected")
_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def _refused_unprocessed(error: ccxt.BaseError, translated: BotError) -> bool:
    """Whether the venue refused the request before processing it (a rate limit, a ban, a
    clock-skew refusal): only then is sending it again safe."""
    return isinstance(
        error, ccxt.RateLimitExceeded | ccxt.DDoSProtection | ccxt.InvalidNonce
    ) or isinstance(translated, ClockSkew)


def _venue_code(text: str) -> str | None:
    """The venue's error code in ccxt's message ("binance {"code":-5006,"msg":...}")."""
    start = text.find("{")
    try:
        body = json.loads(text[start:]) if start >= 0 else None
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return None if code is None else str(code)


def _candle_frame(rows: Sequence[Sequence[float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["timestamp"] = frame["timestamp"].astype(np.int64)
    return frame.astype({column: np.float64 for column in COLUMNS[1:]})


def _report(
    intent: OrderIntent,
    order: Mapping[str, Any],
    market: Mapping[str, Any],
    fee_prices: Mapping[str, float],
) -> ExecutionReport:
    """Our report of a ccxt order: fees in the quote currency, amounts net of base fees."""
    trades = order.get("trades") or []
    fills = tuple(_fill(intent, trade, market, fee_prices) for trade in trades)
    filled = sum(fill.amount for fill in fills) if fills else float(order.get("filled") or 0.0)
    status = _STATUS.get(order.get("status") or "", OrderStatus.NEW)  # no status: not known
    if status is OrderStatus.OPEN and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    traded = sum(float(trade["amount"]) for trade in trades)
    triggered = order.get("triggerPrice") or order.get("stopPrice") or order.get("stopLossPrice")
    if _trades_lag(order, status, traded) or (
        order.get("type") == "market" and not status.is_final and not triggered
    ):
        # Not known in full yet: a venue's trades can lag its order's status, and a market
        # order read "live" has not matched yet. NEW: read again on the next tick
        # (Executor.settle_unknown), each trade booked once whenever it shows.
        status = OrderStatus.NEW
    notional = sum(fill.notional for fill in fills)
    return ExecutionReport(
        client_order_id=intent.client_order_id,
        exchange_order_id=str(order.get("id")),
        status=status,
        filled=filled,
        average_price=notional / filled if filled else None,
        fills=fills,
    )


def _trades_lag(order: Mapping[str, Any], status: OrderStatus, traded: float) -> bool:
    """Whether the order says more filled than its trades add up to (or filled with none)."""
    reported = float(order.get("filled") or 0.0)
    if reported > traded * (1 + 1e-9) + 1e-12:
        return True
    return status is OrderStatus.FILLED and traded == 0


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


def _trade_ids(order: Mapping[str, Any]) -> list[str]:
    """The ids of an order's trades that the order read named without their details."""
    return [
        str(t["id"])
        for t in order.get("trades") or []
        if t.get("price") is None and t.get("id") is not None
    ]


def _fees(trade: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A trade's fees: ccxt's ``fee`` when it has a cost, else its ``fees`` list."""
    fee = trade.get("fee") or {}
    if fee.get("cost") is not None:
        return [fee]
    return [entry for entry in trade.get("fees") or [] if entry and entry.get("cost") is not None]


def _fill(
    intent: OrderIntent,
    trade: Mapping[str, Any],
    market: Mapping[str, Any],
    fee_prices: Mapping[str, float],
) -> Fill:
    """One trade as a fill. A buy's fee in the coin bought reduces the coins received; a fee
    in any other coin (BNB, or the coin sold: a BNB/USDT sale paying in BNB) comes from that
    coin's balance, not from this trade: it is valued in the quote (at that coin's price now,
    or, with no market to price it, at the market's taker rate) and kept in its own units
    (``fee_amount``) for the books to take from whoever holds it (``Executor``)."""
    price = float(trade["price"])
    amount = float(trade["amount"])
    base, quote = market.get("base"), market.get("quote")
    fee = outside = charged = 0.0
    assets = set()
    for entry in _fees(trade):
        cost, currency = float(entry["cost"]), entry.get("currency")
        assets.add(currency or "")
        charged += cost
        if currency == base and intent.side is Side.BUY:
            amount -= cost
            fee += cost * price
        elif currency == base:
            outside += cost * price
        elif currency in (None, quote):
            fee += cost
        elif currency in fee_prices:
            outside += cost * fee_prices[currency]
        else:
            log.warning(
                "fee in %s: no %s market to price it; booked at the taker rate", currency, quote
            )
            outside += price * amount * float(market.get("taker") or _DEFAULT_TAKER_FEE)
    moment = trade.get("timestamp")
    return Fill(
        client_order_id=intent.client_order_id,
        pair=intent.pair,
        side=intent.side,
        amount=amount,
        price=price,
        fee=fee + outside,
        time=from_ms(int(moment)) if moment else intent.created_at,
        trade_id=f"{market.get('id')}-{trade.get('id')}",
        fee_outside=outside,
        fee_asset=",".join(sorted(assets)),
        fee_amount=charged if len(assets) == 1 else 0.0,
    )

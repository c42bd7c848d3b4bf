"""The only module that imports ccxt. It returns our types and raises our exceptions.

Errors are translated in one place (``translate``) by what the caller should do: retry
(network trouble, timeouts, 5xx, rate limits), reject (the exchange refused: never retried),
or fail hard (authentication). Retries live here and nowhere else: exponential backoff with
jitter, never shorter than a Retry-After the exchange sent.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
import numpy as np
import pandas as pd
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from bot.candles import COLUMNS
from bot.errors import (
    BotError,
    ExchangeAuthFailed,
    ExchangeRejected,
    ExchangeUnavailable,
    InsufficientFunds,
    NotFound,
    UserInputError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# What differs between exchanges and ccxt does not say: the most candles one request returns.
CAPABILITIES: Mapping[str, Mapping[str, int]] = {
    "binance": {"ohlcv_limit": 1000},
    "bybit": {"ohlcv_limit": 1000},
    "okx": {"ohlcv_limit": 300},
    "kraken": {"ohlcv_limit": 720},
    "coinbase": {"ohlcv_limit": 300},
}
_DEFAULT_OHLCV_LIMIT = 500


def translate(error: ccxt.BaseError, headers: Mapping[str, str] | None = None) -> BotError:
    """The one mapping from ccxt's exceptions to ours, by what the caller does next."""
    text = f"{type(error).__name__}: {error}"[:300]
    if isinstance(error, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return ExchangeAuthFailed(text)
    if isinstance(error, ccxt.InsufficientFunds):
        return InsufficientFunds(text)
    if isinstance(error, ccxt.BadSymbol):
        return NotFound(text)
    if isinstance(error, ccxt.OperationFailed):  # network trouble, timeouts, 5xx, rate limits
        return ExchangeUnavailable(text, retry_after=_retry_after(headers))
    return ExchangeRejected(text)


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class CcxtExchange:
    """One ccxt client with markets loaded; public market data for now."""

    def __init__(self, client: ccxt_async.Exchange, *, attempts: int = 5, backoff: float = 0.5):
        self._client = client
        self._attempts = attempts
        self._backoff = backoff
        self.name: str = client.id

    @classmethod
    def create(
        cls, name: str, ccxt_config: Mapping[str, Any], *, attempts: int = 5, backoff: float = 0.5
    ) -> CcxtExchange:
        """A client for exchange ``name`` built from ``ccxt_config`` (options, proxies, URLs)."""
        if name not in ccxt_async.exchanges:
            close = difflib.get_close_matches(name, ccxt_async.exchanges, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserInputError(f"unknown exchange {name!r}{hint}")
        client = getattr(ccxt_async, name)({"enableRateLimit": True, **dict(ccxt_config)})
        return cls(client, attempts=attempts, backoff=backoff)

    async def close(self) -> None:
        await self._client.close()

    async def load_markets(self) -> None:
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

    @property
    def ohlcv_limit(self) -> int:
        return CAPABILITIES.get(self.name, {}).get("ohlcv_limit", _DEFAULT_OHLCV_LIMIT)

    async def fetch_candles(self, pair: str, timeframe: str, since_ms: int) -> pd.DataFrame:
        """Up to ``ohlcv_limit`` candles opening at or after ``since_ms``, oldest first."""
        rows = await self._call(
            self._client.fetch_ohlcv, pair, timeframe, since_ms, self.ohlcv_limit
        )
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        frame["timestamp"] = frame["timestamp"].astype(np.int64)
        return frame.astype({column: np.float64 for column in COLUMNS[1:]})

    async def _call(self, method: Callable[..., Awaitable[T]], *args: Any) -> T:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception_type(ExchangeUnavailable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    return await method(*args)
                except ccxt.BaseError as error:
                    translated = translate(error, self._client.last_response_headers)
                    log.warning("%s %s: %s", self.name, method.__name__, translated)
                    raise translated from error
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=self._backoff, max=60, jitter=self._backoff)(
            state
        )
        error = state.outcome.exception() if state.outcome else None
        asked = getattr(error, "retry_after", None) or 0.0
        return max(backoff, asked)

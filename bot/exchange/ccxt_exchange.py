"""The ccxt adapter of the Exchange port: a client built for a venue, its markets loaded.

It returns our types and raises our exceptions. Its parts, one job each: the calls and their
retries (``ccxt_calls``), errors (``ccxt_errors``), replies (``ccxt_replies``), markets
(``ccxt_market``), the account (``ccxt_account``), order lookup (``ccxt_lookup``) and
placement (``ccxt_orders``).
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro

from bot.core.errors import ConfigError, UserInputError
from bot.exchange.ccxt_orders import CcxtOrders
from bot.exchange.venues import profile_for

log = logging.getLogger(__name__)


def published_taker_fee(exchange: str) -> float:
    """The venue's published base taker fee from ccxt's fee table, without the network: what
    the markets the live engine reads its fee from start from, for a backtest of a live account."""
    return float(getattr(ccxt, exchange)().fees["trading"]["taker"])


class CcxtExchange(CcxtOrders):
    """One ccxt client with markets loaded: market data (REST and streams), orders, balances."""

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

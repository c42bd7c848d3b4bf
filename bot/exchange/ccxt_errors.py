"""ccxt's exceptions as ours, by what the caller should do next.

Errors are translated in one place (``translate``, with a venue's own table and wait first:
``classify``) by what the caller should do: retry (network trouble, timeouts, 5xx, rate
limits), reject (the exchange refused: never retried), or fail hard (authentication).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import ccxt

from bot.core.errors import (
    BotError,
    ClockSkew,
    ExchangeAuthFailed,
    ExchangeRejected,
    ExchangeUnavailable,
    InsufficientFunds,
    NotFound,
)
from bot.exchange.venues import VenueProfile
from bot.ops.telemetry import EXCHANGE_ERRORS

_TIMESTAMP_EXPIRED = "request timestamp expired"


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


def classify(error: ccxt.BaseError, profile: VenueProfile, client: Any) -> BotError:
    """``error`` of ``client`` (a ccxt client) as ours: read by ``profile``'s error table,
    its authentication texts and its rate-limit window, and counted."""
    translated = translate(
        _by_venue_code(error, profile, client.exceptions or {}), client.last_response_headers
    )
    if any(text in str(error) for text in profile.auth_errors):
        translated = ExchangeAuthFailed(f"{type(error).__name__}: {error}"[:300])
    EXCHANGE_ERRORS.labels(type(translated).__name__).inc()
    return _limit_waited(error, translated, profile)


def _limit_waited(error: ccxt.BaseError, translated: BotError, profile: VenueProfile) -> BotError:
    """A rate limit the venue's answer gave no wait for lasts the profile's window."""
    if (
        isinstance(error, ccxt.RateLimitExceeded | ccxt.DDoSProtection)  # Kraken's: DDoS
        and isinstance(translated, ExchangeUnavailable)
        and translated.retry_after is None
        and profile.limit_wait
    ):
        translated.retry_after = profile.limit_wait
    return translated


def _by_venue_code(
    error: ccxt.BaseError, profile: VenueProfile, exceptions: Mapping[str, Any]
) -> ccxt.BaseError:
    """``error`` as ccxt raises it at the venue's own URLs, whatever URL the client was
    given: where ccxt classified the venue's code by its URL-independent table or not at
    all, the table the venue's URLs select (the profile's ``error_table``) comes first, as
    ccxt reads it there. The venue's own table decides: a refusal there is a refusal here,
    an unknown outcome there (Binance's -1004 "server busy") stays unknown here, and a code
    it does not name keeps ccxt's class."""
    table = profile.error_table
    code = _venue_code(str(error))
    if not table or code is None:
        return error
    if type(error) not in (ccxt.ExchangeError, (exceptions.get("exact") or {}).get(code)):
        return error  # classified before the code (429, a message): as at the venue's URLs
    found = ((exceptions.get(table) or {}).get("exact") or {}).get(code)
    return found(str(error)) if found else error


def refused_unprocessed(error: ccxt.BaseError, translated: BotError) -> bool:
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

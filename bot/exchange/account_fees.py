"""The account's own taker fees as the venue tells them: what an entry is sized with.

An account's fee follows its 30-day volume tier (Kraken: "trading volume discounts are not
permanent"), so a read goes stale: it is read again once a day, and at once when a buy is
refused for insufficient funds (Kraken adds the fee on top of the cost: sized at a stale,
lower fee, a buy of all the cash is refused). An answer that cannot be a taker fee (0, above
2%) is not believed: the published fee stays, and a warning names the venue's answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_AGE_S = 86_400.0  # a read older than this is read again before the pair's next buy
ABSURD_FEE = 0.02  # no spot venue charges a taker more (Coinbase's lowest tier: 1.2%)


class AccountFees:
    """The fees read per pair and when; the fee to size an order in a pair with."""

    def __init__(self, venue: str, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._venue = venue
        self._monotonic = monotonic
        self._fees: dict[str, float] = {}  # pair -> the account's taker fee, where believed
        self._read_at: dict[str, float] = {}  # pair -> when its read was last tried
        self.max_age_s = MAX_AGE_S

    @property
    def in_use(self) -> bool:
        """Whether the account's fees are read at all (live trading asked for them)."""
        return bool(self._read_at)

    def due(self, pair: str) -> bool:
        """Whether ``pair``'s fee should be read (again) before its next buy: never read (a pair
        started after start-up), or read more than a day ago."""
        read_at = self._read_at.get(pair)
        return self.in_use and (read_at is None or self._monotonic() - read_at > self.max_age_s)

    def tried(self, pair: str) -> None:
        """A read of ``pair`` was tried now (failed or not: the next one waits a day)."""
        self._read_at[pair] = self._monotonic()

    def record(self, pair: str, fee: float, published: float | None) -> float | None:
        """Keep the venue's answer ``fee`` for ``pair`` unless it cannot be a taker fee.
        Negative (a taker rebate): sized as 0. Zero or above 2%: not believed, the published
        fee is kept (a zero-fee promotion is sized with the published fee: a dearer, safe
        size). Returns the fee kept (None: none known)."""
        if fee < 0:
            log.info(
                "%s %s: the account's taker fee reads %.4f%% (a rebate): sizing with 0",
                self._venue,
                pair,
                fee * 100,
            )
            fee = 0.0
        elif fee == 0 or fee > ABSURD_FEE:
            log.warning(
                "%s %s: the venue answered a taker fee of %r, which cannot be right: "
                "keeping the published fee %s",
                self._venue,
                pair,
                fee,
                "(unknown)" if published is None else f"{published:.4%}",
            )
            self._fees.pop(pair, None)
            if published is None:
                return None
            fee = published
        self._fees[pair] = fee
        return fee

    def fee(self, pair: str, published: float | None) -> float | None:
        """The fee to size ``pair`` with: the one read; for a pair not read, the highest of the
        others read (the account's tier applies to every spot pair) and its own published one
        (a pair on a dearer schedule than those read); None when nothing is known."""
        if pair in self._fees:
            return self._fees[pair]
        known = [*self._fees.values(), *([published] if published is not None else [])]
        return max(known) if known else None

"""Ports of the exchange: orders and balances, what each venue can do beyond them, what can be
traded. Adapters: bot/exchange/ (paper, ccxt)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol, runtime_checkable

from bot.core.domain import (
    DustConversion,
    ExecutionReport,
    OpenOrder,
    Order,
    OrderIntent,
)


@runtime_checkable
class ReadsByVenueId(Protocol):
    """An exchange that reads one order by the venue's own id (shown on its website)."""

    async def read_by_venue_id(self, order: Order, venue_order_id: str) -> ExecutionReport:
        """``order`` as the venue's order ``venue_order_id`` says, once it is shown to be
        ``order`` (its client order id); UserInputError otherwise."""
        ...


@runtime_checkable
class Retrying(Protocol):
    """An exchange that retries a failed request, and can be told not to for a while."""

    def one_attempt(self) -> AbstractContextManager[None]:
        """Within it, each request is made once (an admin waits for the answer)."""
        ...


@runtime_checkable
class BalanceParts(Protocol):
    """An exchange that tells the free part of each balance from what open orders hold."""

    async def fetch_balance_parts(self) -> tuple[dict[str, float], dict[str, float]]:
        """Totals and free amounts per asset."""
        ...


@runtime_checkable
class AccountFeeReader(Protocol):
    """An exchange that reads the account's own taker fee per pair (its volume tier)."""

    async def load_account_fees(self, pairs: Sequence[str]) -> dict[str, float]: ...


@runtime_checkable
class DustConverter(Protocol):
    """An exchange that can convert dust through its API (bot/exchange/dust.py)."""

    dust_target: str | None  # what dust becomes (BNB); None: this venue offers no conversion

    async def convertible_dust(self) -> dict[str, float]: ...

    async def convert_dust(self, assets: Sequence[str]) -> list[DustConversion]: ...

    async def dust_conversions(self, since: datetime) -> list[DustConversion]: ...


class Exchange(Protocol):
    async def create_market_order(self, intent: OrderIntent) -> ExecutionReport: ...

    async def fetch_balances(self) -> dict[str, float]: ...

    async def lookup(self, order: Order) -> ExecutionReport | None:
        """What the exchange knows of a journaled order, by client order id; None: never got it."""
        ...

    async def open_orders(self, pairs: Sequence[str]) -> list[OpenOrder]:
        """Every order resting on the exchange in ``pairs``, whoever placed it."""
        ...

    async def create_limit_order(self, intent: OrderIntent) -> ExecutionReport:
        """A limit buy resting at ``intent.limit_price`` (for ``intent.quote_amount``)."""
        ...

    @property
    def supports_stop_orders(self) -> bool:
        """A stop-loss can rest on the exchange (else: checked per candle)."""
        ...

    async def place_stop(self, intent: OrderIntent) -> ExecutionReport:
        """A stop-loss sell resting on the exchange until ``intent.stop_price``."""
        ...

    async def cancel_order(self, order: Order) -> ExecutionReport | None:
        """Cancel a resting order; what became of it (it may have filled first)."""
        ...

    def too_small(self, pair: str, amount: float, price: float) -> str | None:
        """Why the exchange would refuse an order this small (dust), or None."""
        ...


class MarketCatalog(Protocol):
    """What can be traded: raises NotFound / UserInputError naming the closest choices."""

    def check_pair(self, pair: str) -> None: ...

    def check_timeframe(self, pair: str, timeframe: str) -> None: ...

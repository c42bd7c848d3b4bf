"""The kill switch's steps beyond the sales (``Control.flatten``): its report, each step's
failure kept as one problem, pairpilot's resting orders cancelled, what the account still holds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from bot.core.errors import BotError
from bot.core.ports import Exchange, OrderJournal
from bot.portfolio.books import Portfolio
from bot.portfolio.outside import OutsideHoldings

log = logging.getLogger(__name__)
_DUST = 1e-12
Price = Callable[[str], Awaitable[float]]  # a pair's price now


@dataclass(frozen=True, slots=True)
class FlattenReport:
    halted_now: bool  # False when a halt already stood
    cancelled_orders: int
    closed: dict[str, float]  # pair -> amount sold
    left: dict[str, float]  # asset -> amount the exchange still holds (should be empty)
    problems: dict[str, str] = field(default_factory=dict)  # pair (or step) -> what failed

    @property
    def clean(self) -> bool:
        return not self.left and not self.problems


async def attempt[T](problems: dict[str, str], what: str, work: Awaitable[T]) -> T | None:
    """``work``'s result; an exchange failure is written in ``problems`` under ``what``
    (the kill switch goes on with the rest) and gives None."""
    try:
        return await work
    except BotError as error:
        log.warning("flatten: %s: %s", what, error)
        problems[what] = f"{type(error).__name__}: {error}"
        return None


async def cancel_ours(exchange: Exchange, journal: OrderJournal, pairs: list[str]) -> int:
    """Cancel the orders resting in ``pairs`` that pairpilot placed (those in its journal);
    the user's own (placed on the website or app) are left alone. How many."""
    cancelled = 0
    for resting in await exchange.open_orders(pairs):
        order = await journal.get(resting.client_order_id)
        if order is not None:
            await exchange.cancel_order(order)
            cancelled += 1
    return cancelled


async def held(exchange: Exchange, portfolio: Portfolio, pair: str, price: Price) -> bool:
    """The books hold more of ``pair`` than dust."""
    position = portfolio.position(pair)
    if position is None:
        return False
    return exchange.too_small(pair, position.amount, await price(pair)) is None


async def left_over(
    exchange: Exchange,
    outside: OutsideHoldings | None,
    balances: Mapping[str, float],
    pairs: set[str],
    price: Price,
) -> dict[str, float]:
    """What the exchange still holds of the traded coins beyond what the user holds outside
    pairpilot, dust (too small to sell) not counted."""
    own = await outside.get() if outside else {}
    left = {}
    for pair in sorted(pairs):
        asset = pair.split("/")[0]
        amount = balances.get(asset, 0.0) - own.get(asset, 0.0)
        if amount > _DUST and exchange.too_small(pair, amount, await price(pair)) is None:
            left[asset] = amount
    return left

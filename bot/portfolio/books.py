"""The books: cash, positions, realised and unrealised PnL, equity.

State lives in memory for speed and is mirrored to storage by the engine inside the same
transaction that books the fill. ``book`` previews a fill; ``accept`` makes it current once
storage has it, so a failed write never leaves memory ahead of the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from bot.core.domain import Fill, Position, Side

CASH_KEY = "portfolio.cash"


@dataclass(frozen=True, slots=True)
class Booking:
    cash: float
    position: Position


class Portfolio:
    def __init__(self, cash: float, positions: Iterable[Position] = ()) -> None:
        self._cash = cash
        self._positions = {position.pair: position for position in positions}

    @property
    def cash(self) -> float:
        return self._cash

    def position(self, pair: str) -> Position | None:
        """The open position in ``pair``, or None when flat."""
        position = self._positions.get(pair)
        return position if position is not None and position.amount > 0 else None

    def positions(self) -> list[Position]:
        return [p for p in self._positions.values() if p.amount > 0]

    def realised_pnl(self) -> float:
        return sum(position.realised_pnl for position in self._positions.values())

    def equity(self, prices: Mapping[str, float]) -> float:
        """Cash plus open positions marked at ``prices`` (entry price where none is given)."""
        return self._cash + sum(
            p.amount * prices.get(p.pair, p.average_price) for p in self.positions()
        )

    def book(self, fill: Fill) -> Booking:
        """The cash and position after ``fill``, without changing anything yet."""
        current = self._positions.get(fill.pair) or Position(
            pair=fill.pair,
            amount=0.0,
            average_price=0.0,
            realised_pnl=0.0,
            fees=0.0,
            opened_at=None,
            updated_at=fill.time,
        )
        if fill.side is Side.BUY:
            return Booking(self._cash - fill.notional - fill.cash_fee, _bought(current, fill))
        if fill.amount > current.amount * (1 + 1e-9):
            raise ValueError(f"sell of {fill.amount} {fill.pair} exceeds the {current.amount} held")
        return Booking(self._cash + fill.notional - fill.cash_fee, _sold(current, fill))

    def draft(self) -> Portfolio:
        """A copy to preview several fills in a row (each booked after the one before)."""
        return Portfolio(self._cash, self._positions.values())

    def accept(self, booking: Booking) -> None:
        self._cash = booking.cash
        self._positions[booking.position.pair] = booking.position


def _bought(current: Position, fill: Fill) -> Position:
    amount = current.amount + fill.amount
    average = (current.amount * current.average_price + fill.notional) / amount
    return replace(
        current,
        amount=amount,
        average_price=average,
        realised_pnl=current.realised_pnl - fill.fee,
        fees=current.fees + fill.fee,
        opened_at=current.opened_at if current.amount > 0 else fill.time,
        updated_at=fill.time,
    )


def _sold(current: Position, fill: Fill) -> Position:
    amount = min(fill.amount, current.amount)
    remaining = current.amount - amount
    flat = remaining <= current.amount * 1e-9
    return replace(
        current,
        amount=0.0 if flat else remaining,
        realised_pnl=current.realised_pnl
        + (fill.price - current.average_price) * amount
        - fill.fee,
        fees=current.fees + fill.fee,
        opened_at=None if flat else current.opened_at,
        updated_at=fill.time,
    )

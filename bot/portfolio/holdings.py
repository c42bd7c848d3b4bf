"""/holdings: what the books hold, what the exchange holds, and what of it is the user's own.

The user's own holdings (bot/portfolio/outside.py) are a baseline recorded at the first start. The
user depositing or withdrawing their own money, or holding a coin before its pair was traded, moves
the exchange's figure away from books + baseline: reconciliation calls that drift at every start.
``/holdings accept`` (an admin's, behind a Confirm) takes what the exchange holds beyond the
books now as the user's own; a gap the other way (the books hold more than the exchange) is
pairpilot's to explain and stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.core.errors import UserInputError
from bot.core.number_text import amount_text

_SLACK = 1e-9  # relative: below this, books + the user's own equal the exchange
USAGE = "/holdings [accept]"


@dataclass(frozen=True, slots=True)
class Holding:
    asset: str
    books: float  # pairpilot's: the quote's cash, or a pair's position
    exchange: float  # what the account holds (free + locked in orders)
    own: float  # the user's own, beside pairpilot (the baseline)

    @property
    def gap(self) -> float:
        """What the exchange holds beyond the books and the user's own (negative: less)."""
        gap = self.exchange - self.books - self.own
        return 0.0 if abs(gap) <= _SLACK * max(abs(self.exchange), 1.0) else gap

    @property
    def missing(self) -> float:
        """What the books hold beyond the whole account: pairpilot's to explain, never the
        user's."""
        return self.books - self.exchange if self.books > self.exchange and self.gap else 0.0

    @property
    def to_accept(self) -> float | None:
        """The user's own as ``/holdings accept`` would record it; None: no change."""
        return max(0.0, self.exchange - self.books) if self.gap else None


def accepting(arguments: Sequence[str]) -> bool:
    """Whether /holdings was given ``accept``; any other argument is refused."""
    if not arguments:
        return False
    if [word.lower() for word in arguments] != ["accept"]:
        raise UserInputError(f"usage: {USAGE}")
    return True


def compare(
    books: Mapping[str, float], balances: Mapping[str, float], own: Mapping[str, float]
) -> list[Holding]:
    """One line per asset of ``books``, in its order."""
    return [
        Holding(asset, amount, balances.get(asset, 0.0), own.get(asset, 0.0))
        for asset, amount in books.items()
    ]


def accept_preview(holdings: Sequence[Holding]) -> str:
    """What ``/holdings accept`` would change now, for its Confirm prompt (plain text)."""
    changes = [
        f"{line.asset} {amount_text(line.own)} -> {amount_text(line.to_accept)}"
        for line in holdings
        if line.to_accept is not None and line.to_accept != line.own
    ]
    if not changes:
        return "nothing: your own holdings stay as they are"
    return "record as your own holdings: " + ", ".join(changes)

"""The user's own holdings on the account, beside pairpilot's books.

Recorded at the first reconciliation (bot/execution/reconcile.py): whatever the exchange holds of
the quote and each traded coin beyond the books is the user's, left alone and never sold (the
executor's balance recheck subtracts it before any sale). ``/holdings accept`` records it again (see
bot/portfolio/holdings.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from bot.core.ports import Clock, StateStore

OUTSIDE_KEY = "reconcile.outside"
DOUBTED_KEY = "reconcile.outside.doubted"  # assets whose figure no longer adds up, alerted once
_TOLERANCE = 1e-8  # relative: float round-off between books and exchange is not drift
_CASH_TOLERANCE = 1e-6  # absolute, in the quote: balances are reported to 8 decimals


class OutsideHoldings:
    """The user's own holdings on the account, beside pairpilot's books (see the module doc)."""

    def __init__(self, state: StateStore, clock: Clock) -> None:
        self._state = state
        self._clock = clock

    async def get(self) -> dict[str, float]:
        return dict(await self._state.get(OUTSIDE_KEY) or {})

    async def recorded(self) -> bool:
        return await self._state.get(OUTSIDE_KEY) is not None

    async def complete(
        self, books: Mapping[str, float], balances: Mapping[str, float]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """The baseline, with each asset of ``books`` it has no figure for yet (a pair started
        since) recorded now: what the exchange holds beyond the books. Returns the baseline
        and the figures recorded by this call."""
        baseline = await self.get()
        new = {
            asset: round(max(0.0, balances.get(asset, 0.0) - amount), 12)
            for asset, amount in books.items()
            if asset not in baseline
        }
        if new or not await self.recorded():
            baseline.update(new)
            await self._state.set(OUTSIDE_KEY, baseline, self._clock.now())
        return baseline, new

    async def shift(self, changes: Mapping[str, float]) -> None:
        """Move the user's figure of each asset the baseline has by ``changes`` (never below
        0): what a dust conversion took of their coins and credited them. An asset without a
        figure yet is left to ``complete``, which records it whole."""
        baseline = await self.get()
        moved = {
            asset: round(max(0.0, baseline[asset] + change), 12)
            for asset, change in changes.items()
            if asset in baseline
        }
        if moved:
            await self._state.set(OUTSIDE_KEY, {**baseline, **moved}, self._clock.now())

    async def doubt(self, asset: str) -> bool:
        """Note that the user's figure of ``asset`` no longer adds up (the venue took a fee
        from coins beyond it and pairpilot's, and they could not be told to be a deposit).
        True the first time since the figure was last recorded: alert it then, once."""
        doubted = list(await self._state.get(DOUBTED_KEY) or [])
        if asset in doubted:
            return False
        await self._state.set(DOUBTED_KEY, [*doubted, asset], self._clock.now())
        return True

    async def _trust(self, assets: Collection[str]) -> None:
        """The figures of ``assets`` were recorded again: a later doubt is alerted again."""
        doubted = list(await self._state.get(DOUBTED_KEY) or [])
        if any(asset in doubted for asset in assets):
            kept = [asset for asset in doubted if asset not in assets]
            await self._state.set(DOUBTED_KEY, kept, self._clock.now())

    async def remeasure(self, asset: str, books: float, balance: float) -> None:
        """Record the user's figure of ``asset`` again: what the exchange holds (``balance``,
        free and used) beyond the books' ``books``."""
        baseline = await self.get()
        baseline[asset] = round(max(0.0, balance - books), 12)
        await self._state.set(OUTSIDE_KEY, baseline, self._clock.now())
        await self._trust([asset])

    async def accept(
        self, books: Mapping[str, float], balances: Mapping[str, float]
    ) -> dict[str, float]:
        """Record what the exchange holds beyond ``books`` now as the user's own, for each asset
        of ``books`` (never below 0: the books holding more is not the user's), and for each
        asset with a figure the books no longer trade (its pair stopped and flat: pairpilot
        holds none of it, so all the exchange holds is recorded; a doubt of it is cleared, as
        the doubt alert's advice says). The baseline."""
        baseline = await self.get()
        held = {asset: 0.0 for asset in baseline} | dict(books)
        baseline.update(
            {
                asset: round(max(0.0, balances.get(asset, 0.0) - amount), 12)
                for asset, amount in held.items()
            }
        )
        await self._state.set(OUTSIDE_KEY, baseline, self._clock.now())
        await self._trust(list(held))
        return baseline


def drift(
    books: Mapping[str, float],
    balances: Mapping[str, float],
    baseline: Mapping[str, float],
    quote: str,
) -> dict[str, tuple[float, float]]:
    """Each asset of ``books`` whose amount differs from the exchange's holding (``balances``,
    free and used) net of the user's own (``baseline``): asset -> (books, exchange net)."""
    found = {}
    for asset, amount in sorted(books.items()):
        venue = balances.get(asset, 0.0) - baseline.get(asset, 0.0)
        slack = _CASH_TOLERANCE if asset == quote else 0.0
        if abs(amount - venue) > slack + _TOLERANCE * max(abs(amount), abs(venue), 1e-12):
            found[asset] = (amount, venue)
    return found

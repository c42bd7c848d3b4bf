"""The user's own holdings on the account, beside pairpilot's books.

Recorded at the first reconciliation (bot/reconcile.py): whatever the exchange holds of the quote
and each traded coin beyond the books is the user's, left alone and never sold (the executor's
balance recheck subtracts it before any sale). ``/holdings accept`` records it again (see
bot/holdings.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.ports import Clock, StateStore

OUTSIDE_KEY = "reconcile.outside"


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
        new = {asset: round(max(0.0, balances.get(asset, 0.0) - amount), 12)
               for asset, amount in books.items() if asset not in baseline}  # fmt: skip
        if new or not await self.recorded():
            baseline.update(new)
            await self._state.set(OUTSIDE_KEY, baseline, self._clock.now())
        return baseline, new

    async def shift(self, changes: Mapping[str, float]) -> None:
        """Move the user's figure of each asset the baseline has by ``changes`` (never below
        0): what a dust conversion took of their coins and credited them. An asset without a
        figure yet is left to ``complete``, which records it whole."""
        baseline = await self.get()
        moved = {asset: round(max(0.0, baseline[asset] + change), 12)
                 for asset, change in changes.items() if asset in baseline}  # fmt: skip
        if moved:
            await self._state.set(OUTSIDE_KEY, {**baseline, **moved}, self._clock.now())

    async def forget(self, asset: str) -> None:
        """Drop the user's figure of ``asset``: it no longer holds (they deposited some since,
        and the venue took a fee from it). The next reconciliation records it again."""
        baseline = await self.get()
        if baseline.pop(asset, None) is not None:
            await self._state.set(OUTSIDE_KEY, baseline, self._clock.now())

    async def accept(
        self, books: Mapping[str, float], balances: Mapping[str, float]
    ) -> dict[str, float]:
        """Record what the exchange holds beyond ``books`` now as the user's own, for each asset
        of ``books`` (never below 0: the books holding more is not the user's). The baseline."""
        baseline = await self.get()
        baseline.update({asset: round(max(0.0, balances.get(asset, 0.0) - amount), 12)
                         for asset, amount in books.items()})  # fmt: skip
        await self._state.set(OUTSIDE_KEY, baseline, self._clock.now())
        return baseline

"""Look-ahead and warm-up analysis of a strategy's signals, by recomputing them on cut history.

Look-ahead. A strategy may decide on candle ``i`` from candles ``0..i`` only, so for every
prefix length ``p`` the signals of ``candles[:p]`` must equal the whole history's signals on
rows ``0..p-1``. Recomputing all N prefixes costs N runs (8,760 for a year of 1h candles:
20 s to minutes); ``first_lookahead`` checks these prefixes instead, comparing EVERY row of
each:

- ``p = i + 1`` for each candle ``i`` where the whole history's signal is not HOLD (the first
  ``SIGNAL_PREFIXES // 2`` of them, then evenly spread ones up to ``SIGNAL_PREFIXES``): at
  ``p = i + 1`` row ``i`` sees no future at all, so a signal that exists only because the
  strategy peeked (``shift(-1)``, a centred window, ``bfill``) disappears there;
- ``STRIDE_PREFIXES`` evenly spaced prefixes and ``RANDOM_PREFIXES`` random ones (the seed is
  drawn per check and stored with it): a peek that changes many rows (normalising by the whole
  series' max or mean) shows on any;
- then, around each of the ``SEEDS`` earliest differences found, every prefix ending in the
  ``REFINE`` candles before its row and every prefix within ``REFINE`` of the one that showed
  it, repeated (up to ``REFINEMENTS`` times) while that finds an earlier row.

The candle named is the earliest differing row among the prefixes checked. A signal that
appears live where the whole history holds (a filter on the next candle) shows on no prefix
planned here: the live replay (bot/research/live_replay.py) is the net for those. A peek that
changes no signal on this data is not seen (here it trades as if it did not peek); checking on
more data, or other pairs, widens the net.

Every run is on a fresh strategy object (``make``), and cut series are re-indexed from 0 as a
live tick's candles are.

Warm-up. ``warmup_needed`` cuts the history's start at ``CUTS`` places (half evenly spread,
half so the live window of ``strategy.history`` candles ends on a signal candle) and compares
the cut series' signals with the whole history's on the same candles. If the last difference
is ``j`` candles after the cut, a live window needs at least ``j + 2`` candles to decide as the
backtest does: the number returned is the largest such over the cuts (0 when none differ). It
is a lower bound measured on this data: a longer dependence that changes no signal here is not
seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from bot.research.signal_output import BadOutput, signal_codes
from strategies.base import HOLD, Strategy

SIGNAL_PREFIXES = 64
STRIDE_PREFIXES = 24
RANDOM_PREFIXES = 16
REFINE = 64
REFINEMENTS = 8
SEEDS = 4  # differences refined around, the earliest first
CUTS = 16

Codes = npt.NDArray[np.int8]
Make = Callable[[], Strategy]


@dataclass(frozen=True, slots=True)
class Difference:
    """Row ``candle`` computed on the first ``prefix`` candles is ``with_prefix``; computed on
    the whole history it is ``with_whole``."""

    candle: int
    prefix: int
    with_prefix: int
    with_whole: int


@dataclass(frozen=True, slots=True)
class LookAhead:
    difference: Difference | None
    prefixes: int  # how many prefixes were recomputed


def first_lookahead(
    make: Make, candles: pd.DataFrame, whole: Codes, plan: Sequence[int]
) -> LookAhead:
    """The earliest row found whose signal changes when later candles are cut, on the prefixes
    of ``plan`` (``planned_prefixes``) and around what they find (module doc)."""
    lowest = lowest_prefix(make())
    checked: set[int] = set()
    found: list[Difference] = []

    def compare(prefixes: Iterable[int]) -> None:
        for prefix in prefixes:
            if prefix not in checked:
                checked.add(prefix)
                difference = _compare(make, candles, whole, prefix)
                if difference is not None:
                    found.append(difference)

    compare(plan)
    for _ in range(REFINEMENTS):
        if not found:
            break
        before = min(difference.candle for difference in found)
        # around each of the SEEDS earliest differences: the same row may show on prefixes far
        # apart (a whole-series mean), and only one of them may lead to an earlier row
        seeds = sorted(found, key=lambda difference: (difference.candle, difference.prefix))
        compare(p for seed in seeds[:SEEDS] for p in _around(seed, lowest, len(candles)))
        if min(difference.candle for difference in found) == before:
            break
    earliest = min(
        found, key=lambda difference: (difference.candle, difference.prefix), default=None
    )
    return LookAhead(earliest, len(checked))


def _around(found: Difference, lowest: int, total: int) -> list[int]:
    """The prefixes ending in the ``REFINE`` candles before the row found, then those within
    ``REFINE`` of the prefix that showed it (a peek at a whole-series figure shows on a run of
    neighbouring prefixes)."""
    before = range(max(lowest, found.candle + 1 - REFINE), found.candle + 1)
    near = range(max(lowest, found.prefix - REFINE), min(total, found.prefix + REFINE + 1))
    return [*before, *near]


def lowest_prefix(strategy: Strategy) -> int:
    return max(strategy.ready_after, 1)


def planned_prefixes(whole: Codes, lowest: int, total: int, seed: int) -> list[int]:
    if total - 1 < lowest:
        return []
    signals = np.flatnonzero(whole != HOLD) + 1
    signals = signals[(signals >= lowest) & (signals < total)]
    if len(signals) > SIGNAL_PREFIXES:
        half = SIGNAL_PREFIXES // 2
        rest = signals[half:]
        spread = rest[np.linspace(0, len(rest) - 1, SIGNAL_PREFIXES - half).astype(int)]
        signals = np.concatenate([signals[:half], spread])
    stride = np.linspace(lowest, total - 1, STRIDE_PREFIXES).astype(int)
    randoms = np.random.default_rng(seed).integers(lowest, total, RANDOM_PREFIXES)
    return sorted({int(p) for p in np.concatenate([signals, stride, randoms])})


def _compare(make: Make, candles: pd.DataFrame, whole: Codes, prefix: int) -> Difference | None:
    try:
        codes = signal_codes(make(), candles.iloc[:prefix])
    except BadOutput as error:
        raise BadOutput(f"on the first {prefix} candles: {error}") from error
    differs = np.flatnonzero(codes != whole[:prefix])
    if not len(differs):
        return None
    row = int(differs[0])
    return Difference(row, prefix, int(codes[row]), int(whole[row]))


def warmup_needed(make: Make, candles: pd.DataFrame, whole: Codes, cuts: Sequence[int]) -> int:
    """Candles a window needs before its last signal equals the whole history's, over the
    ``cuts`` (``planned_cuts``; module doc)."""
    needed = 0
    for cut in cuts:
        try:
            codes = signal_codes(make(), candles.iloc[cut:].reset_index(drop=True))
        except BadOutput as error:
            raise BadOutput(f"on the candles from {cut} on: {error}") from error
        differs = np.flatnonzero(codes != whole[cut:])
        if len(differs):
            needed = max(needed, int(differs[-1]) + 2)
    return needed


def planned_cuts(history: int, whole: Codes) -> list[int]:
    """Half the cuts evenly spread over the first part of the data, half so that a window of
    ``history`` candles from the cut ends on a signal candle."""
    last = len(whole) - 2 * history
    if last < 1:
        return []
    even = np.linspace(1, last, CUTS // 2).astype(int)
    starts = np.flatnonzero(whole != HOLD) - (history - 1)
    starts = starts[(starts >= 1) & (starts <= last)]
    if len(starts) > CUTS // 2:
        starts = starts[np.linspace(0, len(starts) - 1, CUTS // 2).astype(int)]
    return sorted({int(cut) for cut in np.concatenate([even, starts])})

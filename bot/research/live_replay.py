"""The strategy check's live replay (issue 18): what a live tick decides, candle by candle.

A live tick hands a strategy the last ``history`` closed candles, re-indexed from 0
(bot/market/live_source.py keeps ``frame.iloc[-limit:].reset_index(drop=True)``, the same
columns and dtypes as a candle file), and acts on the last row of ``remembered_signals``
(bot/trading/engine.py ``signal_from_candles``). The replay does exactly that for a candle
``i``: a fresh strategy object on ``candles.iloc[i - history + 1 : i + 1]`` re-indexed from 0,
its last row compared with the whole history's signal at ``i`` (what the backtest trades).

A candle where they differ is attributed: when the whole prefix ``candles[: i + 1]`` also
decides otherwise than the whole history, the strategy reads candles after ``i``
(look-ahead); when the prefix agrees, the live window is too short (warm-up), and the window it
needs there is searched for.

Which candles: every one of the last ``RECENT``, every one where the whole history signals,
and every ``STRIDE``-th of the rest (``replay_rows``); fixed numbers, so a verdict never depends
on the machine's speed. What can slip through: a difference on a candle left out (between
strides, before the last ``RECENT``, where the whole history holds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from bot.research.signal_output import BadOutput, signal_codes
from strategies.base import HOLD, Strategy

RECENT = 1500
STRIDE = 6
ATTRIBUTED = 16  # differing candles attributed (each costs a run on the whole prefix)
MEASURED = 3  # warm-up differences whose needed window is searched for

Codes = npt.NDArray[np.int8]
Make = Callable[[], Strategy]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """At candle ``row`` the live tick decides ``live``, the whole history ``whole``; ``cause``
    "look-ahead" or "warm-up"; ``needs``: the window that decides as the whole history there
    (warm-up, when searched for)."""

    row: int
    live: int
    whole: int
    cause: str
    needs: int | None = None


@dataclass(frozen=True, slots=True)
class Replay:
    replayed: int  # candles replayed
    differing: int  # of which the live tick decided otherwise
    attributed: tuple[Mismatch, ...]  # the first ones, in candle order


def replay_rows(total: int, history: int, whole: Codes) -> list[int]:
    """The candles replayed (module doc); a live tick needs ``history`` candles."""
    first = history - 1
    if total <= first:
        return []
    rows = set(range(max(first, total - RECENT), total))
    rows.update(int(row) for row in np.flatnonzero(whole != HOLD) if row >= first)
    rows.update(range(first, total, STRIDE))
    return sorted(rows)


def live_window(candles: pd.DataFrame, row: int, size: int) -> pd.DataFrame:
    """The ``size`` candles a live tick at candle ``row`` hands the strategy."""
    return candles.iloc[max(0, row - size + 1) : row + 1].reset_index(drop=True)


def live_code(make: Make, candles: pd.DataFrame, row: int, size: int) -> int:
    """What a fresh strategy object decides on the live window of ``size`` ending at ``row``."""
    window = live_window(candles, row, size)
    try:
        return int(signal_codes(make(), window, live=True)[-1])
    except BadOutput as error:
        raise BadOutput(f"on the live window of {len(window)} candles to {row}: {error}") from error


def replay(make: Make, candles: pd.DataFrame, whole: Codes, rows: Sequence[int]) -> Replay:
    """Replay ``rows`` (module doc) and attribute the first differing ones."""
    history = make().history
    decided = ((row, live_code(make, candles, row, history)) for row in rows)
    differing = [(row, live) for row, live in decided if live != whole[row]]
    attributed: list[Mismatch] = []
    for row, live in differing[:ATTRIBUTED]:
        if live_code(make, candles, row, row + 1) != whole[row]:
            attributed.append(Mismatch(row, live, int(whole[row]), "look-ahead"))
            break  # the first look-ahead found: the verdict names it
        measured = sum(m.needs is not None for m in attributed) < MEASURED
        needs = window_needed(make, candles, whole, row, history) if measured else None
        attributed.append(Mismatch(row, live, int(whole[row]), "warm-up", needs))
    return Replay(len(rows), len(differing), tuple(attributed))


def window_needed(make: Make, candles: pd.DataFrame, whole: Codes, row: int, short: int) -> int:
    """The shortest live window ending at ``row`` that decides as the whole history, between
    ``short`` (too short) and the whole prefix (long enough): a binary search."""
    low, high = short, row + 1
    while high - low > 1:
        middle = (low + high) // 2
        if live_code(make, candles, row, middle) == whole[row]:
            high = middle
        else:
            low = middle
    return high

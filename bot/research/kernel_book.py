"""The kernel's account across pairs, compiled: the clock the pairs share, the equity marked
with each pair's last seen price, and what an entry reads of the other pairs (positions open,
limits resting, the exposure, the cash their limits set aside).

As the live engine reads them (``Portfolio.equity``, ``Engine._size_entry``): positions summed
in the order of each pair's first fill, the prices each pair last closed at (a later pair's
is the previous step's).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from bot.core.compiled import compiled
from bot.research.kernel_inputs import (
    ATR_MULTIPLE,
    FRACTION,
    MAX_EXPOSURE,
    MAX_POSITION,
    RISK_PER_TRADE,
    SHARE,
    STOP_LOSS,
    TRAILING,
)
from bot.research.kernel_inputs import MAX_OPEN as MOST_OPEN
from bot.research.kernel_inputs import MIN_ORDER as LEAST_ORDER
from bot.risk.rules import entry_budget, initial_stop_distance

Floats = NDArray[np.float64]
Stamps = NDArray[np.int64]

# Why an entry signal was refused, in the engine's order of checks.
HALT, DAILY, COOLDOWN, MAX_OPEN, MIN_ORDER = range(5)
REASONS = MIN_ORDER + 1
# Funds: with other pairs' limits resting, the account has less free cash than the books say.
_DUST = 1e-9


@compiled
def union_clock(close_ms: Stamps, offsets: Stamps, lengths: Stamps, end_ms: int) -> Stamps:
    """Every close time some pair has up to ``end_ms``, once, in order: the steps of a replay
    (the live clock ticks at each; a pair acts at the steps its own candles close at)."""
    pairs = offsets.shape[0]
    ptr = np.zeros(pairs, np.int64)
    out = np.empty(close_ms.shape[0], np.int64)
    count = 0
    while True:
        now = end_ms + 1
        for k in range(pairs):
            if ptr[k] < lengths[k]:
                now = min(now, close_ms[offsets[k] + ptr[k]])
        if now > end_ms:
            return out[:count]
        out[count] = now
        count += 1
        for k in range(pairs):
            if ptr[k] < lengths[k] and close_ms[offsets[k] + ptr[k]] == now:
                ptr[k] += 1


@compiled
def others(
    k: int,
    held: Floats,
    seen: Floats,
    order: Stamps,
    ordered: int,
    limit_price: Floats,
    limit_amount: Floats,
    limit_budget: Floats,
) -> tuple[int, float, float]:
    """What pair ``k``'s entry sees of the account: positions open plus other pairs' limits
    resting (max open positions), the exposure (positions at their last close, resting limits
    as if filled), and the cash other pairs' limits set aside."""
    count = 0
    positions = 0.0
    for rank in range(ordered):
        j = order[rank]
        if held[j] > 0.0:
            count += 1
            positions += held[j] * seen[j]
    pending = 0.0
    reserved = 0.0
    for j in range(held.shape[0]):
        if j != k and limit_price[j] > 0.0:
            count += 1 if held[j] == 0.0 else 0
            pending += limit_amount[j] * seen[j]
            reserved += limit_budget[j]
    return count, positions + pending, reserved


@compiled
def refused(needed: float, cash: float, reserved: float) -> bool:
    """Whether the account refuses an order needing ``needed``: only where other pairs'
    resting limits set cash aside (the paper account's balance is the books' cash less it)."""
    return reserved > 0.0 and needed > (cash - reserved) * (1.0 + _DUST)


# The account's state an entry reads: (held, seen, order, ordered, limit price, limit amount,
# limit budget), each per pair but ``ordered`` (how many pairs have filled).
Account = tuple[Floats, Floats, Stamps, int, Floats, Floats, Floats]


@compiled
def entry_check(
    k: int,
    g: int,
    blocks: tuple[bool, bool, int],
    money: tuple[float, float],
    account: Account,
    candles: tuple[Floats, Floats, Floats, Stamps],
    p: Floats,
) -> tuple[int, float, float, float]:
    """Pair ``k``'s entry at its candle ``g`` as ``Engine._size_entry`` checks it: ``blocks``
    (halted, the day's loss limit hit, cooling down until ms), then the positions open and
    the other pairs' limits resting, then the budget against the minimum order. ``money``:
    (equity as marked, cash); ``candles``: (close, atr, volatility scale, close ms). Returns
    (the veto's reason or -1, the budget, the ATR stop's distance, the cash other pairs'
    limits set aside)."""
    halted, daily, cooldown_until = blocks
    equity, cash = money
    held, seen, order, ordered, limit_price, limit_amount, limit_budget = account
    close, atr, scale, close_ms = candles
    if halted:
        return HALT, 0.0, 0.0, 0.0
    if daily:
        return DAILY, 0.0, 0.0, 0.0
    if close_ms[g] <= cooldown_until:
        return COOLDOWN, 0.0, 0.0, 0.0
    busy, exposure, reserved = others(
        k, held, seen, order, ordered, limit_price, limit_amount, limit_budget
    )
    if busy >= p[MOST_OPEN]:
        return MAX_OPEN, 0.0, 0.0, reserved
    distance_atr = 0.0
    if p[ATR_MULTIPLE] > 0.0 and not math.isnan(atr[g]):
        distance_atr = p[ATR_MULTIPLE] * atr[g]
    budget = entry_budget(
        equity,
        cash,
        exposure,
        p[SHARE],
        p[FRACTION],
        p[MAX_POSITION],
        p[MAX_EXPOSURE],
        p[RISK_PER_TRADE],
        initial_stop_distance(close[g], p[STOP_LOSS], distance_atr, p[TRAILING]),
        scale[g],
    )
    if not (budget >= p[LEAST_ORDER] and budget > 0.0):
        return MIN_ORDER, budget, distance_atr, reserved
    return -1, budget, distance_atr, reserved


@compiled
def enlist(order: Stamps, ordered: int, k: int) -> int:
    """Pair ``k`` filled: listed in first-fill order unless it filled before (its place in the
    equity's sum is kept, as a dict keeps a key's). Returns how many are listed."""
    for rank in range(ordered):
        if order[rank] == k:
            return ordered
    order[ordered] = k
    return ordered + 1

"""The kernel's trade book, compiled: a trade's entry and exit written to the trade columns,
the cash and fees they move, and the losing streak that starts a cooldown.

The compiled loop (``kernel.py``) calls these once per fill; the columns are numpy arrays it
owns, a row per trade.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bot.core.compiled import compiled
from bot.research.kernel_inputs import (
    COOLDOWN_LOSSES,
    COOLDOWN_MS,
    FEE,
    FEE_IN_COIN,
    VOLUME_SHARE,
)
from bot.risk.fills import capped, coins_for, coins_kept, fee_of
from bot.risk.rules import EXIT_REASONS as RULE_EXITS
from bot.risk.rules import trade_lost

# A position still open at the end of the data: marked at the last close with its exit costs.
STILL_OPEN = len(RULE_EXITS)
EXIT_REASONS = (*RULE_EXITS, "open")

Floats = NDArray[np.float64]
Stamps = NDArray[np.int64]
# A trade's entry columns: when (ms), the fill price, the coins held, the fee.
Entries = tuple[Stamps, Floats, Floats, Floats]
# Its exit columns: when (ms), the fill price, the fee, the reason, whether the candle reached
# both the stop and the target.
Exits = tuple[Stamps, Floats, Floats, NDArray[np.int8], NDArray[np.bool_]]
# (cash, fees, losses in a row, cooldown until (ms))
Money = tuple[float, float, int, int]


@compiled
def cooldown(
    lost: bool, losses: int, cooldown_until: int, now_ms: int, p: Floats
) -> tuple[int, int]:
    """Count a closed trade; enough losses in a row refuse entries for a span of time (not of
    candles: a gap in the data passes the time as it does live). Returns (losses,
    cooldown_until)."""
    if not lost:
        return 0, cooldown_until
    losses += 1
    if p[COOLDOWN_LOSSES] > 0.0 and losses >= p[COOLDOWN_LOSSES]:
        return 0, now_ms + int(p[COOLDOWN_MS])
    return losses, cooldown_until


@compiled
def record_entry(
    stamp: int,
    count: int,
    budget: float,
    fill: float,
    limit: float,
    volume: float,
    p: Floats,
    entries: Entries,
    cash: float,
    fees: float,
) -> tuple[float, float, float]:
    """Write trade ``count``'s entry spending ``budget`` (fee included) at ``fill``; returns
    (held, cash, fees) after it. ``limit``: a limit entry's price (0: a market entry);
    ``volume``: its fill candle's, which caps the coins bought (the rest expires, unspent).

    As the order is sized: a limit buy, whatever coin pays its fee, as many coins as the budget
    pays at its limit with the fee (a market that opens under the limit fills them for less).
    A market buy: with the fee in the quote, the coins and their fee spend the budget; with the
    fee in the coins bought (``FEE_IN_COIN``) the whole budget buys coins (sized in the quote)
    and the fee (valued at the fill) comes out of them."""
    entry_ms, entry_price, amount, entry_fee = entries
    fee_rate = p[FEE]
    in_coin = p[FEE_IN_COIN] > 0.0
    if limit > 0.0:
        bought = coins_for(budget, limit, fee_rate, False)
    else:
        bought = coins_for(budget, fill, fee_rate, in_coin)
    bought = capped(bought, volume, p[VOLUME_SHARE])
    fee = fee_of(bought, fill, fee_rate)
    held = coins_kept(bought, fee_rate, in_coin)
    entry_ms[count] = stamp
    entry_price[count] = fill
    amount[count] = held
    entry_fee[count] = fee
    return held, cash - bought * fill - (0.0 if in_coin else fee), fees + fee


@compiled
def record_exit(
    stamp: int,
    count: int,
    held: float,
    fill: float,
    fee_rate: float,
    reason: int,
    both: bool,
    price_in: float,
    entry_fee: Floats,
    trades: Exits,
) -> tuple[float, bool]:
    """Write trade ``count``'s exit; returns (fee, whether the trade lost)."""
    exit_ms, exit_price, exit_fee, exit_reason, ambiguous = trades
    fee = fee_of(held, fill, fee_rate)
    exit_ms[count] = stamp
    exit_price[count] = fill
    exit_fee[count] = fee
    exit_reason[count] = reason
    ambiguous[count] = both
    return fee, trade_lost(held, price_in, fill, entry_fee[count] + fee)


@compiled
def sell_all(
    i: int,
    count: int,
    held: float,
    fill: float,
    reason: int,
    both: bool,
    price_in: float,
    money: Money,
    entry_fee: Floats,
    trades: Exits,
    close_ms: Stamps,
    act_ms: Stamps,
    p: Floats,
) -> tuple[float, float, int, int, int, float]:
    """Trade ``count`` sells everything at ``fill`` as the engine acts on candle ``i``.
    ``money``: (cash, fees, losses, cooldown_until); returns them as they become, then the next
    trade's number and nothing held."""
    cash, fees, losses, cooldown_until = money
    fee, lost = record_exit(
        act_ms[i], count, held, fill, p[FEE], reason, both, price_in, entry_fee, trades
    )
    losses, cooldown_until = cooldown(lost, losses, cooldown_until, close_ms[i], p)
    return cash + held * fill - fee, fees + fee, losses, cooldown_until, count + 1, 0.0

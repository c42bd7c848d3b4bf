"""The kernel's trade book, compiled: a trade's entry and exit written to the trade columns,
the cash and fees they move, and the losing streak that starts a cooldown. An exit may come in
parts (the volume cap): each sale is averaged into the trade's exit, as the live books build
a trade from its fills.

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
    SLIPPAGE,
    VOLUME_SHARE,
)
from bot.risk.fills import capped, coins_for, coins_kept, fee_of, sold_at
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
def trade_columns(size: int) -> tuple[Entries, Exits]:
    """Room for ``size`` trades' entry and exit columns. Left unwritten (np.empty): only the
    rows written are read, and untouched memory costs nothing, where zeroing all of it would
    cost more than the trading."""
    entries = (np.empty(size, np.int64), np.empty(size), np.empty(size), np.empty(size))
    exits = (
        np.empty(size, np.int64),
        np.empty(size),
        np.empty(size),
        np.empty(size, np.int8),
        np.empty(size, np.bool_),
    )
    return entries, exits


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
def entry_coins(budget: float, fill: float, limit: float, volume: float, p: Floats) -> float:
    """The coins an entry spending ``budget`` (fee included) buys at ``fill``, capped by its
    fill candle's ``volume``. As the order is sized: a limit buy, whatever coin pays its fee, as
    many coins as the budget pays at its limit with the fee (a market that opens under the
    limit fills them for less). A market buy: with the fee in the quote, the coins and their fee
    spend the budget; with the fee in the coins bought (``FEE_IN_COIN``) the whole budget buys
    coins (sized in the quote) and the fee (valued at the fill) comes out of them."""
    if limit > 0.0:
        bought = coins_for(budget, limit, p[FEE], False)
    else:
        bought = coins_for(budget, fill, p[FEE], p[FEE_IN_COIN] > 0.0)
    return capped(bought, volume, p[VOLUME_SHARE])


@compiled
def record_entry(
    stamp: int,
    row: int,
    budget: float,
    fill: float,
    limit: float,
    volume: float,
    p: Floats,
    entries: Entries,
    cash: float,
    fees: float,
) -> tuple[float, float, float]:
    """Write trade ``row``'s entry spending ``budget`` (fee included) at ``fill``; returns
    (held, cash, fees) after it. ``limit``: a limit entry's price (0: a market entry);
    ``volume``: its fill candle's, which caps the coins bought (the rest expires, unspent)
    (``entry_coins``)."""
    entry_ms, entry_price, amount, entry_fee = entries
    fee_rate = p[FEE]
    in_coin = p[FEE_IN_COIN] > 0.0
    bought = entry_coins(budget, fill, limit, volume, p)
    fee = fee_of(bought, fill, fee_rate)
    held = coins_kept(bought, fee_rate, in_coin)
    entry_ms[row] = stamp
    entry_price[row] = fill
    amount[row] = held
    entry_fee[row] = fee
    return held, cash - bought * fill - (0.0 if in_coin else fee), fees + fee


@compiled
def record_part(
    stamp: int,
    row: int,
    part: float,
    fill: float,
    fee_rate: float,
    sold_before: float,
    reason: int,
    both: bool,
    trades: Exits,
) -> float:
    """Write ``part`` of trade ``row``'s coins sold at ``fill``, after ``sold_before`` of them
    sold earlier, into its exit as the live books build a trade from its sales: the
    volume-weighted price, the fees summed, the last sale's time; the reason (and whether the
    candle reached both the stop and the target) the first sale's. Returns the part's fee."""
    exit_ms, exit_price, exit_fee, exit_reason, ambiguous = trades
    fee = fee_of(part, fill, fee_rate)
    exit_ms[row] = stamp
    if sold_before > 0.0:
        sold = sold_before + part
        exit_price[row] = (exit_price[row] * sold_before + part * fill) / sold
        exit_fee[row] += fee
    else:
        exit_price[row] = fill
        exit_fee[row] = fee
        exit_reason[row] = reason
        ambiguous[row] = both
    return fee


# What a sale books into: the entry columns (a trade's coins and entry fee: its loss counts
# them), the exit columns, and the candles' close and act times.
Book = tuple[Entries, Exits, Stamps, Stamps]
# The sale: (the candle acted on, the trade's row, the coins held, the fill price, the
# candle volume its order fills into, filled inside candle i (a resting stop)).
Sale = tuple[int, int, float, float, float, bool]


@compiled
def sell_part(
    sale: Sale, reason: int, both: bool, money: Money, book: Book, p: Floats
) -> tuple[float, float, int, int, float, int]:
    """Sell what the volume cap lets an order sell of a position (``fills.capped``), as the
    paper account fills it; the rest stays held and is sold at the pair's next turn.

    ``sale``: the engine acts on candle i: a market sale is stamped then (the next open), a
    resting stop's at candle i's close when it filled inside it (the venue fills it as the
    candle trades; the engine books it at that close, which differs from the next open after
    a gap in the pair's data). The trade closes, and counts toward the cooldown, when its last
    coin is sold. ``money``: (cash, fees, losses, cooldown_until); returns them as they
    become, the coins left, and 1 where the order filled only in part, else 0."""
    i, row, held, fill, volume, in_candle = sale
    (_, entry_price, amount, entry_fee), trades, close_ms, act_ms = book
    cash, fees, losses, cooldown_until = money
    part = capped(held, volume, p[VOLUME_SHARE])
    if part <= 0.0:
        return cash, fees, losses, cooldown_until, held, 0
    stamp = close_ms[i] if in_candle else act_ms[i]
    fee = record_part(stamp, row, part, fill, p[FEE], amount[row] - held, reason, both, trades)
    left = held - part
    if left <= 0.0:  # the trade closes: its exit is the sales' average, its fees all of them
        _, price_out, fees_out, _, _ = trades
        lost = trade_lost(
            amount[row], entry_price[row], price_out[row], entry_fee[row] + fees_out[row]
        )
        losses, cooldown_until = cooldown(lost, losses, cooldown_until, close_ms[i], p)
    split = 1 if left > 0.0 else 0
    return cash + part * fill - fee, fees + fee, losses, cooldown_until, left, split


@compiled
def close_out(
    closes: tuple[Stamps, Floats, Stamps],
    positions: tuple[Floats, Stamps],
    book: tuple[Floats, Exits],
    curves: tuple[Floats, Floats, Floats],
    money: tuple[float, float],
    p: Floats,
) -> tuple[float, float, NDArray[np.bool_]]:
    """The positions still open at the end (``positions``: coins held and trade row per pair),
    each written to its trade row as sold at its pair's last close (``closes``: close ms,
    close, each pair's last candle acted on) with the costs of selling it there (reason
    "open"; a trade whose sale the volume cap left part of averages its sales and this), and
    so marked in the last step of ``curves`` (equity, contribution per pair, cash flow per
    pair). ``book``: the trades' coins bought and exit columns. ``money``: (cash, fees);
    returns them as they become, and which pairs held."""
    close_ms, close, last = closes
    held, rows = positions
    amount, trades = book
    equity, contribution, flow = curves
    cash, fees = money
    still_open = held > 0.0
    for k in range(held.shape[0]):
        if still_open[k]:
            g, row = last[k], rows[k]
            fill = sold_at(close[g], p[SLIPPAGE])
            sold = amount[row] - held[k]
            fee = record_part(
                close_ms[g], row, held[k], fill, p[FEE], sold, STILL_OPEN, False, trades
            )
            trades[3][row], trades[4][row] = STILL_OPEN, False
            cash = cash + held[k] * fill - fee
            fees += fee
            flow[k] += held[k] * fill - fee
            held[k] = 0.0
            equity[-1] = cash
            contribution[-1, k] = flow[k]
    return cash, fees, still_open

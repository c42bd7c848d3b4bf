"""The backtest kernel: the live engine's trading rules over float64 arrays, compiled by numba.

At the close of each candle i, in the same order as ``Engine.on_candles``:

1. A new (local) day starts the day's loss budget from the equity marked at the previous
   close, so every candle's loss counts against the day its close falls in (1d candles too).
2. A limit entry placed at the last close fills if this candle reached it, at min(open, limit)
   (no slippage); in this candle it is protected from its fill price down to the low.
3. An open position's protective exits are checked inside candle i (``rules.check_exit``). The
   engine sees them at the close and sells at market then: at the next open, with slippage
   (on the last candle there is none: the position is reported still open). Where the venue
   holds stop orders (``resting_stops``), the stop resting there fills at min(open, its level)
   inside the candle. It is placed at the entry and, as the engine does, raised at a close
   only once the level has risen ``TRAIL_STEP``: a candle that reaches the exact trailing
   level but not the resting one is seen at the close and sold at the next open.
4. Equity is marked at the close, the peak follows it, and ``rules.loss_gate`` halts entries:
   for good after the drawdown limit, for the rest of the day after the daily loss limit.
5. The signal acts at the next candle's open: an entry spends ``rules.entry_budget`` unless
   halted, cooling down after losses (for a span of time), or under the minimum order; an exit
   sells everything. The last candle's signal is never acted on. With an entry offset the
   entry is instead a limit buy at close * (1 - offset), good for candle i+1.

Nothing fills in a candle with no volume (the placeholders an exchange returns around an
outage): nobody traded then, and the paper exchange refuses such fills too. An entry into one
is lost, as its order expires; a protective exit is checked again on the next candle; an exit
signal's sale is sent again at the next close (the engine's ``_finish_exit``).

An entry fills at most ``VOLUME_SHARE`` of its fill candle's volume (``fills.capped``, the
paper account's ``max_volume_share``; 0: no cap): the rest of the buy expires, its money stays
cash. Sales are not capped yet: where a sale would be, the paper account sells in parts.

Buys fill at open * (1 + slippage), sells at price * (1 - slippage); the fee is a fraction of
each fill's notional, paid in the quote, or for a buy in the coins bought (``fee_in_coin``).
Every fill is stamped with when the engine acts on the candle being processed: the next
candle's open (its close, for the last candle), which is later than the close after a gap in
the data. A position still open at the end is reported as an open trade, marked at the last
close with the costs of selling it there. The parity tests hold this to the live engine, trade
for trade, on real data for every built-in strategy: on the paper account, and live on each
venue's exchange fake (tests/integration/test_venue_parity.py).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from bot.core.compiled import compiled
from bot.research.kernel_inputs import (
    ATR_MULTIPLE,
    BALANCE,
    DAILY_LOSS,
    ENTRY_OFFSET,
    FEE,
    FRACTION,
    MAX_DRAWDOWN,
    MAX_EXPOSURE,
    MAX_OPEN,
    MAX_POSITION,
    MIN_ORDER,
    RESTING,
    RISK_PER_TRADE,
    SHARE,
    SLIPPAGE,
    STOP_LOSS,
    TAKE_PROFIT,
    TRAILING,
)
from bot.research.kernel_trades import (
    STILL_OPEN,
    Floats,
    Stamps,
    record_entry,
    record_exit,
    sell_all,
)
from bot.risk.fills import bought_at, limit_bought_at, sold_at, stop_sold_at
from bot.risk.rules import (
    GATE_DAILY_LOSS,
    GATE_DRAWDOWN,
    SIGNAL,
    TRAIL_STEP,
    check_exit,
    entry_budget,
    initial_stop_distance,
    loss_gate,
    stop_level,
)

# What ``run`` returns: the equity and the stop line per candle, the trade columns (entry ms,
# exit ms, entry price, exit price, amount, entry fee, exit fee, exit reason, ambiguous), then
# the number of trades, whether the last is still open, every fee paid, the entries refused,
# and the candle that tripped the drawdown halt (-1: none).
Arrays = tuple[
    Floats,
    Floats,
    Stamps,
    Stamps,
    Floats,
    Floats,
    Floats,
    Floats,
    Floats,
    NDArray[np.int8],
    NDArray[np.bool_],
    int,
    bool,
    float,
    int,
    int,
]


@compiled
def run(  # noqa: C901
    open_: Floats,
    high: Floats,
    low: Floats,
    close: Floats,
    volume: Floats,
    codes: NDArray[np.int8],
    atr: Floats,
    scale: Floats,
    day: Stamps,
    close_ms: Stamps,
    act_ms: Stamps,
    p: Floats,
) -> Arrays:
    """Trade one pair's signal ``codes`` over its candles (the arrays ``simulation.simulate``
    hands over, C-contiguous and writable: one compiled signature) under the parameters
    ``p``."""
    n = close.shape[0]
    equity = np.empty(n)
    stop_line = np.full(n, np.nan)
    # One entry at most per candle (a signal, or a limit filled in it) and every trade has
    # one: a trade can close on the candle after it opened, and the next open on that close.
    # Left unwritten (np.empty): only the first ``count`` rows are read, and untouched memory
    # costs nothing, where zeroing all of it would cost more than the trading.
    size = n + 1
    entry_ms = np.empty(size, np.int64)
    exit_ms = np.empty(size, np.int64)
    entry_price = np.empty(size)
    exit_price = np.empty(size)
    amount = np.empty(size)
    entry_fee = np.empty(size)
    exit_fee = np.empty(size)
    exit_reason = np.empty(size, np.int8)
    ambiguous = np.empty(size, np.bool_)
    trades = (exit_ms, exit_price, exit_fee, exit_reason, ambiguous)
    entries = (entry_ms, entry_price, amount, entry_fee)
    fee_rate, slippage = p[FEE], p[SLIPPAGE]
    cash = p[BALANCE]
    held = 0.0
    price_in = 0.0
    peak_price = 0.0
    atr_distance = 0.0
    count = 0
    fees = 0.0
    vetoes = 0
    equity_peak = p[BALANCE]
    today = -(2**62)
    day_start = p[BALANCE]
    last_marked = p[BALANCE]  # equity marked at the previous close: where a new day starts
    daily_halt_day = -(2**62)
    halted_at = -1
    losses = 0
    cooldown_until = -(2**62)  # ms: entries at closes up to here are refused
    limit_price = 0.0  # a limit entry resting through the next candle (0: none)
    limit_budget = 0.0
    limit_atr = 0.0
    exit_due = False  # an exit signal's sale found no volume: sent again at this close
    resting_level = -math.inf  # the stop resting on the venue (-inf: none)
    for i in range(n):
        if day[i] != today:
            today = day[i]
            day_start = last_marked
        # A per-candle exit is seen at the close and sold at market then: the next open.
        market = open_[i + 1] if i < n - 1 else math.nan
        can_sell = i < n - 1 and volume[i + 1] > 0.0  # an order sent at this close can fill
        filled_limit = False
        if limit_price > 0.0:  # filled if this candle reached it; cancelled at its close if not
            if low[i] <= limit_price and volume[i] > 0.0:
                fill = limit_bought_at(open_[i], limit_price)
                held, cash, fees = record_entry(
                    act_ms[i],
                    count,
                    limit_budget,
                    fill,
                    limit_price,
                    volume[i],
                    p,
                    entries,
                    cash,
                    fees,
                )
                price_in, peak_price, atr_distance = fill, fill, limit_atr
                filled_limit = True
                resting_level = -math.inf  # placed at this candle's close
            limit_price = 0.0
        if exit_due and held > 0.0 and can_sell:
            cash, fees, losses, cooldown_until, count, held = sell_all(
                i,
                count,
                held,
                sold_at(market, slippage),
                SIGNAL,
                False,
                price_in,
                (cash, fees, losses, cooldown_until),
                entry_fee,
                trades,
                close_ms,
                act_ms,
                p,
            )
        exit_due = exit_due and held > 0.0
        if held > 0.0:
            # In its fill candle a limit entry is protected from its fill price down to the low.
            top = price_in if filled_limit else high[i]
            stop, trigger, reason, both = check_exit(
                price_in,
                peak_price,
                atr_distance,
                p[STOP_LOSS],
                p[TAKE_PROFIT],
                p[TRAILING],
                price_in if filled_limit else open_[i],
                top,
                low[i],
            )
            if stop > -math.inf:
                stop_line[i] = stop
            # The stop resting on the exchange fills at its level; else the exit is seen at
            # this close and sold at the next open (none after the last candle: still open).
            resting = low[i] <= resting_level and volume[i] > 0.0
            if resting or (not math.isnan(trigger) and can_sell):
                if resting:
                    fill = stop_sold_at(open_[i], resting_level, slippage)
                else:
                    fill = sold_at(market, slippage)
                cash, fees, losses, cooldown_until, count, held = sell_all(
                    i,
                    count,
                    held,
                    fill,
                    reason,
                    both,
                    price_in,
                    (cash, fees, losses, cooldown_until),
                    entry_fee,
                    trades,
                    close_ms,
                    act_ms,
                    p,
                )
            elif math.isnan(trigger):
                peak_price = max(peak_price, top)
                level, _ = stop_level(price_in, peak_price, atr_distance, p[STOP_LOSS], p[TRAILING])
                if p[RESTING] > 0.0 and (filled_limit or level >= resting_level * (1 + TRAIL_STEP)):
                    resting_level = level  # placed after a limit fill, or raised
        marked = cash + held * close[i]
        last_marked = marked
        equity_peak = max(equity_peak, marked)
        gate = loss_gate(marked, equity_peak, day_start, p[DAILY_LOSS], p[MAX_DRAWDOWN])
        if gate == GATE_DRAWDOWN and halted_at < 0:
            halted_at = i
        elif gate == GATE_DAILY_LOSS:
            daily_halt_day = today
        if i < n - 1:
            code = codes[i]
            if code == 1 and held == 0.0:
                budget = 0.0
                distance_atr = 0.0
                if not (
                    halted_at >= 0
                    or daily_halt_day == today
                    or close_ms[i] <= cooldown_until
                    or p[MAX_OPEN] < 1.0
                ):
                    if p[ATR_MULTIPLE] > 0.0 and not math.isnan(atr[i]):
                        distance_atr = p[ATR_MULTIPLE] * atr[i]
                    budget = entry_budget(
                        marked,
                        cash,
                        0.0,
                        p[SHARE],
                        p[FRACTION],
                        p[MAX_POSITION],
                        p[MAX_EXPOSURE],
                        p[RISK_PER_TRADE],
                        initial_stop_distance(close[i], p[STOP_LOSS], distance_atr, p[TRAILING]),
                        scale[i],
                    )
                if budget >= p[MIN_ORDER] and budget > 0.0 and p[ENTRY_OFFSET] > 0.0:
                    limit_price = close[i] * (1.0 - p[ENTRY_OFFSET])
                    limit_budget = budget
                    limit_atr = distance_atr
                elif budget >= p[MIN_ORDER] and budget > 0.0 and not can_sell:
                    pass  # the order expires unfilled in a candle with no volume
                elif budget >= p[MIN_ORDER] and budget > 0.0:
                    fill = bought_at(market, slippage)
                    held, cash, fees = record_entry(
                        act_ms[i],
                        count,
                        budget,
                        fill,
                        0.0,
                        volume[i + 1],
                        p,
                        entries,
                        cash,
                        fees,
                    )
                    price_in, peak_price, atr_distance = fill, fill, distance_atr
                    if p[RESTING] > 0.0:  # placed as the entry fills
                        resting_level = stop_level(
                            fill, fill, distance_atr, p[STOP_LOSS], p[TRAILING]
                        )[0]
                else:
                    vetoes += 1
            elif code == -1 and held > 0.0 and not can_sell:
                exit_due = True
            elif code == -1 and held > 0.0:
                cash, fees, losses, cooldown_until, count, held = sell_all(
                    i,
                    count,
                    held,
                    sold_at(market, slippage),
                    SIGNAL,
                    False,
                    price_in,
                    (cash, fees, losses, cooldown_until),
                    entry_fee,
                    trades,
                    close_ms,
                    act_ms,
                    p,
                )
        equity[i] = cash + held * close[i]
    still_open = held > 0.0
    if still_open:  # marked to market at the last close with the costs of selling it there
        fill = sold_at(close[n - 1], slippage)
        fee, _ = record_exit(
            close_ms[n - 1],
            count,
            held,
            fill,
            fee_rate,
            STILL_OPEN,
            False,
            price_in,
            entry_fee,
            trades,
        )
        cash = cash + held * fill - fee
        fees += fee
        count += 1
        equity[n - 1] = cash
    return (
        equity,
        stop_line,
        entry_ms,
        exit_ms,
        entry_price,
        exit_price,
        amount,
        entry_fee,
        exit_fee,
        exit_reason,
        ambiguous,
        count,
        still_open,
        fees,
        vetoes,
        halted_at,
    )

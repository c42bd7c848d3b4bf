"""The backtest kernel: the live engine's trading rules over float64 arrays, compiled by numba,
for one pair or several trading one account on one clock (one pair is the case N=1).

The clock steps through every close time some pair has (``kernel_book.union_clock``); the pairs
whose candle closes then act one after another in config order, as the live service ticks its
runs. Cash, the loss limits and the marks are the account's: an earlier pair's fills move what
a later pair sees in the same step. At the close of a pair's candle i, as ``Engine.on_candles``:

1. A new (local) day starts the day's loss budget from the equity marked last (by any pair).
2. A limit entry placed at the pair's last close fills if this candle reached it, at
   min(open, limit) (no slippage), protected in this candle from its fill price down to the
   low. The quote it set aside while it rested is free again.
3. A stop resting on the venue (``resting_stops``) that candle i reached has filled, at
   min(open, its level); it is placed at the entry and raised at a close only once the level
   has risen ``TRAIL_STEP``, as the engine does. The rest of a sale is sold (see below). An
   open position's protective exits are checked inside candle i (``rules.check_exit``) and
   sold at market at the close: the next open, with slippage (none after the last candle: the
   position is reported still open).
4. Equity is marked: cash plus every position at its pair's last close (a later pair's is the
   previous step's), summed in first-fill order as the books sum it. The peak follows it and
   ``rules.loss_gate`` halts entries (for good after the drawdown limit, for the day after the
   daily loss limit), this pair's entry and every later pair's in the step.
5. The signal acts at the next open. An entry is refused (counted by reason) when halted, for
   the day's loss, cooling down after the pair's losses (a span of time), with as many
   positions open and other pairs' limits resting as allowed, or when ``rules.entry_budget``
   (the pair's capital share, the exposure of positions and resting limits) is under the
   minimum order. An entry the paper account cannot pay because other pairs' resting limits
   set its cash aside is refused as it refuses it (``rejected``, not a veto). An exit sells
   everything the volume cap lets it. With an entry offset the entry is a limit buy at
   close * (1 - offset), good for candle i+1. The last candle's signal is never acted on.

Nothing fills in a candle with no volume (an exchange's placeholders around an outage): an
entry into one expires; a protective exit is checked again on the next candle; an exit
signal's sale is sent again at the next close. An order fills at most ``VOLUME_SHARE`` of its
fill candle's volume (``fills.capped``; 0: no cap), each order on its own. An entry's rest
expires. A sale's rest stays held, counted as the position it is (open positions, exposure,
equity), and is sold at the pair's next close at market, capped again, whatever the signals
say (the engine's ``finish_exit``; a halt does not stop it); a stop resting on the venue is
put back on the rest meanwhile, and one filled in part leaves its rest to the per-candle exit
check. The trade closes at its last sale, its exit averaged over its sales
(``kernel_trades.sell_part``). The paper account has no dust: a rest is never too small to sell.

Buys fill at open * (1 + slippage), sells at price * (1 - slippage); the fee is a fraction of
each fill's notional, in the quote, or for a buy in the coins bought (``fee_in_coin``). Fills
are stamped when the engine acts on the candle: the next candle's open (its close, for the
last candle). A position still open at the end is an open trade, marked at its pair's last
close with the costs of selling it there. The parity tests hold this to the live engine, trade
for trade, on the paper account and on each venue's exchange fake.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from bot.core.compiled import compiled
from bot.research.kernel_book import (
    REASONS,
    enlist,
    entry_check,
    refused,
)
from bot.research.kernel_inputs import (
    BALANCE,
    DAILY_LOSS,
    ENTRY_OFFSET,
    FEE,
    MAX_DRAWDOWN,
    RESTING,
    SLIPPAGE,
    STOP_LOSS,
    TAKE_PROFIT,
    TRAILING,
)
from bot.research.kernel_trades import (
    Entries,
    Exits,
    Floats,
    Stamps,
    close_out,
    entry_coins,
    record_entry,
    sell_part,
    trade_columns,
)
from bot.risk.fills import (
    bought_at,
    coins_for,
    fee_of,
    limit_bought_at,
    sold_at,
    stop_sold_at,
)
from bot.risk.rules import (
    GATE_DAILY_LOSS,
    GATE_DRAWDOWN,
    SIGNAL,
    TRAIL_STEP,
    check_exit,
    loss_gate,
    stop_level,
)

# What ``run`` returns: the equity per step, each pair's contribution to it (its cash flow plus
# its position at its last close), the stop line per candle; the trade columns (entries, exits,
# each trade's pair); the number of trades, which pairs still hold at the end, every fee paid,
# each pair's entries refused by reason, orders refused for funds, sales filled in part,
# and the step that tripped the drawdown halt (-1: none).
Curves = tuple[Floats, Floats, Floats]
Tallies = tuple[int, NDArray[np.bool_], float, Stamps, Stamps, Stamps, int]
Arrays = tuple[Curves, Entries, Exits, Stamps, Tallies]


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
    offsets: Stamps,
    lengths: Stamps,
    steps: Stamps,
    params: Floats,
) -> Arrays:
    """Trade the pairs' signal ``codes`` over their candles (the arrays ``simulation``
    hands over, C-contiguous and writable: one compiled signature): pair k's candles are rows
    ``offsets[k]`` to ``offsets[k] + lengths[k]`` of every column, its parameters row k of
    ``params``. ``steps``: the clock (``union_clock``); a pair's candles closing after the last
    step only give the next open to fill at."""
    pairs = offsets.shape[0]
    equity = np.empty(steps.shape[0])
    contribution = np.empty((steps.shape[0], pairs))
    stop_line = np.full(close.shape[0], np.nan)
    # One entry at most per candle (a signal, or a limit filled in it) and every trade has one.
    entries, trades = trade_columns(close.shape[0] + pairs)
    pair_of = np.empty(close.shape[0] + pairs, np.int64)
    book = (entries, trades, close_ms, act_ms)
    account = params[0]  # the account's values are the same in every pair's row
    fee_rate, slippage = account[FEE], account[SLIPPAGE]
    cash, count, fees, halted_at = account[BALANCE], 0, 0.0, -1
    equity_peak, day_start = account[BALANCE], account[BALANCE]
    last_marked = account[BALANCE]  # the equity marked last: where a new day starts
    today, daily_halt_day = -(2**62), -(2**62)
    ptr = np.zeros(pairs, np.int64)  # its next candle
    held = np.zeros(pairs)
    price_in = np.zeros(pairs)
    peak_of = np.zeros(pairs)
    atr_of = np.zeros(pairs)
    row_of = np.zeros(pairs, np.int64)  # its open trade's row
    losses_of = np.zeros(pairs, np.int64)
    cooling = np.full(pairs, -(2**62), np.int64)  # ms: entries at closes up to here are refused
    limit_price = np.zeros(pairs)  # a limit entry resting through the next candle (0: none)
    limit_budget = np.zeros(pairs)  # its quote, set aside while it rests
    limit_atr = np.zeros(pairs)
    limit_amount = np.zeros(pairs)  # its coins as estimated when placed: its exposure
    exit_due = np.zeros(pairs, np.bool_)  # an exit signal's sale found no volume: sent again
    resting_of = np.full(pairs, -math.inf)  # the stop resting on the venue (-inf: none)
    seen = np.zeros(pairs)  # the pair's last close
    flow = np.zeros(pairs)  # its sells - buys - fees
    order = np.zeros(pairs, np.int64)  # pairs in the order of their first fill
    ordered = 0
    vetoes = np.zeros((pairs, REASONS), np.int64)
    rejected = np.zeros(pairs, np.int64)
    partial_sales = np.zeros(pairs, np.int64)
    for s in range(steps.shape[0]):
        now = steps[s]
        for k in range(pairs):
            i = ptr[k]
            g = offsets[k] + i
            if i >= lengths[k] or close_ms[g] != now:
                continue
            ptr[k] = i + 1
            last = i == lengths[k] - 1
            cash_before = cash
            held_k, row = held[k], row_of[k]
            peak_price, atr_distance = peak_of[k], atr_of[k]
            losses, cooldown_until = losses_of[k], cooling[k]
            resting_level = resting_of[k]
            seen[k] = close[g]
            if day[g] != today:
                today = day[g]
                day_start = last_marked
            # A per-candle exit is seen at the close and sold at market then: the next open.
            market = open_[g + 1] if not last else math.nan
            can_sell = not last and volume[g + 1] > 0.0  # an order sent at this close can fill
            filled_limit = False
            if limit_price[k] > 0.0:  # filled if this candle reached it; else cancelled
                if low[g] <= limit_price[k] and volume[g] > 0.0:
                    fill = limit_bought_at(open_[g], limit_price[k])
                    row = count
                    count += 1
                    held_k, cash, fees = record_entry(
                        act_ms[g],
                        row,
                        limit_budget[k],
                        fill,
                        limit_price[k],
                        volume[g],
                        params[k],
                        entries,
                        cash,
                        fees,
                    )
                    pair_of[row] = k
                    price_in[k], peak_price, atr_distance = fill, fill, limit_atr[k]
                    filled_limit = True
                    ordered = enlist(order, ordered, k)
                    resting_level = -math.inf  # placed at this candle's close
                limit_price[k] = 0.0
            due = exit_due[k] and can_sell  # the engine's finish_exit sells at this close
            if held_k > 0.0:
                # In its fill candle a limit entry is protected from its fill price down to the low.
                top = price_in[k] if filled_limit else high[g]
                stop, trigger, reason, both = check_exit(
                    price_in[k],
                    peak_price,
                    atr_distance,
                    params[k, STOP_LOSS],
                    params[k, TAKE_PROFIT],
                    params[k, TRAILING],
                    price_in[k] if filled_limit else open_[g],
                    top,
                    low[g],
                )
                # The stop resting on the exchange fills at its level inside the candle, settled
                # first; what the volume cap leaves of it is held, with no stop resting.
                if low[g] <= resting_level and volume[g] > 0.0:
                    fill = stop_sold_at(open_[g], resting_level, slippage)
                    money = (cash, fees, losses, cooldown_until)
                    sale = (g, row, held_k, fill, volume[g], True)
                    cash, fees, losses, cooldown_until, held_k, part = sell_part(
                        sale, reason, both, money, book, params[k]
                    )
                    partial_sales[k] += part
                    resting_level = -math.inf
                if due and held_k > 0.0:  # the rest of a sale, or one no volume let through
                    money = (cash, fees, losses, cooldown_until)
                    sale = (g, row, held_k, sold_at(market, slippage), volume[g + 1], False)
                    cash, fees, losses, cooldown_until, held_k, part = sell_part(
                        sale, SIGNAL, False, money, book, params[k]
                    )
                    partial_sales[k] += part
                if stop > -math.inf and (held_k > 0.0 or not due):
                    stop_line[g] = stop
                if (  # a stop a partly filled resting stop leaves none for (Protector.ensure)
                    held_k > 0.0
                    and params[k, RESTING] > 0.0
                    and resting_level == -math.inf
                    and not filled_limit
                    and -math.inf < stop < close[g]
                ):
                    resting_level = stop
                # Else the exit is seen at this close and sold at the next open (none after the
                # last candle: still open). A sale in part leaves the rest due.
                if held_k == 0.0:
                    pass
                elif not math.isnan(trigger) and can_sell:
                    money = (cash, fees, losses, cooldown_until)
                    sale = (g, row, held_k, sold_at(market, slippage), volume[g + 1], False)
                    cash, fees, losses, cooldown_until, held_k, part = sell_part(
                        sale, reason, both, money, book, params[k]
                    )
                    partial_sales[k] += part
                    exit_due[k] = held_k > 0.0
                elif math.isnan(trigger):
                    peak_price = max(peak_price, top)
                    level, _ = stop_level(
                        price_in[k],
                        peak_price,
                        atr_distance,
                        params[k, STOP_LOSS],
                        params[k, TRAILING],
                    )
                    if params[k, RESTING] > 0.0 and (
                        filled_limit or level >= resting_level * (1 + TRAIL_STEP)
                    ):
                        resting_level = level  # placed after a limit fill, or raised
                if filled_limit and held_k > 0.0 and params[k, RESTING] > 0.0:
                    # placed as the limit filled: a sale that left a rest (or sold none) puts it
                    # back on what is held (Exits.sell restores it)
                    resting_level = stop_level(
                        price_in[k],
                        peak_price,
                        atr_distance,
                        params[k, STOP_LOSS],
                        params[k, TRAILING],
                    )[0]
            exit_due[k] = exit_due[k] and held_k > 0.0
            held[k] = held_k
            positions = 0.0  # in first-fill order, as the books sum them
            for rank in range(ordered):
                if held[order[rank]] > 0.0:
                    positions += held[order[rank]] * seen[order[rank]]
            marked_now = cash + positions
            last_marked = marked_now
            equity_peak = max(equity_peak, marked_now)
            gate = loss_gate(
                marked_now, equity_peak, day_start, account[DAILY_LOSS], account[MAX_DRAWDOWN]
            )
            if gate == GATE_DRAWDOWN and halted_at < 0:
                halted_at = s
            elif gate == GATE_DAILY_LOSS:
                daily_halt_day = today
            if not last:
                code = codes[g]
                if code == 1 and held_k == 0.0:
                    veto, budget, distance_atr, reserved = entry_check(
                        k,
                        g,
                        (halted_at >= 0, daily_halt_day == today, cooldown_until),
                        (marked_now, cash),
                        (held, seen, order, ordered, limit_price, limit_amount, limit_budget),
                        (close, atr, scale, close_ms),
                        params[k],
                    )
                    if veto >= 0:
                        vetoes[k, veto] += 1
                    elif params[k, ENTRY_OFFSET] > 0.0:
                        if refused(budget, cash, reserved):
                            rejected[k] += 1
                        else:
                            limit_price[k] = close[g] * (1.0 - params[k, ENTRY_OFFSET])
                            limit_budget[k] = budget
                            limit_atr[k] = distance_atr
                            limit_amount[k] = coins_for(
                                budget, bought_at(close[g], slippage), fee_rate, False
                            )
                    elif not can_sell:
                        pass  # the order expires unfilled in a candle with no volume
                    else:
                        fill = bought_at(market, slippage)
                        bought = entry_coins(budget, fill, 0.0, volume[g + 1], params[k])
                        if refused(bought * fill + fee_of(bought, fill, fee_rate), cash, reserved):
                            rejected[k] += 1
                        else:
                            row = count
                            count += 1
                            held_k, cash, fees = record_entry(
                                act_ms[g],
                                row,
                                budget,
                                fill,
                                0.0,
                                volume[g + 1],
                                params[k],
                                entries,
                                cash,
                                fees,
                            )
                            pair_of[row] = k
                            price_in[k], peak_price, atr_distance = fill, fill, distance_atr
                            ordered = enlist(order, ordered, k)
                            if params[k, RESTING] > 0.0:  # placed as the entry fills
                                resting_level = stop_level(
                                    fill,
                                    fill,
                                    distance_atr,
                                    params[k, STOP_LOSS],
                                    params[k, TRAILING],
                                )[0]
                elif code == -1 and held_k > 0.0 and not can_sell:
                    exit_due[k] = True
                elif code == -1 and held_k > 0.0:
                    money = (cash, fees, losses, cooldown_until)
                    sale = (g, row, held_k, sold_at(market, slippage), volume[g + 1], False)
                    cash, fees, losses, cooldown_until, held_k, part = sell_part(
                        sale, SIGNAL, False, money, book, params[k]
                    )
                    partial_sales[k] += part
                    exit_due[k] = held_k > 0.0
            held[k], row_of[k] = held_k, row
            peak_of[k], atr_of[k] = peak_price, atr_distance
            losses_of[k], cooling[k] = losses, cooldown_until
            resting_of[k] = resting_level
            flow[k] += cash - cash_before
        positions = 0.0
        for rank in range(ordered):
            if held[order[rank]] > 0.0:
                positions += held[order[rank]] * seen[order[rank]]
        equity[s] = cash + positions
        for k in range(pairs):
            contribution[s, k] = flow[k] + held[k] * seen[k]
    closes = (close_ms, close, offsets + ptr - 1)  # each pair's last candle acted on
    curves = (equity, contribution, flow)
    cash, fees, still_open = close_out(
        closes, (held, row_of), (entries[2], trades), curves, (cash, fees), account
    )
    tallies = (count, still_open, fees, vetoes, rejected, partial_sales, halted_at)
    return (equity, contribution, stop_line), entries, trades, pair_of, tallies

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
import threading
from dataclasses import dataclass

import numba
import numpy as np

from bot.core.domain import RiskLimits
from bot.risk.fills import (
    bought_at,
    coins_for,
    coins_kept,
    fee_of,
    limit_bought_at,
    sold_at,
    stop_sold_at,
)
from bot.risk.rules import EXIT_REASONS as RULE_EXITS
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
    trade_lost,
    volatility_scales,
)

__all__ = [
    "EXIT_REASONS",
    "KernelClock",
    "KernelCosts",
    "KernelExits",
    "KernelResult",
    "simulate",
    "warm_up",
]

# A position still open at the end of the data: marked at the last close with its exit costs.
STILL_OPEN = len(RULE_EXITS)
EXIT_REASONS = (*RULE_EXITS, "open")

# Positions in the kernel's parameter vector.
(
    BALANCE,
    FEE,
    SLIPPAGE,
    SHARE,
    FRACTION,
    MIN_ORDER,
    MAX_POSITION,
    MAX_EXPOSURE,
    RISK_PER_TRADE,
    DAILY_LOSS,
    MAX_DRAWDOWN,
    COOLDOWN_LOSSES,
    COOLDOWN_MS,
    MAX_OPEN,
    STOP_LOSS,
    TAKE_PROFIT,
    TRAILING,
    ATR_MULTIPLE,
    ENTRY_OFFSET,
    RESTING,
    FEE_IN_COIN,
) = range(21)


@dataclass(frozen=True, slots=True)
class KernelCosts:
    balance: float
    fee_rate: float
    slippage: float
    capital_share: float
    limits: RiskLimits
    # A buy's fee is taken from the coins bought (Binance's default, OKX, Bybit): a market
    # entry spends its budget on coins and holds them net of the fee. Off: the fee is paid in
    # the quote on top of the coins, within the budget (the paper account).
    fee_in_coin: bool = False


@dataclass(frozen=True, slots=True)
class KernelExits:
    stop_loss: float
    take_profit: float
    trailing_stop: float
    atr_stop: float
    entry_offset: float = 0.0  # limit entries this fraction under the signal's close
    # The venue holds stop orders (live places them there): a stop fills at its level inside
    # the candle (min(open, stop), with slippage), not at the next open.
    resting_stops: bool = False


@dataclass(frozen=True, slots=True)
class KernelResult:
    equity: np.ndarray  # at each candle's close, after that close's actions
    stop_line: np.ndarray  # the protective stop in force during each candle, NaN when flat
    entry_ms: np.ndarray  # when the entry filled (ms): when the engine acted on its candle
    exit_ms: np.ndarray
    entry_price: np.ndarray
    exit_price: np.ndarray
    amount: np.ndarray
    entry_fee: np.ndarray
    exit_fee: np.ndarray
    exit_reason: np.ndarray
    ambiguous: np.ndarray  # the exit candle reached both the stop and the target
    still_open: bool  # the last trade is the position held at the end, marked to market
    fees: float  # every fee paid, the open position's entry included
    vetoes: int  # entry signals the risk rules refused
    halted_at: int  # the candle whose close tripped the drawdown halt, or -1


@dataclass(frozen=True, slots=True)
class KernelClock:
    """When things happen, in epoch ms: each candle's close, when the engine acts on it (the
    next candle's open, later than the close after a gap in the data), the local calendar
    day of each close, and a candle's length (cooldowns last that many times the length)."""

    close_ms: np.ndarray
    act_ms: np.ndarray
    day: np.ndarray
    step_ms: int


def simulate(
    candles: dict[str, np.ndarray],
    codes: np.ndarray,
    atr: np.ndarray,
    clock: KernelClock,
    costs: KernelCosts,
    exits: KernelExits,
) -> KernelResult:
    """Run the rules over one pair's candles (arrays ``open``, ``high``, ``low``, ``close``,
    and ``volume``: without it, every candle is taken to have some)."""
    limits = costs.limits
    params = np.array(
        [
            costs.balance,
            costs.fee_rate,
            costs.slippage,
            costs.capital_share,
            limits.position_fraction,
            limits.min_order_value,
            limits.max_position_fraction,
            limits.max_total_exposure,
            limits.risk_per_trade,
            limits.daily_loss_limit,
            limits.max_drawdown,
            limits.cooldown_losses,
            limits.cooldown_candles * clock.step_ms,
            limits.max_open_positions,
            exits.stop_loss,
            exits.take_profit,
            exits.trailing_stop,
            exits.atr_stop,
            exits.entry_offset,
            float(exits.resting_stops),
            float(costs.fee_in_coin),
        ],
        dtype=np.float64,
    )
    arrays = _simulate(
        *(_plain(candles[column], np.float64) for column in ("open", "high", "low", "close")),
        _plain(
            candles["volume"] > 0 if "volume" in candles else np.ones(len(codes), np.bool_),
            np.bool_,
        ),
        _plain(codes, np.int8),
        _plain(atr, np.float64),
        volatility_scales(
            _plain(candles["close"], np.float64),
            limits.volatility_short,
            limits.volatility_long,
            limits.volatility_floor,
        ),
        *(_plain(stamps, np.int64) for stamps in (clock.day, clock.close_ms, clock.act_ms)),
        params,
    )
    count = int(arrays[-5])
    entry_ms, exit_ms, entry_price, exit_price, amount, entry_fee, exit_fee, reason, ambiguous = (
        array[:count] for array in arrays[2:-5]
    )
    return KernelResult(
        equity=arrays[0],
        stop_line=arrays[1],
        entry_ms=entry_ms,
        exit_ms=exit_ms,
        entry_price=entry_price,
        exit_price=exit_price,
        amount=amount,
        entry_fee=entry_fee,
        exit_fee=exit_fee,
        exit_reason=reason,
        ambiguous=ambiguous,
        still_open=bool(arrays[-4]),
        fees=float(arrays[-3]),
        vetoes=int(arrays[-2]),
        halted_at=int(arrays[-1]),
    )


def warm_up() -> threading.Thread:
    """Load the compiled kernel on a thread (numba's first call is slow even when cached:
    bench/RESULTS.md), so a caller can read its candles meanwhile. Join the thread before
    simulating."""
    tiny = {column: np.ones(4) for column in ("open", "high", "low", "close", "volume")}
    stamps = np.arange(4, dtype=np.int64)
    thread = threading.Thread(
        target=simulate,
        args=(
            tiny,
            np.zeros(4, np.int8),
            np.ones(4),
            KernelClock(stamps, stamps, stamps, 1),
            KernelCosts(1.0, 0.0, 0.0, 1.0, RiskLimits()),
            KernelExits(0.0, 0.0, 0.0, 0.0),
        ),
        name="kernel-warm-up",
        daemon=True,
    )
    thread.start()
    return thread


def _plain(values: np.ndarray, dtype: type) -> np.ndarray:
    """C-contiguous and writable: one compiled (and cached) signature for every caller."""
    return np.require(values, dtype=dtype, requirements=["C", "W"])


@numba.njit(cache=True)
def _cooldown(lost, losses, cooldown_until, now_ms, p):  # -> (losses, cooldown_until)
    """Count a closed trade; enough losses in a row refuse entries for a span of time (not of
    candles: a gap in the data passes the time as it does live)."""
    if not lost:
        return 0, cooldown_until
    losses += 1
    if p[COOLDOWN_LOSSES] > 0.0 and losses >= p[COOLDOWN_LOSSES]:
        return 0, now_ms + int(p[COOLDOWN_MS])
    return losses, cooldown_until


@numba.njit(cache=True)
def _record_entry(stamp, count, budget, fill, limit, p, entries, cash, fees):
    """Write trade ``count``'s entry spending ``budget`` (fee included) at ``fill``; returns
    (held, cash, fees) after it. ``limit``: a limit entry's price (0: a market entry).

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
    fee = fee_of(bought, fill, fee_rate)
    held = coins_kept(bought, fee_rate, in_coin)
    entry_ms[count] = stamp
    entry_price[count] = fill
    amount[count] = held
    entry_fee[count] = fee
    return held, cash - bought * fill - (0.0 if in_coin else fee), fees + fee


@numba.njit(cache=True)
def _record_exit(stamp, count, held, fill, fee_rate, reason, both, price_in, entry_fee, trades):
    """Write trade ``count``'s exit; returns (fee, whether the trade lost)."""
    exit_ms, exit_price, exit_fee, exit_reason, ambiguous = trades
    fee = fee_of(held, fill, fee_rate)
    exit_ms[count] = stamp
    exit_price[count] = fill
    exit_fee[count] = fee
    exit_reason[count] = reason
    ambiguous[count] = both
    return fee, trade_lost(held, price_in, fill, entry_fee[count] + fee)


@numba.njit(cache=True)
def _sell_all(
    i, count, held, fill, reason, both, price_in, money, entry_fee, trades, close_ms, act_ms, p
):
    """Trade ``count`` sells everything at ``fill`` as the engine acts on candle ``i``.
    ``money``: (cash, fees, losses, cooldown_until); returns them as they become, then the next
    trade's number and nothing held."""
    cash, fees, losses, cooldown_until = money
    fee, lost = _record_exit(
        act_ms[i], count, held, fill, p[FEE], reason, both, price_in, entry_fee, trades
    )
    losses, cooldown_until = _cooldown(lost, losses, cooldown_until, close_ms[i], p)
    return cash + held * fill - fee, fees + fee, losses, cooldown_until, count + 1, 0.0


@numba.njit(cache=True)
def _simulate(open_, high, low, close, traded, codes, atr, scale, day, close_ms, act_ms, p):  # noqa: C901
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
        can_sell = i < n - 1 and traded[i + 1]  # an order sent at this close can fill
        filled_limit = False
        if limit_price > 0.0:  # filled if this candle reached it; cancelled at its close if not
            if low[i] <= limit_price and traded[i]:
                fill = limit_bought_at(open_[i], limit_price)
                held, cash, fees = _record_entry(
                    act_ms[i], count, limit_budget, fill, limit_price, p, entries, cash, fees
                )
                price_in, peak_price, atr_distance = fill, fill, limit_atr
                filled_limit = True
                resting_level = -math.inf  # placed at this candle's close
            limit_price = 0.0
        if exit_due and held > 0.0 and can_sell:
            cash, fees, losses, cooldown_until, count, held = _sell_all(
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
            resting = low[i] <= resting_level and traded[i]
            if resting or (not math.isnan(trigger) and can_sell):
                if resting:
                    fill = stop_sold_at(open_[i], resting_level, slippage)
                else:
                    fill = sold_at(market, slippage)
                cash, fees, losses, cooldown_until, count, held = _sell_all(
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
                    held, cash, fees = _record_entry(
                        act_ms[i], count, budget, fill, 0.0, p, entries, cash, fees
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
                cash, fees, losses, cooldown_until, count, held = _sell_all(
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
        fee, _ = _record_exit(
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

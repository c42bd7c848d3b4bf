"""The fill model: what an order pays and gets, one copy for the backtest kernel and the paper
exchange (and the risk step's estimate), compiled once as the rules are.

A market buy pays the price plus slippage, a market sell gets the price less it. A resting stop
sells at its level, or at the open when the candle gapped below it, less slippage. A limit buy
fills at its limit, or at the open when the candle opened under it, with no slippage. The fee is
a fraction of each fill's value. An order fills at most ``share`` of the volume of the candle it
trades into (each order on its own, not per candle), and nothing in a candle nobody traded in.
"""

from __future__ import annotations

from bot.core.compiled import compiled


@compiled
def bought_at(price: float, slippage: float) -> float:
    """A market buy's fill price."""
    return price * (1.0 + slippage)


@compiled
def sold_at(price: float, slippage: float) -> float:
    """A market sell's fill price (a triggered exit sells at market too)."""
    return price * (1.0 - slippage)


@compiled
def stop_sold_at(open_: float, level: float, slippage: float) -> float:
    """A resting stop's fill price in the candle that reached it."""
    return sold_at(min(open_, level), slippage)


@compiled
def limit_bought_at(open_: float, limit: float) -> float:
    """A limit buy's fill price in the candle that reached it."""
    return min(open_, limit)


@compiled
def coins_for(budget: float, price: float, fee_rate: float, fee_in_coin: bool) -> float:
    """The coins ``budget`` (in the quote) buys at ``price``: with the fee in the quote, the
    coins and their fee spend it; with the fee taken from the coins bought, it all buys coins."""
    if fee_in_coin:
        return budget / price
    return budget / (price * (1.0 + fee_rate))


@compiled
def fee_of(amount: float, price: float, fee_rate: float) -> float:
    """A fill's fee, valued in the quote."""
    return amount * price * fee_rate


@compiled
def coins_kept(bought: float, fee_rate: float, fee_in_coin: bool) -> float:
    """The coins a buy leaves held: all of them, or less the fee when it is taken from them."""
    return bought * (1.0 - fee_rate) if fee_in_coin else bought


@compiled
def held_return(bought: float, sold: float, fee_rate: float) -> float:
    """The return of buying at ``bought`` and selling at ``sold``, paying the fee on each."""
    return sold * (1.0 - fee_rate) / (bought * (1.0 + fee_rate)) - 1.0


@compiled
def capped(wanted: float, volume: float, share: float) -> float:
    """The coins of an order for ``wanted`` that fill in a candle that traded ``volume`` coins:
    none when nobody traded, else at most ``share`` of it (0: no cap); the rest does not fill."""
    if volume <= 0.0:
        return 0.0
    return min(wanted, volume * share) if share > 0.0 else wanted

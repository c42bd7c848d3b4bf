"""Parity on the exchange: the live engine in live mode, on each venue's fake through unmodified
ccxt and a real SQLite file, makes the backtest kernel's trades.

The fake is as awkward as the venues: every order fills in two trades (40/60), a buy's fee is
taken from the coins bought (Binance's default; OKX's and Bybit's only way), and the market
walks each candle (``FakeBinance.walks``), so the stop resting on the venue fires inside the
candle at its level, or at the open the market gaps to. The backtest is configured like that
account: the fake's fee rate, no slippage (the fake fills a market order at the price it
quotes: the candle's open), stops resting on the venue, and the fee in the coin bought
(``BacktestSetup.fee_in_coin``).

Kraken and Coinbase take a buy's fee in the quote, and their backtests run without
``fee_in_coin`` (``ACCOUNTS``), as ``account_terms`` sets for a live account there. Kraken
(fee 0.26%, the profile's ``oflags=fciq``) is sent a buy sized in coins, budget / (price x
(1 + fee)), and charges the fee on top, so coins and fee spend the budget: the kernel's buy
with the fee in the quote. Its stop-loss orders rest, and its price step is 0.1: a resting
stop's or a limit's level is rounded to it (the one tolerance that differs). Coinbase is sent
the budget as a quote-sized buy (``quote_size``, fees included) and buys what the budget pays
with its fee: the same buy. It holds no stop-market, so the engine checks stops per candle and
sells at the next open, as the backtest without resting stops does: exits equal to the cent.

What parity means here, and the only differences allowed (each is the venue's, and the live
engine's books are right to show it):

* Entry times and prices are equal; so are the exit times and prices of exits sold at the
  next open (signals, take-profit, a stop the venue did not hold).
* A stop that rests on the venue, and a limit entry, fill inside the candle: the venue stamps
  the trade then, the kernel at the candle's close (when the engine books it). The price is
  the kernel's level rounded to the venue's price step (0.01; Kraken's 0.1), as the engine
  places it.
* Amounts are net of the fee taken in the coin bought, in both. The venue trades whole lot
  steps (0.00001 BTC): the coins a budget buys are rounded to the step, and an exit sells
  the position floored to it, leaving dust that goes with the next exit (``round_trips``
  with the exchange's dust rule). So amounts differ by under a lot step or two, and a PnL by
  those coins' worth. The account holds a million USDT so that those steps stay a millionth
  of each trade, and every other difference shows.
* Fees are each fill's fee valued in the quote at the fill price (the coin fee at the buy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bot.app.config import Settings
from bot.core.domain import RiskLimits, Trade
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.market.live_source import ExchangeCandleSource
from bot.portfolio.performance import round_trips
from bot.research.account_terms import ResearchTerms, research_terms
from bot.research.backtest import BacktestSetup, run_backtest, setup_for
from bot.research.kernel_inputs import KernelClock, KernelCosts, KernelExits
from bot.research.simulation import KernelResult, simulate
from storage.fills import SqliteFillRepository
from strategies import build_strategy
from tests.doubles.fake_exchange import FakeBinance, serve
from tests.integration.test_parity import EVERY_EXIT
from tests.rigs.live_rig import HOUR, PAIR, funded_fake, live_settings
from tests.rigs.venue_parity import BALANCE, FIRST, LOT, TRADED, WARM, at, traded, venue_fake

RATE = 0.001  # the fee of the kernel's own cases


@dataclass(frozen=True, slots=True)
class Account:
    """What a venue's fake does, and so how the backtest of an account there is configured."""

    tick: float  # the venue's price step: where a resting order's level is rounded to
    fee_asset: str  # the fake's fee coin: "received" (the coin bought) or "quote"
    fee_in_coin: bool  # the backtest's BacktestSetup.fee_in_coin
    resting_stops: bool  # the venue holds the engine's stops (VenueProfile.stop_orders)


# Kraken: pair_decimals 1 (a price step of 0.1), fees in the quote (the profile's oflags fciq)
# charged on top of a buy sized in coins to spend the budget with its fee; stop-loss orders
# rest. Coinbase: fees in the quote inside a quote-sized buy's budget, no resting stop-market
# (the engine checks stops per candle and sells at the next open).
ACCOUNTS = {
    "binance": Account(0.01, "received", fee_in_coin=True, resting_stops=True),
    "okx": Account(0.01, "received", fee_in_coin=True, resting_stops=True),
    "bybit": Account(0.01, "received", fee_in_coin=True, resting_stops=True),
    "kraken": Account(0.1, "quote", fee_in_coin=False, resting_stops=True),
    "coinbase": Account(0.01, "quote", fee_in_coin=False, resting_stops=False),
}
STRATEGIES = {  # name: (strategy, parameters)
    "ema_cross every exit": ("ema_cross", EVERY_EXIT),
    "bollinger every exit": ("bollinger_reversion", EVERY_EXIT),
    "grid signals only": ("grid", {}),
    "ema_cross limit entries": ("ema_cross", {**EVERY_EXIT, "entry_offset": 0.002}),
}


async def venue_trades(
    tmp_path: Path,
    candles: pd.DataFrame,
    venue: str,
    strategy: str,
    params: dict[str, float],
    **realism: Any,
) -> tuple[list[Trade], FakeBinance]:
    """The live engine's closed trades over ``candles`` after the first WARM, ticking at each
    close; ``realism``: the fake's settings (split, fee_asset)."""
    fake = venue_fake(candles, venue, **realism)
    pairs = [{"pair": PAIR, "strategy": strategy, "params": params, "capital_share": 1.0}]
    async with traded(tmp_path, fake, candles, venue, pairs) as (_, exchange, db):
        fills = await SqliteFillRepository(db).all()
        return round_trips(fills, exchange.too_small), fake


def kernel_trades(
    candles: pd.DataFrame,
    strategy: str,
    params: dict[str, float],
    fee_rate: float,
    *,
    fee_in_coin: bool,
    resting_stops: bool = True,
) -> tuple[list[Trade], list[str]]:
    """The backtest of the same account: closed trades and their exit reasons."""
    setup = BacktestSetup(
        pair=PAIR,
        timeframe="1h",
        balance=BALANCE,
        fee_rate=fee_rate,
        slippage=0.0,
        limits=RiskLimits(max_position_fraction=1.0),
        resting_stops=resting_stops,
        fee_in_coin=fee_in_coin,
        trade_from=WARM,
    )
    table = run_backtest(candles, build_strategy(strategy, params), setup).table
    trades = table.trades()[: table.closed]
    return trades, [trade.exit_reason for trade in trades]


async def both_trades(
    tmp_path: Path, candles: pd.DataFrame, venue: str, strategy: str, params: dict[str, float]
) -> tuple[list[Trade], list[Trade], list[str], FakeBinance]:
    """The live engine's trades on ``venue``'s fake (split fills, its fee coin) and the
    backtest of that account (``ACCOUNTS``, at the fee the fake charges), its exit reasons."""
    account = ACCOUNTS[venue]
    live, fake = await venue_trades(
        tmp_path, candles, venue, strategy, params, split=(0.4, 0.6), fee_asset=account.fee_asset
    )
    expected, reasons = kernel_trades(
        candles,
        strategy,
        params,
        fake.fee_rate,
        fee_in_coin=account.fee_in_coin,
        resting_stops=account.resting_stops,
    )
    return live, expected, reasons, fake


def differences(
    live: Trade, kernel: Trade, tick: float, *, resting_stops: bool, limit_entries: bool
) -> list[str]:
    """What sets ``live`` apart from ``kernel`` beyond the venue's differences (module doc),
    ``tick`` its price step. Only a limit entry (``limit_entries``) and an exit by a stop that
    rests on the venue (``resting_stops``) may be stamped inside their candle: a market entry
    or a signal exit an hour early is a mismatch."""
    found = []
    rested = limit_entries and kernel.entry_time - HOUR < live.entry_time < kernel.entry_time
    inside = (
        resting_stops
        and kernel.exit_reason not in ("signal", "take_profit")
        and kernel.exit_time - HOUR < live.exit_time < kernel.exit_time
    )
    if not (live.entry_time == kernel.entry_time or rested) or not (
        live.exit_time == kernel.exit_time or inside
    ):
        found.append(f"times {live.entry_time}-{live.exit_time}")
    if live.entry_price != pytest.approx(kernel.entry_price, abs=tick if rested else 1e-9):
        found.append(f"entry price {live.entry_price}")
    if live.exit_price != pytest.approx(kernel.exit_price, abs=tick if inside else 1e-9):
        found.append(f"exit price {live.exit_price}")
    if live.amount != pytest.approx(kernel.amount, abs=2 * LOT):
        found.append(f"amount {live.amount}")
    steps = 2 * LOT * kernel.exit_price + kernel.amount * tick  # the lot steps, the tick
    if live.pnl != pytest.approx(kernel.pnl, abs=steps):
        found.append(f"pnl {live.pnl}")
    if live.fee != pytest.approx(kernel.fee, rel=1e-5):
        found.append(f"fee {live.fee}")
    return found


@pytest.fixture(scope="module")
def window(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[FIRST : FIRST + WARM + TRADED].reset_index(drop=True)


# Suite time: each case ticks the live stack 300 times (10-17 s on the shared 2-core machine).
# Every venue trades the crossover with every exit; the other strategies and limit entries run
# on one venue each. Limit entries run on Binance only: the engine sizes a limit buy with the
# taker fee ccxt publishes for the venue (OKX 0.15%, Bybit 0.075%), not the fee the account
# pays (the fakes charge 0.1%, as OKX's and Bybit's first tiers do), so there a limit entry
# buys a fee difference fewer or more coins than the backtest at the account's fee. Kraken's
# and Coinbase's fakes publish the fee they charge, and there limit entries matched (3 of 3
# each, not in the suite for its time). `python -m bench.venue_parity` runs every strategy on
# every venue over longer windows.
SUITE = [
    ("ema_cross every exit", "binance"),
    ("ema_cross every exit", "okx"),
    ("ema_cross every exit", "bybit"),
    ("bollinger every exit", "okx"),
    ("grid signals only", "bybit"),
    ("ema_cross limit entries", "binance"),
    ("ema_cross every exit", "kraken"),
    ("ema_cross every exit", "coinbase"),
]


@pytest.mark.parametrize(("case", "venue"), SUITE, ids=[f"{c}-{v}" for c, v in SUITE])
async def test_the_live_engine_on_each_venue_makes_the_backtests_trades(
    tmp_path: Path, window: pd.DataFrame, venue: str, case: str
) -> None:
    strategy, params = STRATEGIES[case]
    live, expected, reasons, fake = await both_trades(tmp_path, window, venue, strategy, params)
    assert len(expected) >= 3
    fired = {o.kind for o in fake.orders.values() if o.kind != "MARKET" and o.executed}
    if "entry_offset" in params:  # limit buys rested on the venue and filled inside a candle
        assert "LIMIT" in fired
    elif params:  # a stop fired, in both: resting on the venue inside a candle, or per candle
        assert ("STOP_LOSS" in fired) == ACCOUNTS[venue].resting_stops
        assert set(reasons) - {"signal", "take_profit"}
    assert len(live) == len(expected), (live, expected)
    account = ACCOUNTS[venue]
    mismatches = [
        (a, b, found)
        for a, b in zip(live, expected, strict=True)
        if (
            found := differences(
                a,
                b,
                account.tick,
                resting_stops=account.resting_stops,
                limit_entries="entry_offset" in params,
            )
        )
    ]
    assert not mismatches, mismatches[:2]


async def test_with_the_buy_fee_in_the_quote_live_buys_the_fee_more_than_the_backtest(
    tmp_path: Path, window: pd.DataFrame
) -> None:
    """The fake's old kind fee ("quote": a buy pays its fee in USDT, which no profiled venue
    does for a spot buy) against the backtest without ``fee_in_coin`` (the paper account's
    terms: the budget pays for the coins and their fee). Live, the engine's buy is sized in the
    quote (``create_market_buy_order_with_cost``): the whole budget buys coins and the fee
    comes on top. The first trade (later ones size from equities that differ by it) holds
    exactly (1 + fee rate) times the backtest's coins, i.e. the kernel's coins plus the fee's
    worth of them, to the lot step. A venue that charges buys in the quote would need the
    engine to size its order net of the fee; none in VENUES does."""
    strategy, params = STRATEGIES["ema_cross every exit"]
    candles = window.iloc[: WARM + 80]
    live, fake = await venue_trades(
        tmp_path, candles, "binance", strategy, params, fee_asset="quote"
    )
    expected, _ = kernel_trades(candles, strategy, params, fake.fee_rate, fee_in_coin=False)
    assert live
    assert expected
    first, kernel = live[0], expected[0]
    assert (first.entry_time, first.entry_price) == (kernel.entry_time, kernel.entry_price)
    assert first.amount == pytest.approx(kernel.amount * (1 + fake.fee_rate), abs=LOT)
    assert first.amount != pytest.approx(kernel.amount, abs=100 * LOT)


def walking_fake(walks: bool) -> FakeBinance:
    """Two hourly candles: the first falls to 99.2 and closes at 99.5, the second opens at 97
    (a gap), falls to 96 and closes higher, at 97.5; one BTC and 1,000 USDT to trade."""
    candles = pd.DataFrame(
        {
            "timestamp": [0, 3_600_000, 7_200_000],
            "open": [100.0, 97.0, 97.5],
            "high": [101.0, 98.0, 98.0],
            "low": [99.2, 96.0, 97.0],
            "close": [99.5, 97.5, 97.8],
            "volume": [1.0, 1.0, 1.0],
        }
    )
    fake = FakeBinance(now_ms=0, balances={"USDT": 1000.0, "BTC": 1.0}, walks=walks)
    fake.add_candles("BTCUSDT", "1h", candles)
    fake.move_to(0)
    return fake


def test_the_walking_market_fills_resting_orders_where_the_path_crosses_them() -> None:
    fake = walking_fake(walks=True)
    crossed = fake.open_order("a", "BTCUSDT", "SELL", "STOP_LOSS", 0.5, 99.5)
    gapped = fake.open_order("b", "BTCUSDT", "SELL", "STOP_LOSS", 0.5, 98.5)
    assert crossed
    assert gapped
    fake.move_to(3_600_000)  # the first candle's low passed 99.5, not 98.5; the next opens at 97
    assert (crossed.status, crossed.fills[0]["price"]) == ("FILLED", "99.5")  # at its level
    assert 0 < crossed.time < 3_600_000  # inside the candle
    assert gapped.status == "NEW"
    fake.trigger_stops()  # the next request: the market opened under it
    assert (gapped.status, gapped.fills[0]["price"]) == ("FILLED", "97.0")  # at the open
    bid = fake.open_order("c", "BTCUSDT", "BUY", "LIMIT", 1.0, 96.5)
    taker = fake.open_order("d", "BTCUSDT", "BUY", "LIMIT", 1.0, 99.0)
    assert bid
    assert taker
    assert (taker.status, taker.fills[0]["price"]) == ("FILLED", "97.0")  # over the market
    fake.move_to(7_200_000)  # a rising candle: its low (96) comes first, and crosses the bid
    assert (bid.status, bid.fills[0]["price"]) == ("FILLED", "96.5")


def test_a_market_that_does_not_walk_prices_only_the_opens_as_before() -> None:
    fake = walking_fake(walks=False)
    stop = fake.open_order("a", "BTCUSDT", "SELL", "STOP_LOSS", 0.5, 99.5)
    assert stop
    fake.move_to(3_600_000)
    assert stop.status == "NEW"  # the low went by unseen
    fake.trigger_stops()
    assert stop.fills[0]["price"] == "97.0"  # sold at the next open
    limit = fake.open_order("b", "BTCUSDT", "BUY", "LIMIT", 1.0, 99.0)
    assert limit
    assert limit.fills[0]["price"] == "99.0"  # a marketable limit: at its limit


def buy_then_sell(
    opens: list[float], closes: list[float], fee_in_coin: bool, entry_offset: float = 0.0
) -> KernelResult:
    """The kernel on four hourly candles (lows 80, highs 130) at a 0.1% fee: an entry signal
    at the first close, an exit signal at the second (sold at the third open)."""
    prices = {
        "open": np.array(opens),
        "high": np.full(4, 130.0),
        "low": np.full(4, 80.0),
        "close": np.array(closes),
    }
    stamps = np.arange(4, dtype=np.int64) * 3_600_000 + 3_600_000
    return simulate(
        prices,
        np.array([1, -1, 0, 0], np.int8),
        np.full(4, np.nan),
        KernelClock(stamps, stamps, np.zeros(4, np.int64), 3_600_000),
        KernelCosts(1000.0, RATE, 0.0, 1.0, RiskLimits(max_position_fraction=1.0), fee_in_coin),
        KernelExits(0.0, 0.0, 0.0, 0.0, entry_offset=entry_offset),
    )


@pytest.mark.parametrize("fee_in_coin", [False, True])
def test_a_fee_in_the_coin_bought_spends_the_budget_on_coins_held_net_of_it(
    fee_in_coin: bool,
) -> None:
    """Buy at the second open (100), sell at the third (110): with the fee in the quote the
    budget pays for the coins and their fee; taken from the coins, the budget buys coins and
    the fee is a share of them (worth the budget's fee share at the fill)."""
    result = buy_then_sell([90.0, 100.0, 110.0, 120.0], [95.0, 105.0, 115.0, 120.0], fee_in_coin)
    rate = RATE
    budget = 1000.0 * RiskLimits().position_fraction
    bought = budget / 100.0 if fee_in_coin else budget / (100.0 * (1 + rate))
    held = bought * (1 - rate) if fee_in_coin else bought
    assert result.amount[0] == pytest.approx(held, rel=1e-12)
    assert result.entry_fee[0] == pytest.approx(bought * 100.0 * rate, rel=1e-12)
    assert result.entry_fee[0] == pytest.approx(
        budget * rate if fee_in_coin else budget * rate / (1 + rate), rel=1e-12
    )
    assert result.equity[-1] == pytest.approx(
        1000.0 - budget + held * 110.0 * (1 - rate), rel=1e-12
    )


@pytest.mark.parametrize("fee_in_coin", [False, True])
def test_a_limit_buy_the_market_opens_under_buys_the_coins_its_limit_was_sized_for(
    fee_in_coin: bool,
) -> None:
    """The limit (99) rests from the first close (100, 1% under it); the next candle opens at
    95, under it. The adapter sizes a limit buy at its limit (budget / (limit x (1 + fee)),
    ``CcxtExchange._send``) and the venue fills that order at the market: it buys those coins
    for less than the budget. The kernel, with the fee in the quote (Kraken's and Coinbase's
    terms), sized the buy at the fill: 4% more coins than a live account there holds, and
    every later trade sized from a different equity. Both fee terms now size at the limit."""
    result = buy_then_sell(
        [100.0, 95.0, 110.0, 120.0], [100.0, 105.0, 115.0, 120.0], fee_in_coin, entry_offset=0.01
    )
    rate = RATE
    budget = 1000.0 * RiskLimits().position_fraction
    bought = budget / (99.0 * (1 + rate))
    assert result.entry_price[0] == pytest.approx(95.0)
    assert result.amount[0] == pytest.approx(
        bought * (1 - rate) if fee_in_coin else bought, rel=1e-12
    )
    assert result.entry_fee[0] == pytest.approx(bought * 95.0 * rate, rel=1e-12)
    held = result.amount[0]
    spent = bought * 95.0 * (1 if fee_in_coin else 1 + rate)
    assert result.equity[-1] == pytest.approx(1000.0 - spent + held * 110.0 * (1 - rate), rel=1e-12)


@pytest.mark.parametrize("venue", ["binance", "okx", "kraken"])
async def test_a_pair_younger_than_the_history_window_gets_its_candles_on_each_venue(
    btc_candles: pd.DataFrame, venue: str
) -> None:
    """Found by the parity bench (macd on OKX traded days late): the live source asks for the
    strategy's window (macd: 720 candles) back from now. OKX answers a bounded window of time
    (ccxt's before/after: 300 candles from ``since``), empty for the span before the pair's
    first candle, where Binance answers the first candles after ``since``. The source took
    the empty page for the end and got nothing until the pair was older than the window less
    a page: a pair 100 hours old had no candles, its run never ticked."""
    fake = funded_fake(btc_candles.iloc[:100], venue)
    fake.move_to(int(btc_candles["timestamp"].iloc[100]))
    async with serve(fake) as base:
        exchange = CcxtExchange.create(
            venue,
            live_settings(Path("."), base, venue=venue).exchange.ccxt_config,
            attempts=2,
            backoff=0.01,
        )
        try:
            await exchange.load_markets()
            now = at(btc_candles, 100)
            candles = await ExchangeCandleSource(exchange).closed_candles(PAIR, now, 720, "1h")
        finally:
            await exchange.close()
    assert len(candles) == 100
    assert candles["timestamp"].tolist() == btc_candles["timestamp"].iloc[:100].tolist()


def test_a_live_accounts_backtest_takes_buy_fees_from_the_coins_where_its_venue_does(
    tmp_path: Path,
) -> None:
    """`backtest --config`, /backtest and /sweep simulate the account the bot trades: live on
    Binance, OKX or Bybit a buy's fee comes out of the coins bought, on Kraken and Coinbase
    and on the paper account it is paid in the quote; stops rest on every venue but Coinbase.
    The live account's terms are those its parity above runs the backtest with (``ACCOUNTS``)."""

    def terms(mode: str, exchange: str) -> ResearchTerms:
        return research_terms(
            Settings.model_validate(
                {"data_dir": tmp_path, "mode": mode, "exchange": {"name": exchange}}
            ),
            PAIR,
        )

    for venue, account in ACCOUNTS.items():
        live = terms("live", venue)
        assert (live.fee_in_coin, live.resting_stops) == (
            account.fee_in_coin,
            account.resting_stops,
        ), venue
    assert all(terms("live", name).fee_in_coin for name in ("binance", "okx", "bybit"))
    assert not any(terms("live", name).fee_in_coin for name in ("kraken", "coinbase"))
    assert terms("live", "kraken").resting_stops
    assert not terms("live", "coinbase").resting_stops
    assert not terms("paper", "binance").fee_in_coin
    assert setup_for(PAIR, "1h", terms("live", "okx")).fee_in_coin
    assert setup_for(PAIR, "1h", terms("live", "okx")).volume_share == 0.0  # the real book caps
    assert setup_for(PAIR, "1h", terms("paper", "okx")).volume_share == 0.1

"""Portfolio parity on the exchange: two pairs sharing one live account on the Binance fake
(unmodified ccxt over loopback, a real SQLite file), a portfolio limit firing, against the
portfolio kernel (``run_portfolio``) on the same settings.

The live side is test_venue_parity's stack with both pairs (``venue_stack``), read back as the
paper portfolio rig reads its database (``portfolio_replay.read_outcome``, with the venue's
dust rule). The fake is as awkward as in the one-pair venue parity: split fills, a buy's fee
taken from the coins bought, the market walking each candle so the stops resting on the venue
fire inside it. The kernel runs on the live account's terms (``research_terms`` in live mode
on Binance: the fee in the coin, stops resting, no volume cap) at the fake's fee and without
slippage. What may differ is what the one-pair venue parity allows (its module docstring:
lot steps, the price step of a resting stop, a stop stamped inside its candle) and the
portfolio's own on a venue (docs/parity.md, "What cannot be identical": dust, kept out of the
open positions live, is worth a few lot steps in the equity).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bot.core.domain import to_ms
from bot.research.account_terms import Overrides
from bot.research.portfolio import PortfolioResult, run_portfolio
from tests.integration.test_parity import EVERY_EXIT
from tests.integration.test_venue_parity import differences
from tests.rigs.portfolio_replay import LiveOutcome, read_outcome
from tests.rigs.venue_parity import (
    BALANCE,
    FIRST,
    LOT,
    TRADED,
    WARM,
    at,
    traded,
    venue_fake,
    venue_settings,
)

PAIRS = [
    {"pair": "BTC/USDT", "strategy": "ema_cross", "params": EVERY_EXIT, "capital_share": 0.5},
    {"pair": "ETH/USDT", "strategy": "ema_cross", "params": EVERY_EXIT, "capital_share": 0.5},
]
RISK = {"max_open_positions": 1}
TICK = 0.01  # the fake's price step on both pairs  # the two pairs compete for the one position


def windows(btc: pd.DataFrame, eth: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """test_venue_parity's window of both samples (the same hours)."""
    return {
        pair: frame.iloc[FIRST : FIRST + WARM + TRADED].reset_index(drop=True)
        for pair, frame in (("BTC/USDT", btc), ("ETH/USDT", eth))
    }


async def live_portfolio(
    tmp_path: Path, candles: dict[str, pd.DataFrame]
) -> tuple[LiveOutcome, dict[str, float], float]:
    """The live engine on both pairs, ticking at each close after the first WARM; its outcome,
    the fake's balances after it and its fee rate."""
    btc = candles["BTC/USDT"]
    fake = venue_fake(btc, "binance", split=(0.4, 0.6), fee_asset="received")
    fake.add_candles("ETHUSDT", "1h", candles["ETH/USDT"])
    async with traded(tmp_path, fake, btc, "binance", PAIRS, RISK) as (trading, exchange, db):
        first, last = at(btc, WARM + 1), at(btc, len(btc) - 1)
        pairs = list(candles)
        outcome = await read_outcome(db, trading.engine, pairs, first, last, exchange.too_small)
    return outcome, dict(fake.balances), fake.fee_rate


def kernel(tmp_path: Path, candles: dict[str, pd.DataFrame], fee_rate: float) -> PortfolioResult:
    """The kernel on the live account's terms, from the candle the live engine first acts on."""
    settings = venue_settings(tmp_path, "http://127.0.0.1:1", "binance", PAIRS, RISK)
    terms = Overrides(balance=BALANCE, fee_rate=fee_rate, slippage=0.0)
    return run_portfolio(settings, candles, since=at(candles["BTC/USDT"], WARM), overrides=terms)


async def test_two_pairs_sharing_a_venue_account_trade_as_the_portfolio_kernel(
    tmp_path: Path, btc_candles: pd.DataFrame, eth_candles: pd.DataFrame
) -> None:
    candles = windows(btc_candles, eth_candles)
    outcome, balances, fee_rate = await live_portfolio(tmp_path, candles)
    result = kernel(tmp_path, candles, fee_rate)
    assert (result.terms.fee_in_coin, result.terms.resting_stops) == (True, True)
    assert result.terms.volume_share == 0.0  # the real book caps, not the paper model
    assert outcome.veto_count("max_open") > 0  # the limit fired, live, on both pairs
    assert all(outcome.vetoes[pair]["max_open"] for pair in outcome.vetoes)
    assert [pair.pair for pair in result.pairs] == list(outcome.trades)
    reasons, allowance = set(), 0.0
    for pair in result.pairs:
        expected = pair.table.trades()[: pair.table.closed]
        got = outcome.trades[pair.pair]
        assert len(got) >= 3, pair.pair
        assert len(got) == len(expected), (pair.pair, got, expected)
        mismatches = [
            (a, b, found)
            for a, b in zip(got, expected, strict=True)
            if (found := differences(a, b, TICK, resting_stops=True, limit_entries=False))
        ]
        assert not mismatches, (pair.pair, mismatches[:2])
        # the refused entries, counted by reason: exact (dust is no open position live)
        assert dict(outcome.vetoes[pair.pair]) == {r: c for r, c in pair.vetoes.items() if c}
        reasons |= {trade.exit_reason for trade in expected}
        allowance += sum(2 * LOT * t.exit_price + t.amount * TICK for t in expected)
    assert reasons & {"stop_loss", "trailing_stop", "atr_stop"}  # stops rested and fired
    # The equity at every step, stamped alike (no outage in the window): apart by at most the
    # lot steps and price steps the trades are allowed above (docs/parity.md), dust included.
    assert [to_ms(snapshot.time) for snapshot in outcome.equity] == result.close_ms.tolist()
    assert not any(pair.table.still_open for pair in result.pairs)  # no close-out at the end
    equity = [snapshot.equity for snapshot in outcome.equity]
    assert equity == pytest.approx(result.equity.tolist(), abs=allowance)
    # Dust: what each exit floored to the lot step left on the venue, worth under a lot step
    assert 0 < balances["BTC"] < LOT

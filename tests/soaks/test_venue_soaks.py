"""The short fault soak on each venue profile, with the fake as awkward as the real venues:
every order filled in several trades, fees taken in the coin bought (in the quote where the
venue takes them nowhere else), and a market that walks each candle, so resting stops fire
inside candles while a fifth of the calls fail."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.doubles.exchange_chaos import run_fault_soak
from tests.soaks.crash_soak import run_crash_soak

# The coin a venue takes its fees in, where it has no choice of it (Coinbase: the quote).
FEES = {"coinbase": "quote"}


@pytest.mark.parametrize("venue", ["binance", "okx", "bybit", "coinbase", "kraken"])
async def test_the_fault_soak_keeps_the_books_equal_to_each_venue(
    tmp_path: Path, btc_candles: pd.DataFrame, venue: str
) -> None:
    report = await run_fault_soak(
        tmp_path,
        btc_candles,
        ticks=250,
        rate=0.2,
        seed=11,
        venue=venue,
        split=(0.4, 0.6),
        fee_asset=FEES.get(venue, "received"),
        walks=True,
    )
    print(report)
    assert report.problems == []
    assert report.faults >= 0.15 * report.requests
    assert report.exchange_trades >= 10


@pytest.mark.parametrize("venue", ["okx", "bybit", "coinbase", "kraken"])  # Binance's: test_soaks
async def test_the_crash_soak_loses_nothing_on_each_venue(
    tmp_path: Path, btc_candles: pd.DataFrame, venue: str
) -> None:
    report = await run_crash_soak(
        tmp_path,
        btc_candles,
        kills=3,
        seed=3,
        venue=venue,
        split=(0.4, 0.6),
        fee_asset=FEES.get(venue, "received"),
        dwell=(15.0, 21.0),
    )
    print(report)
    assert report.violations == []
    assert report.kills == 3
    assert report.exchange_orders >= 2  # it traded between the kills

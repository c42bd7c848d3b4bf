"""Short versions of the soaks in bench/: the same code, fewer ticks, every invariant checked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.crash_soak import run_crash_soak
from tests.exchange_chaos import KINDS, run_fault_soak


async def test_exchange_fault_soak_keeps_the_books_equal_to_the_exchange(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    report = await run_fault_soak(tmp_path, btc_candles, ticks=400, rate=0.2, seed=7)
    print(report)
    assert report.problems == []
    assert set(report.injected) == set(KINDS)  # every class of fault was met
    assert report.faults >= 0.15 * report.requests
    assert report.exchange_trades >= 10
    # The right alerts: each refusal once; dust (a partial exit's unsellable rest) at most once
    # per partial fill; an outage when it starts and when it ends.
    assert report.alerts.get("order_rejected", 0) == report.injected["rejected"]
    assert report.alerts.get("dust", 0) <= report.injected["partial"]
    assert report.alerts.get("exchange_error", 0) % 2 == 0


async def test_crash_soak_loses_nothing_and_never_orders_twice(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    report = await run_crash_soak(tmp_path, btc_candles, kills=5, seed=3)
    print(report)
    assert report.violations == []
    assert report.kills == 5
    assert report.exchange_orders >= 2  # it traded between the kills
    assert report.alerts_delivered >= 1

"""The strategy check's analysis (issue 18) on real candles: peeking, short warm-up, random and
garbage-returning strategies are each caught and named; the built-ins pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.market.candle_files import read_candle_file
from bot.research.strategy_check import CHECKS, TooLittleData, check_strategy
from strategies import BUILT_INS, Strategy, build_strategy
from tests.strategy_fixtures import (
    BackFilled,
    CentredWindow,
    CoinFlip,
    NextClose,
    ShortWarmup,
    WholeSeriesMean,
    garbage,
)

YEAR = 24 * 365


def verdict(report: object, check: str) -> tuple[bool, str]:
    found = {v.check: (v.passed, v.detail) for v in report.verdicts}  # type: ignore[attr-defined]
    return found[check]


def first_difference_by_brute_force(strategy: Strategy, candles: pd.DataFrame) -> int:
    """The earliest row any prefix's signals differ on, recomputing every prefix."""
    whole = strategy.signals(candles).to_numpy()
    first = len(candles)
    for prefix in range(1, len(candles)):
        differs = np.flatnonzero(
            strategy.signals(candles.iloc[:prefix]).to_numpy() != whole[:prefix]
        )
        if len(differs):
            first = min(first, int(differs[0]))
    return first


@pytest.mark.parametrize("peeker", [NextClose, CentredWindow, WholeSeriesMean, BackFilled])
def test_a_peeking_strategy_is_caught_at_its_first_differing_candle(
    peeker: type[Strategy], btc_candles: pd.DataFrame
) -> None:
    candles = btc_candles.iloc[:600]
    strategy = peeker()
    expected = first_difference_by_brute_force(strategy, candles)
    assert expected < len(candles), "the fixture must peek on this data"
    report = check_strategy(strategy, candles)
    passed, detail = verdict(report, "look-ahead")
    assert not passed
    moment = pd.Timestamp(int(candles["timestamp"].iloc[expected]), unit="ms")
    assert f"candle {expected} ({moment:%Y-%m-%d %H:%M} UTC)" in detail, detail
    assert not report.passed


@pytest.mark.parametrize("peeker", [NextClose, CentredWindow, WholeSeriesMean, BackFilled])
def test_a_peeking_strategy_is_caught_on_the_whole_sample(
    peeker: type[Strategy], btc_candles: pd.DataFrame
) -> None:
    passed, detail = verdict(check_strategy(peeker(), btc_candles), "look-ahead")
    assert not passed
    assert "reads candles after the one it decides on" in detail


# On the BTC sample (about 4 s a check); bench/strategy_check_speed.py checks every built-in on
# a year of candles and prints each verdict.
@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_every_built_in_passes_on_the_sample_candles(name: str, btc_candles: pd.DataFrame) -> None:
    report = check_strategy(build_strategy(name), btc_candles)
    assert report.passed, report.verdicts
    assert [v.check for v in report.verdicts] == list(CHECKS)


# One built-in here (a check of a year takes seconds); bench/strategy_check_speed.py checks
# every built-in on a year and prints each verdict.
@pytest.mark.parametrize("name", ["ema_cross"])
def test_a_built_in_passes_on_a_year_of_shared_candles(name: str, shared_data: Path) -> None:
    candles = read_candle_file(shared_data / "ETH_USDT-1h.csv.gz").iloc[-YEAR:]
    report = check_strategy(build_strategy(name), candles.reset_index(drop=True))
    assert report.passed, report.verdicts


def test_a_too_short_declared_warmup_is_flagged_with_the_number_needed(
    btc_candles: pd.DataFrame,
) -> None:
    report = check_strategy(ShortWarmup(), btc_candles)
    passed, detail = verdict(report, "warm-up")
    assert not passed
    # SMA(50) exists from a window's 50th candle on: that is what it needs.
    assert report.warmup_needed == 50
    assert "needs at least 50 candles of history, it declares 20 (warmup 10)" in detail
    assert verdict(report, "look-ahead")[0]  # it does not peek


def test_a_random_strategy_fails_determinism(btc_candles: pd.DataFrame) -> None:
    report = check_strategy(CoinFlip(), btc_candles)
    passed, detail = verdict(report, "determinism")
    assert not passed
    assert "two runs on the same candles differ, first at candle" in detail
    assert verdict(report, "look-ahead") == (False, "not run: determinism failed")


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        ("short", "wrong length: 2183 signals for 2184 candles"),
        ("nan", "NaN action at candle 2181"),
        ("inf", "infinite action at candle 40"),
        ("index", "index mismatch"),
        ("value", "value 2 at candle 50 is not an action"),
        ("array", "signals returned a ndarray, not a pandas Series"),
        ("raises", "signals raised KeyError: 'vwap'"),
        ("mutates", "signals changed the candles it was given (columns hl2)"),
    ],
)
def test_garbage_output_is_named(kind: str, named: str, btc_candles: pd.DataFrame) -> None:
    report = check_strategy(garbage(kind), btc_candles)
    passed, detail = verdict(report, "bad output")
    assert not passed
    assert named in detail, detail
    assert all(not verdict(report, check)[0] for check in CHECKS[1:-1])


def test_too_little_data_is_refused_before_anything_runs(btc_candles: pd.DataFrame) -> None:
    strategy = build_strategy("ema_cross")  # lives on 540 candles: 1,620 needed
    with pytest.raises(TooLittleData, match="1000 candles, it needs at least 1620"):
        check_strategy(strategy, btc_candles.iloc[:1000])

"""Review of the strategy check's determinism analysis (issue 18): strategies whose signals
depend on the process or the hour, yet pass `pairpilot strategy check` at main 12bf92b, whose
two runs happen back to back in one process. The backtest runs in one process, the live
service in another started later: they decide differently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from bot.research.strategy_check import check_strategy
from tests.review_check_fixtures import HourlySeed, SetOrder

ROOT = Path(__file__).resolve().parents[2]
SIGNALS_IN_A_PROCESS = """
import sys
from pathlib import Path
from bot.market.candle_files import read_candle_file
from tests.review_check_fixtures import SetOrder
candles = read_candle_file(Path(sys.argv[1]))
print("".join("+-0"[(1 - code) % 3] for code in SetOrder().signals(candles)))
"""


def signals_with_hash_seed(seed: int, candles: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SIGNALS_IN_A_PROCESS, str(candles)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    return done.stdout.strip()


def test_signals_that_depend_on_the_process_hash_seed_fail_determinism(
    btc_path: Path, btc_candles: pd.DataFrame
) -> None:
    """A set of strings iterates in an order fixed per process (PYTHONHASHSEED): seeds 1 and
    2 give SMA(20) and SMA(10). Two runs in the check's one process always agree."""
    one, two = signals_with_hash_seed(1, btc_path), signals_with_hash_seed(2, btc_path)
    assert len(one) == len(two) == len(btc_candles)
    assert sum(a != b for a, b in zip(one, two, strict=True)) > 300
    report = check_strategy(SetOrder(), btc_candles)
    assert "determinism" in report.failed(), report.verdicts


def test_randomness_seeded_from_the_clock_fails_determinism(btc_candles: pd.DataFrame) -> None:
    """``default_rng(int(time.time() // 3600))``: every run within one hour agrees, so the
    check's two runs (milliseconds apart) agree; a backtest and the live tick an hour later do
    not."""
    report = check_strategy(HourlySeed(), btc_candles)
    assert "determinism" in report.failed(), report.verdicts

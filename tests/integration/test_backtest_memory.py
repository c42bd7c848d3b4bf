"""The kernel's trade arrays hold every trade a series can make (issue 19, item 1).

A trade can close one candle after it opens and the next can open on that candle, so a dense
series makes nearly one trade per candle. The zig-zag below makes three trades every four
candles under the grid strategy's defaults; the command runs in a child process with numba's
bounds checks on, so a write past an array's end is an IndexError there, not heap corruption.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

HOUR_MS = 3_600_000
# Closes around a centre of 100 (the 48-candle mean of the cycle): above the centre, then
# through grid lines 1, 2 and 3 (1% apart). Each candle's high reaches the last entry's 1%
# take-profit, so each entry exits on the next candle, which signals the next entry.
CYCLE = (107.5, 98.5, 97.5, 96.5)


def zigzag(candles: int) -> pd.DataFrame:
    closes = [CYCLE[k % len(CYCLE)] for k in range(candles)]
    opens = [closes[0], *closes[:-1]]
    return pd.DataFrame(
        {
            "timestamp": [
                1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS + k * HOUR_MS
                for k in range(candles)
            ],
            "open": opens,
            "high": [max(o, c) * 1.02 for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": 1.0,
        }
    )


def run_grid(path: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(cache)}
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("pairpilot")),
            "backtest",
            "--data",
            str(path),
            "--strategy",
            "grid",
            "--json",
        ],
        cwd=path.parent,  # where its receipt goes (data/), not the repository
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def bounds_checked_cache(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """One numba cache for the three sizes, shared by pytest-xdist's workers (each has its own
    basetemp under the run's): the kernel compiles with bounds checks once a run, not once a
    worker. A worker finding the cache in use waits for it (see the test)."""
    basetemp = tmp_path_factory.getbasetemp()
    cache = (basetemp if worker_id == "master" else basetemp.parent) / "numba-boundscheck"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.mark.parametrize("candles", [170, 200, 400])
def test_dense_trading_keeps_every_trade_with_bounds_checks_on(
    candles: int, tmp_path: Path, bounds_checked_cache: Path
) -> None:
    path = tmp_path / "ZIG_USDT-1h.csv"
    zigzag(candles).to_csv(path, index=False)
    with (bounds_checked_cache / "in-use").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        done = run_grid(path, bounds_checked_cache)
    assert done.returncode == 0, done.stderr[-2000:]
    trades = json.loads(done.stdout)["trades"]
    # Grid's warm-up is 49 candles: from there on, every candle closing through a line enters
    # (three of every four), and every entry leaves on the next candle.
    entries = sum(1 for k in range(48, candles - 1) if k % len(CYCLE) != 0)
    assert len(trades) == entries > candles // 2 + 2
    # An entry whose target is reached on the last candle has no next open to sell at: it is
    # reported still open.
    last = "open" if (candles - 2) % len(CYCLE) else "take_profit"
    assert [t["exit_reason"] for t in trades] == ["take_profit"] * (entries - 1) + [last]

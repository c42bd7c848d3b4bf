"""Hostile review (session 22, rev-ops): a portfolio sweep "runs each set in a worker thread so
the chat's loop goes on" (store_portfolio_sweep). It does not while the compiled kernel runs:
numba's njit holds the GIL for the whole call, so /halt, the tick and every reply wait for
it. Measured here on a year of 1m candles for 10 pairs, the size issue 17 benchmarks."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bot.app.config import Settings
from bot.core.clock import SystemClock
from bot.research.account_terms import NONE, research_terms
from bot.research.portfolio_sweep import PORTFOLIO, portfolio_sweep, store_portfolio_sweep
from bot.research.sweep import SweepSpec, parse_space
from storage.db import open_database
from storage.sweeps import SqliteSweepRepository

MINUTES = 525_600  # a year of 1m candles
PAIRS = [f"C{k}/USDT" for k in range(10)]
LAG = 0.25  # s: /halt's answer is held to p95 150 ms (bench/RESULTS.md, issue 20)


def _candles(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, MINUTES)))
    return pd.DataFrame(
        {
            "timestamp": 1_700_000_000_000 + np.arange(MINUTES, dtype=np.int64) * 60_000,
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": np.full(MINUTES, 1_000.0),
        }
    )


async def test_a_portfolio_sweeps_sets_leave_the_loop_running(tmp_path: Path) -> None:
    config = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "pairs": [
                {"pair": p, "timeframe": "1m", "capital_share": 0.1, "params": {"fast": 5}}
                for p in PAIRS
            ],
        }
    )
    candles = {pair: _candles(k) for k, pair in enumerate(PAIRS)}
    terms = research_terms(config, None, NONE, flag="")
    space = parse_space("ema_cross", ["fast=4:6:2"])
    spec = SweepSpec("ema_cross", space, terms={PORTFOLIO: terms})
    gaps: list[float] = []
    running = True

    async def loop_watch() -> None:  # what a /halt arriving meanwhile would wait
        while running:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            gaps.append(time.perf_counter() - before - 0.005)

    watch = asyncio.create_task(loop_watch())
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        sweep = await asyncio.to_thread(  # as PortfolioSweepDesk runs the first set
            portfolio_sweep, spec, config, candles, overrides=NONE, limits=None
        )
        await store_portfolio_sweep(SqliteSweepRepository(db), sweep, clock=SystemClock())
    running = False
    await watch
    assert max(gaps) < LAG, f"the loop stood still {max(gaps):.2f} s during a set"

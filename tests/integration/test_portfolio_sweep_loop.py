"""Found by a hostile review (session 22): a portfolio sweep "runs each set in a worker thread so
the chat's loop goes on" (store_portfolio_sweep). It did not while the compiled kernel ran:
numba's njit held the GIL for the whole call, so /halt, the tick and every reply waited for
it (0.28-6.3 s per set for 10 pairs x a year of 1m candles, issue 17's size:
``python -m bench.sweep_loop``, bench/RESULTS.md). Here 2 pairs x a year: the loop's longest
stall while a kernel call runs is measured against the call's own length, so the machine's
load does not decide it (held, the stall is the whole call)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bot.app.config import Settings
from bot.core.clock import SystemClock
from bot.research import kernel, portfolio
from bot.research.account_terms import NONE, research_terms
from bot.research.portfolio_sweep import portfolio_sweep, store_portfolio_sweep
from bot.research.sweep import PORTFOLIO, SweepSpec, parse_space
from storage.db import open_database
from storage.sweeps import SqliteSweepRepository

MINUTES = 525_600  # a year of 1m candles
PAIRS = ["C0/USDT", "C1/USDT"]


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


class _TimedKernel:
    """bot.research.kernel with each ``run`` call's start and end noted (the real kernel runs)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(kernel, name)

    def run(self, *arguments: Any) -> Any:
        start = time.perf_counter()
        try:
            return kernel.run(*arguments)
        finally:
            self.calls.append((start, time.perf_counter()))


async def test_a_portfolio_sweeps_sets_leave_the_loop_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "pairs": [
                {"pair": p, "timeframe": "1m", "capital_share": 0.5, "params": {"fast": 5}}
                for p in PAIRS
            ],
        }
    )
    candles = {pair: _candles(k) for k, pair in enumerate(PAIRS)}
    terms = research_terms(config, None, NONE, flag="")
    space = parse_space("ema_cross", ["fast=4:6:2"])
    spec = SweepSpec("ema_cross", space, terms={PORTFOLIO: terms})
    timed = _TimedKernel()
    monkeypatch.setattr(portfolio, "kernel", timed)
    stalls: list[tuple[float, float]] = []  # the loop's: (from, to)
    running = True

    async def loop_watch() -> None:  # what a /halt arriving meanwhile would wait
        while running:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            stalls.append((before, time.perf_counter()))

    watch = asyncio.create_task(loop_watch())
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        sweep = await asyncio.to_thread(  # as PortfolioSweepDesk runs the first set
            portfolio_sweep, spec, config, candles, overrides=NONE, limits=None
        )
        await store_portfolio_sweep(SqliteSweepRepository(db), sweep, clock=SystemClock())
    running = False
    await watch
    assert len(timed.calls) == 2
    for start, end in timed.calls:
        longest = max(_overlap(stall, (start, end)) for stall in stalls)
        assert longest < (end - start) / 2, (
            f"the loop stood still {longest:.3f} s of a {end - start:.3f} s kernel run"
        )


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))

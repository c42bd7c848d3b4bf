"""A portfolio sweep's sets against the event loop: 10 pairs x a year of 1m candles (issue 17's
size), each set run in a worker thread as /sweep portfolio runs it, the loop meanwhile woken
every 5 ms as a /halt arriving would need it.

    .venv/bin/python -m bench.sweep_loop [--pairs 10] [--minutes 525600]

Prints each compiled kernel call's length and the loop's longest stall during it, and the
loop's longest stall over the whole sweep (the target: /halt answered within p95 150 ms).
Held GIL (numba's njit without ``nogil``), the stall during a call is the whole call. The
candles are a seeded random walk (the loop's stall does not depend on their shape); about
1.1 GB at the default size. The suite runs the same measure on 2 pairs
(tests/integration/test_portfolio_sweep_loop.py).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.app.config import Settings
from bot.core.clock import SystemClock
from bot.research import kernel, portfolio
from bot.research.account_terms import NONE, research_terms
from bot.research.portfolio_sweep import PORTFOLIO, portfolio_sweep, store_portfolio_sweep
from bot.research.sweep import SweepSpec, parse_space
from storage.db import open_database
from storage.sweeps import SqliteSweepRepository

Span = tuple[float, float]


def random_walk(seed: int, minutes: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, minutes)))
    return pd.DataFrame(
        {
            "timestamp": 1_700_000_000_000 + np.arange(minutes, dtype=np.int64) * 60_000,
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": np.full(minutes, 1_000.0),
        }
    )


class TimedKernel:
    """bot.research.kernel with each ``run`` call's start and end noted."""

    def __init__(self) -> None:
        self.calls: list[Span] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(kernel, name)

    def run(self, *arguments: Any) -> Any:
        start = time.perf_counter()
        try:
            return kernel.run(*arguments)
        finally:
            self.calls.append((start, time.perf_counter()))


async def sweep_beside_the_loop(pairs: int, minutes: int, folder: Path) -> None:
    names = [f"C{k}/USDT" for k in range(pairs)]
    share = round(1 / pairs, 6)
    config = Settings.model_validate(
        {
            "data_dir": folder,
            "pairs": [
                {"pair": p, "timeframe": "1m", "capital_share": share, "params": {"fast": 5}}
                for p in names
            ],
        }
    )
    candles = {pair: random_walk(k, minutes) for k, pair in enumerate(names)}
    terms = research_terms(config, None, NONE, flag="")
    spec = SweepSpec(
        "ema_cross", parse_space("ema_cross", ["fast=4:8:2"]), terms={PORTFOLIO: terms}
    )
    timed = TimedKernel()
    portfolio.kernel = timed  # type: ignore[assignment]  # this process only
    stalls: list[Span] = []
    running = True

    async def watch() -> None:
        while running:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            stalls.append((before, time.perf_counter()))

    watcher = asyncio.create_task(watch())
    started = time.perf_counter()
    async with open_database(folder / "pairpilot.sqlite") as db:
        sweep = await asyncio.to_thread(
            portfolio_sweep, spec, config, candles, overrides=NONE, limits=None
        )
        await store_portfolio_sweep(SqliteSweepRepository(db), sweep, clock=SystemClock())
    running = False
    await watcher
    print(
        f"{pairs} pairs x {minutes:,} candles, {len(timed.calls)} sets, "
        f"{time.perf_counter() - started:.1f} s"
    )
    for k, call in enumerate(timed.calls, 1):
        held = max(overlap(stall, call) for stall in stalls)
        length = call[1] - call[0]
        print(f"set {k}: kernel {length:.3f} s, the loop's longest stall in it {held:.3f} s")
    worst = max(end - start - 0.005 for start, end in stalls)
    print(f"the loop's longest stall over the sweep: {worst:.3f} s (target: /halt p95 0.150 s)")


def overlap(a: Span, b: Span) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--minutes", type=int, default=525_600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(sweep_beside_the_loop(args.pairs, args.minutes, Path(folder)))


if __name__ == "__main__":
    main()

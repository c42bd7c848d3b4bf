"""What handing a strategy its own copy of a tick's candles costs (issue 18, review finding 7).

    .venv/bin/python -m bench.strategy_input_copy [--rows 700] [--repeat 2000]

A live tick hands each pair's strategy the closed candles it needs (its ``history``: about
500-700 rows for the built-ins) through ``Strategy.remembered_signals``, which now gives the
strategy ``candles.copy()`` so user code changing its input in place cannot change the candles
the tick trades on or the candle source's cache. Printed: the copy's time per tick, next to the
time ema_cross takes for its signals on the same frame (the strategy's own work).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from strategies.ema_cross import EmaCross


def candles(rows: int) -> pd.DataFrame:
    """``rows`` hourly candles of a random walk, as the candle source returns them."""
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, rows)))
    return pd.DataFrame(
        {
            "timestamp": np.arange(rows, dtype=np.int64) * 3_600_000,
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.uniform(1, 10, rows),
        }
    )


def per_call(call: object, repeat: int) -> float:
    """Median seconds of ``call()`` over 5 batches of ``repeat``."""
    assert callable(call)
    batches = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(repeat):
            call()
        batches.append((time.perf_counter() - began) / repeat)
    return sorted(batches)[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=700)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    frame = candles(args.rows)
    copy = per_call(frame.copy, args.repeat)
    strategy = EmaCross()
    signals = per_call(lambda: strategy.signals(frame), max(args.repeat // 20, 20))
    print(f"candles.copy() of {args.rows} rows: {copy * 1e6:.1f} us per pair per tick")
    print(f"ema_cross signals on them: {signals * 1e6:.0f} us ({copy / signals:.1%} added)")


if __name__ == "__main__":
    main()

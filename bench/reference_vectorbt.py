"""vectorbt running EMA 12/26 long-only, 0.1% fee, all-in, next-open fills, on a file.

vectorbt 1.x needs numba >= 0.66 while pandas-ta pins 0.61.2, so this runs from a separate
virtual environment (backtest_speed.py --vectorbt PYTHON). pandas-ta is not there, so the EMA
is written out here the way pandas-ta computes it: seeded with the SMA of the first `length`
closes, then the usual recursion.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd
import vectorbt as vbt


def ema(close: np.ndarray, length: int) -> np.ndarray:
    values = pd.Series(close).copy()
    values.iloc[: length - 1] = np.nan
    values.iloc[length - 1] = close[:length].mean()
    values.iloc[: length - 1] = np.nan
    result = values.ewm(span=length, adjust=False, ignore_na=True).mean()
    result.iloc[: length - 1] = np.nan
    return result.to_numpy()


def main(path: str, cash: float) -> None:
    raw = pd.read_csv(path)
    started = time.perf_counter()
    close = raw.close.to_numpy()
    spread = ema(close, 12) - ema(close, 26)
    before = np.roll(spread, 1)
    before[0] = np.nan
    enter = (spread > 0) & (before <= 0)
    leave = (spread < 0) & (before >= 0)
    # A decision at a close fills at the next open: shift the signals onto the next bar.
    entries = pd.Series(np.roll(enter, 1)).fillna(False)
    exits = pd.Series(np.roll(leave, 1)).fillna(False)
    entries.iloc[0] = exits.iloc[0] = False
    portfolio = vbt.Portfolio.from_signals(
        pd.Series(close),
        entries,
        exits,
        price=pd.Series(raw.open.to_numpy()),
        fees=0.001,
        size=np.inf,
        init_cash=cash,
        freq="1min",
    )
    trades = portfolio.trades.closed.count()  # closed only, as the other engines count
    print(
        json.dumps(
            {
                "trades": int(trades),
                "final_equity": float(portfolio.final_value()),
                "engine_seconds": time.perf_counter() - started,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))

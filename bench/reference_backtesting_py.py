"""backtesting.py running EMA 12/26 long-only, 0.1% fee, all-in, next-open fills, on a file.

Prints one JSON line: trades, final equity and the seconds its engine took. Run as a whole
process by backtest_speed.py so its imports count as ours do.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import pandas as pd
import pandas_ta as ta
from backtesting import Strategy
from backtesting.lib import FractionalBacktest


class EmaCross(Strategy):
    def init(self) -> None:
        close = pd.Series(self.data.Close)
        self.spread = self.I(
            lambda: (ta.ema(close, length=12) - ta.ema(close, length=26)).to_numpy(),
            name="spread",
            overlay=False,
        )

    def next(self) -> None:
        now, before = self.spread[-1], self.spread[-2]
        if now > 0 and before <= 0 and not self.position:
            self.buy(size=0.9999)
        elif now < 0 and before >= 0 and self.position:
            self.position.close()


def main(path: str, cash: float) -> None:
    raw = pd.read_csv(path)
    data = pd.DataFrame(
        {
            "Open": raw.open,
            "High": raw.high,
            "Low": raw.low,
            "Close": raw.close,
            "Volume": raw.volume,
        }
    ).set_index(pd.to_datetime(raw.timestamp, unit="ms", utc=True))
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = FractionalBacktest(
            data,
            EmaCross,
            cash=cash,
            commission=0.001,
            fractional_unit=1e-10,
            finalize_trades=False,
        ).run()
    print(
        json.dumps(
            {
                "trades": len(stats["_trades"]),
                "final_equity": stats["Equity Final [$]"],
                "engine_seconds": time.perf_counter() - started,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))

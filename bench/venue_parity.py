"""Venue parity, long: every strategy on every venue's fake, the live engine in live mode against
the backtest kernel configured like that account (``ACCOUNTS``: its price step, fee coin and
stops; tests/integration/test_venue_parity.py runs eight cases of 300 candles). Prints each
case's trades, its largest differences and anything beyond the venue's allowed differences
(lot steps, the price step, a resting stop's fill time inside its candle: see the test's
docstring).

    .venv/bin/python -m bench.venue_parity [--traded 600] [--first 300]
        [--venues binance,okx,bybit,kraken,coinbase] [--strategies ema_cross,...]
        [--signals-only]

Runs on the bundled sample (2,184 hourly BTC candles): --first + 300 (history) + --traded
must fit in it.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.paths import SAMPLE_DATA
from bot.market.candle_files import read_candle_file
from strategies import BUILT_INS
from tests.integration.test_parity import EVERY_EXIT
from tests.integration.test_venue_parity import ACCOUNTS, both_trades, differences
from tests.rigs.venue_parity import WARM

SAMPLE = SAMPLE_DATA / "BTC_USDT-1h.csv.gz"
FIELDS = ("entry_price", "exit_price", "amount", "pnl", "fee")


async def case(
    candles: pd.DataFrame, venue: str, strategy: str, params: dict[str, float]
) -> tuple[str, bool]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        live, expected, reasons, _ = await both_trades(
            Path(folder), candles, venue, strategy, params
        )
    worst = dict.fromkeys(FIELDS, 0.0)
    found = [] if len(live) == len(expected) else [f"{len(live)} live, {len(expected)} backtest"]
    for a, b in zip(live, expected, strict=False):
        for name in FIELDS:
            worst[name] = max(worst[name], abs(getattr(a, name) - getattr(b, name)))
        found += [
            f"{b.exit_time:%m-%d %H}h {b.exit_reason}: {d}"
            for d in differences(
                a,
                b,
                ACCOUNTS[venue].tick,
                resting_stops=ACCOUNTS[venue].resting_stops,
                limit_entries="entry_offset" in params,
            )
        ]
    resting = sum(r not in ("signal", "take_profit") for r in reasons)
    seconds = time.perf_counter() - started
    line = (
        f"{venue:8} {strategy:20} {'every exit' if params else 'signals':10} "
        f"{len(expected):3} trades ({resting} stops) in {seconds:5.1f} s; largest "
        "differences: " + ", ".join(f"{k} {v:.3g}" for k, v in worst.items())
    )
    return line + "".join(f"\n    MISMATCH {m}" for m in found), not found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traded", type=int, default=600)
    parser.add_argument("--first", type=int, default=300)
    parser.add_argument("--venues", default=",".join(ACCOUNTS))
    parser.add_argument("--strategies", default=",".join(sorted(BUILT_INS)))
    parser.add_argument("--signals-only", action="store_true", help="no protective exits")
    args = parser.parse_args()
    candles = read_candle_file(SAMPLE)
    window = candles.iloc[args.first : args.first + WARM + args.traded].reset_index(drop=True)
    params = {} if args.signals_only else EVERY_EXIT
    started, clean = time.perf_counter(), True
    for venue in args.venues.split(","):
        for strategy in args.strategies.split(","):
            line, same = asyncio.run(case(window, venue, strategy, params))
            print(line, flush=True)
            clean = clean and same
    print(f"{'all equal' if clean else 'MISMATCHES'} in {time.perf_counter() - started:.0f} s")
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())

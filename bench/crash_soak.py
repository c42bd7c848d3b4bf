"""Crash soak: SIGKILL the live service (fake exchange, Telegram emulator) at random moments,
at least 200 times, restarting it after each kill and checking every invariant.

    .venv/bin/python -m bench.crash_soak [--kills 200] [--seed 1]
        [--venue binance|okx|bybit|coinbase|kraken] [--split 0.4,0.6]
        [--fee-asset quote|received|BNB]
        [--dwell 0,6] [--walks]

``--dwell low,high``: the ticks the service runs before each kill (a fraction: that far into
the next tick), counted in the service's ticks, not in seconds (until 2026-11 it was seconds,
0.1,1.5 by default), so a loaded machine changes the timing of the kills, not what they
interrupt. See tests/soaks/crash_soak.py for what is checked; the suite runs the same soak
with 2 kills per venue.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from bench.paths import SAMPLE_DATA, SHARED_DATA
from bot.market.candle_files import read_candle_file
from tests.soaks.crash_soak import run_crash_soak

SAMPLE = SAMPLE_DATA / "BTC_USDT-1h.csv.gz"
SHARED = SHARED_DATA / "BTC_USDT-1h.csv.gz"  # 6 years: never runs out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--venue", default="binance", help="whose fake and ccxt class")
    parser.add_argument("--split", default="1", help="each order's trades, as shares: 0.4,0.6")
    parser.add_argument("--fee-asset", default="quote", help="quote, received or BNB")
    parser.add_argument(
        "--dwell", default="0,6", help="ticks the service runs before each kill: low,high"
    )
    parser.add_argument(
        "--walks", action="store_true", help="the market walks each candle: stops fire inside it"
    )
    args = parser.parse_args()
    split = tuple(float(share) for share in args.split.split(","))
    low, high = (float(bound) for bound in args.dwell.split(","))
    candles = read_candle_file(SHARED if SHARED.exists() else SAMPLE)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, tqdm(total=args.kills, unit="kill") as bar:
        report = asyncio.run(
            run_crash_soak(
                Path(folder),
                candles,
                kills=args.kills,
                seed=args.seed,
                progress=bar.update,
                venue=args.venue,
                split=split,
                fee_asset=args.fee_asset,
                dwell=(low, high),
                walks=args.walks,
            )
        )
    took = time.perf_counter() - started
    print(
        f"kills {report.kills} ({took:.0f} s); landed: "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.landed.items()))
    )
    print(
        f"restart to reconciled: median {statistics.median(report.restart_seconds):.2f} s, "
        f"max {max(report.restart_seconds):.2f} s"
    )
    print(
        f"exchange orders {report.exchange_orders}, fills booked {report.fills}, alerts "
        f"{report.alerts} ({report.alerts_delivered} delivered; sent twice because a kill fell "
        f"between the send and its record: {report.alerts_sent_twice}; copies that said they "
        f"may be a repeat: {report.repeats_marked})"
    )
    checks = report.invariants
    if checks:
        print(
            f"position invariants checked after each of {checks.checks} restarts: a position "
            f"waiting for its stop {checks.unprotected} times, dust in the books "
            f"{checks.dust_seen} times, violations {len(checks.violations)}"
        )
    print(f"invariant violations: {len(report.violations)}")
    for violation in report.violations[:20]:
        print("  " + violation)
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())

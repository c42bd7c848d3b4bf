"""Exchange fault soak: 10,000 hourly ticks of the live stack on the fake exchange, 20% of its
calls failing across every class (timeouts, 429/418 with Retry-After, 5xx, dropped connections,
rejections, partial fills, clock skew). Prints what was injected and every invariant.

    .venv/bin/python -m bench.exchange_fault_soak [--ticks 10000] [--rate 0.2] [--seed 1]
        [--venue binance|okx|bybit|coinbase|kraken] [--split 0.4,0.6]
        [--fee-asset quote|received|BNB]

Needs ../shared/data/BTC_USDT-1h.csv.gz (real candles, more than the bundled sample holds).
The suite runs the same soak for 400 ticks (tests/soaks/test_soaks.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.paths import SHARED_DATA
from bot.market.candle_files import read_candle_file
from tests.doubles.exchange_chaos import run_fault_soak

DATA = SHARED_DATA / "BTC_USDT-1h.csv.gz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--venue", default="binance", help="whose fake and ccxt class")
    parser.add_argument("--split", default="1", help="each order's trades, as shares: 0.4,0.6")
    parser.add_argument("--fee-asset", default="quote", help="quote, received or BNB")
    args = parser.parse_args()
    split = tuple(float(share) for share in args.split.split(","))
    if not DATA.exists():
        print(f"needs {DATA} (beside the checkout in CI)", file=sys.stderr)
        return 2
    candles = read_candle_file(DATA)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        report = asyncio.run(
            run_fault_soak(
                Path(folder),
                candles,
                ticks=args.ticks,
                rate=args.rate,
                seed=args.seed,
                venue=args.venue,
                split=split,
                fee_asset=args.fee_asset,
            )
        )
    took = time.perf_counter() - started
    print(
        f"ticks {report.ticks}, exchange requests {report.requests}, faults injected "
        f"{report.faults} ({report.faults / report.requests:.1%}), {took:.0f} s"
    )
    print("by class: " + ", ".join(f"{k} {v}" for k, v in sorted(report.injected.items())))
    print(
        f"orders placed but unanswered {report.unanswered_orders}; fills booked "
        f"{report.fills_booked} = exchange trades {report.exchange_trades}"
    )
    print("alerts: " + ", ".join(f"{k} {v}" for k, v in sorted(report.alerts.items())))
    checks = report.invariants
    if checks:
        print(
            f"position invariants checked after each of {checks.checks} ticks: a position "
            f"waiting one tick for its stop {checks.unprotected} times, dust in the books "
            f"{checks.dust_seen} times, violations {len(checks.violations)}"
        )
    problems = report.problems
    print(f"invariant violations: {len(problems)}")
    for problem in problems:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""1,000 EMA-crossover combinations on a year of 1h BTC/USDT on Dask: 1 worker against 2, and
the cost of one combination against a single backtest (the reference: one `run_backtest`).

    .venv/bin/python -m bench.sweep_speed [--combinations 1000]

Needs ../shared/data/BTC_USDT-1h.csv.gz (the last 8,760 candles are used). Timed: the sweep on
a running LocalCluster (processes, one thread each), scatter included, cluster start-up not.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from distributed import Client, LocalCluster

from bench.paths import SHARED_DATA
from bench.terms import bench_terms, stated
from bot.market.candle_files import read_candle_file
from bot.research.backtest import run_backtest, setup_for
from bot.research.sweep import Series, SweepSpec, combinations
from bot.research.sweep_dask import run_on_dask
from strategies import build_strategy

DATA = SHARED_DATA / "BTC_USDT-1h.csv.gz"
SPACE = {"fast": list(range(2, 61)), "slow": list(range(20, 301, 10))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--combinations", type=int, default=1000)
    args = parser.parse_args()
    if not DATA.exists():
        print(f"needs {DATA} (beside the checkout in CI)", file=sys.stderr)
        return 2
    logging.getLogger("distributed").setLevel(logging.WARNING)
    year = read_candle_file(DATA).iloc[-8760:].reset_index(drop=True)
    terms = {"BTC/USDT": bench_terms("BTC/USDT")}
    spec = SweepSpec("ema_cross", SPACE, random_samples=args.combinations, terms=terms)
    series = [Series("BTC/USDT", "1h", year)]
    combos = combinations(spec)
    setup = setup_for("BTC/USDT", "1h", terms["BTC/USDT"])
    print(stated(terms["BTC/USDT"]))
    run_backtest(year, build_strategy("ema_cross", combos[0]), setup)  # numba warm
    started = time.perf_counter()
    for combo in combos[:50]:
        run_backtest(year, build_strategy("ema_cross", combo), setup)
    single = (time.perf_counter() - started) / 50
    print(
        f"{len(combos)} combinations, {len(year)} candles; one backtest in this process: "
        f"{single * 1000:.1f} ms"
    )
    seconds = {}
    for workers in (1, 2):
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        with cluster, Client(cluster) as client:
            run_on_dask(
                client,
                SweepSpec("ema_cross", {"fast": [5], "slow": [20]}, terms=terms),
                series,
                lambda rows: None,
            )  # warm the workers (imports, numba)
            rows = 0

            def count(found: list) -> None:
                nonlocal rows
                rows += len(found)

            started = time.perf_counter()
            run_on_dask(client, spec, series, count)
            seconds[workers] = time.perf_counter() - started
        assert rows == len(combos)
        print(
            f"{workers} worker(s): {seconds[workers]:.2f} s, "
            f"{seconds[workers] / len(combos) * 1000:.2f} ms per combination "
            f"({seconds[workers] / len(combos) / single:.2f}x a single backtest)"
        )
    print(f"speed-up 1 -> 2 workers: {seconds[1] / seconds[2]:.2f}x (target: 1,000 in <= 30 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Backtest speed and memory: pairpilot against backtesting.py and vectorbt, same data, one run.

    .venv/bin/python -m bench.backtest_speed [--runs 5] [--vectorbt /path/to/python]

EMA 12/26 crossover, long only, 0.1% fee, all-in, next-open fills. Whole processes are timed
with /usr/bin/time (wall seconds and peak RSS), median of --runs. Our targets are measured with
stop-loss and take-profit on (the kernel then looks inside every candle while in a position);
the runs without them check that every engine makes the same number of trades.
vectorbt needs numba >= 0.66 while pandas-ta pins 0.61.2, so it runs from its own venv.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.paths import BENCH, SHARED_DATA
from bench.series import build_year
from bench.terms import bench_terms, stated
from bot.market.candle_files import read_candle_file
from bot.research.backtest import run_backtest, setup_for
from strategies import build_strategy

REAL = SHARED_DATA / "BTC_USDT-1m.csv.gz"
CACHE = BENCH / ".cache"
# The console script beside the interpreter running the bench (a whole process is timed).
PAIRPILOT = str(Path(sys.executable).with_name("pairpilot"))
# The reference engines, run by path: vectorbt's runs from another venv, outside this checkout.
BACKTESTING_PY = BENCH / "reference_backtesting_py.py"
VECTORBT = BENCH / "reference_vectorbt.py"
STOPS = ["--param", "stop_loss=0.01", "--param", "take_profit=0.02"]
# A large balance keeps every engine clear of dust: all-in at a 0.1% fee over ~9,000 trades
# shrinks 1,000 USDT to about 1e-5, where engines' minimum-size rules differ.
CASH = 1e9
# The reference engines have no risk rules: ours sizes all-in too, with no caps or halts.
RISK = {
    "position_fraction": "0.9999",
    "min_order_value": "0",
    "max_position_fraction": "1",
    "daily_loss_limit": "0",
    "max_drawdown": "0",
}
# The CLI's options for the terms ``bench_terms`` builds (its plain account, all in).
ALL_IN = [
    *("--balance", str(CASH), "--slippage", "0", "--volume-share", "0", "--no-resting-stops"),
    *(item for key, value in RISK.items() for item in ("--risk", f"{key}={value}")),
]
# Measured on this kind of machine and recorded in the issue (not re-run here).
FREQTRADE = {"BTC_USDT-1m.csv.gz (130,708)": (10.4, None), "year (525,600)": (38.0, 900.0)}


def timed(command: list[str], runs: int) -> tuple[float, float, str]:
    """Median wall seconds, median peak RSS (MB) and the last run's stdout."""
    walls, peaks, out = [], [], ""
    for _ in range(runs):
        with tempfile.NamedTemporaryFile("r") as report:
            done = subprocess.run(
                ["/usr/bin/time", "-o", report.name, "-f", "%e %M", *command],
                capture_output=True,
                text=True,
                check=True,
            )
            wall, peak = report.read().split()[-2:]
        walls.append(float(wall))
        peaks.append(float(peak) / 1024)
        out = done.stdout
    return statistics.median(walls), statistics.median(peaks), out


def ours(path: Path, extra: list[str], runs: int) -> tuple[float, float, int, int]:
    command = [
        PAIRPILOT,
        "backtest",
        "--data",
        str(path),
        "--json",
        *ALL_IN,
        *extra,
    ]
    wall, peak, out = timed(command, runs)
    document = json.loads(out)
    reasons = [trade["exit_reason"] for trade in document["trades"]]
    protective = sum(reason not in ("signal", "open") for reason in reasons)
    # Closed trades, as the reference engines count them (a position open at the end is not).
    return wall, peak, len(reasons) - reasons.count("open"), protective


def reference(python: str, script: Path, path: Path, runs: int) -> tuple[float, float, dict]:
    wall, peak, out = timed([python, str(script), str(path), str(CASH)], runs)
    return wall, peak, json.loads(out.strip().splitlines()[-1])


def engine_seconds(path: Path, sizes: list[int], runs: int) -> dict[int, float]:
    """Our engine alone (signals, kernel, trades, metrics) on the first N candles, warmed up."""
    candles = read_candle_file(path)
    strategy = build_strategy("ema_cross", {"stop_loss": 0.01, "take_profit": 0.02})
    setup = setup_for("BTC/USDT", "1m", bench_terms("BTC/USDT", balance=CASH, risk=RISK))
    run_backtest(candles.iloc[:1000], strategy, setup)  # loads the compiled kernel
    result = {}
    for size in sizes:
        part = candles.iloc[:size]
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            run_backtest(part, strategy, setup)
            times.append(time.perf_counter() - started)
        result[size] = statistics.median(times)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--vectorbt", help="a python with vectorbt installed")
    args = parser.parse_args()
    if not REAL.is_file():
        sys.exit(f"{REAL} is missing: the benchmark needs the shared data folder")
    year = build_year(REAL, CACHE / "year" / "BTC_USDT-1m.csv.gz")
    subprocess.run(
        [PAIRPILOT, "backtest", "--data", str(REAL), *STOPS],
        capture_output=True,
        check=True,
    )  # compile the kernel once, into the cache
    print(stated(bench_terms("BTC/USDT", balance=CASH, risk=RISK)))
    print(f"runs per figure: {args.runs} (median); whole processes; peak RSS in MB\n")
    for label, path in (("BTC_USDT-1m.csv.gz (130,708)", REAL), ("year (525,600)", year)):
        rows = []
        wall, peak, trades, protective = ours(path, STOPS, args.runs)
        rows.append(("pairpilot, stop-loss 1% + take-profit 2%", wall, peak, trades))
        text_wall, text_peak, _ = timed(
            [PAIRPILOT, "backtest", "--data", str(path), *ALL_IN, *STOPS],
            args.runs,
        )
        rows.append(("  the same, text output", text_wall, text_peak, trades))
        wall_plain, peak_plain, trades_plain, _ = ours(path, [], args.runs)
        rows.append(("pairpilot, signals only", wall_plain, peak_plain, trades_plain))
        wall_bt, peak_bt, bt = reference(sys.executable, BACKTESTING_PY, path, args.runs)
        rows.append(("backtesting.py 0.6.6", wall_bt, peak_bt, bt["trades"]))
        if args.vectorbt:
            wall_vb, peak_vb, vb = reference(args.vectorbt, VECTORBT, path, args.runs)
            rows.append(("vectorbt", wall_vb, peak_vb, vb["trades"]))
        ft_wall, ft_peak = FREQTRADE[label]
        print(f"== {label}")
        print(f"{'engine':<38} {'wall s':>8} {'peak MB':>8} {'trades':>7} {'x ours':>7}")
        for name, seconds, megabytes, count in rows:
            print(f"{name:<38} {seconds:>8.2f} {megabytes:>8.0f} {count:>7} {seconds / wall:>7.1f}")
        peak_text = f"{ft_peak:>8.0f}" if ft_peak else f"{'-':>8}"
        print(
            f"{'freqtrade 2026.9 (recorded, not run)':<38} {ft_wall:>8.2f} {peak_text} "
            f"{'':>7} {ft_wall / wall:>7.1f}"
        )
        print(f"protective exits with stops on: {protective} of {trades} trades")
        print(f"trades agree (signals only): {len({row[3] for row in rows[2:]}) == 1}\n")
    sizes = [1_000, 10_000, 100_000, 500_000, 525_600]
    print("== our engine alone (data loaded, kernel warm), stop-loss 1% + take-profit 2%")
    for size, seconds in engine_seconds(year, sizes, args.runs).items():
        print(
            f"{size:>9,} candles {seconds * 1000:>9.1f} ms  {seconds / size * 1e9:>7.0f} ns/candle"
        )


if __name__ == "__main__":
    main()

"""`pairpilot strategy check` on a year of 1h candles for each built-in strategy: the whole
command as a user runs it (a process: imports, reading, the analysis, storing), against the
issue's target of 10 s each (issue 18).

    .venv/bin/python -m bench.strategy_check_speed [--pair BTC_USDT] [--repeat 1]
        [--against /work/main] [--no-reference] [--only macd,rsi]

Needs ../shared/data/<pair>-1h.csv.gz (its last 8,760 candles are written to a temporary file
and checked). Prints, per strategy: the command's wall time, the analysis' own time (the
verdict line), how many prefixes the look-ahead check recomputed and how many candles its live
replay covered, and two references: checking every one of the 8,760 prefixes, and replaying
every candle live (a fresh object on the live window), each extrapolated from ``SAMPLED``
random ones timed here in one process (the check spreads its replay over two).
``--against DIR``: the same command from another checkout (its code on PYTHONPATH, this
interpreter), run alternately with this one's, so both see the same load; ``--no-reference``
skips the two references.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.paths import ROOT, SHARED_DATA
from bot.market.candle_files import read_candle_file
from strategies import BUILT_INS, build_strategy

YEAR = 24 * 365
TARGET = 10.0
SAMPLED = 100
Run = tuple[float, float, int, str, float]
VERDICT = re.compile(r"verdict: (\w+).* in ([0-9.]+) s")
PREFIXES = re.compile(r"(\d+) prefixes recomputed")
REPLAYED = re.compile(r"live replay: ([0-9,]+) of ([0-9,]+) candles")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", default="BTC_USDT", help="the shared file's pair (BTC_USDT)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per strategy (best kept)")
    parser.add_argument("--against", type=Path, help="another checkout to time alternately")
    parser.add_argument("--no-reference", action="store_true", help="skip the references")
    parser.add_argument("--only", help="comma-separated built-ins (default: all)")
    args = parser.parse_args()
    data = SHARED_DATA / f"{args.pair}-1h.csv.gz"
    if not data.exists():
        print(f"needs {data} (beside the checkout in CI)", file=sys.stderr)
        return 2
    year = read_candle_file(data).iloc[-YEAR:]
    roots = [ROOT] if args.against is None else [args.against.resolve(), ROOT]
    worst = 0.0
    with tempfile.TemporaryDirectory() as folder:
        candles = Path(folder) / f"{args.pair}-1h.csv"
        year.to_csv(candles, index=False)
        print(f"{len(year)} candles of {args.pair} 1h; target {TARGET:.0f} s per strategy")
        for name in sorted(args.only.split(",") if args.only else BUILT_INS):
            runs: dict[Path, list[Run]] = {root: [] for root in roots}
            for _ in range(args.repeat):
                for root in roots:
                    runs[root].append(_run(name, candles, Path(folder), root))
            for root in roots:
                wall, inside, prefixes, replayed, _ = min(runs[root])
                if root == ROOT:
                    worst = max(worst, wall)
                walls = sorted(run[0] for run in runs[root])
                cpus = sorted(run[4] for run in runs[root])
                print(
                    f"{name:<20} {_label(root)}: command {wall:5.2f} s (median "
                    f"{walls[len(walls) // 2]:5.2f}), cpu {cpus[0]:5.2f} s (median "
                    f"{cpus[len(cpus) // 2]:5.2f}), analysis {inside:5.2f} s, {prefixes} prefixes "
                    f"recomputed, {replayed} candles replayed; load {os.getloadavg()[0]:.1f}"
                )
            if not args.no_reference:
                every, live = _every_prefix(name, year), _every_window(name, year)
                print(
                    f"  every prefix would take ~{every:.0f} s, every candle replayed ~{live:.0f} s"
                )
    print(f"slowest: {worst:.2f} s ({'within' if worst <= TARGET else 'OVER'} the target)")
    return 0 if worst <= TARGET else 1


def _every_prefix(name: str, year: pd.DataFrame) -> float:
    """Seconds to recompute the signals of all ``len(year)`` prefixes, from ``SAMPLED`` ones."""
    strategy = build_strategy(name)
    ends = np.random.default_rng(0).integers(1, len(year), SAMPLED)
    started = time.perf_counter()
    for end in ends:
        strategy.signals(year.iloc[:end])
    return (time.perf_counter() - started) / SAMPLED * len(year)


def _every_window(name: str, year: pd.DataFrame) -> float:
    """Seconds to replay every candle live in one process, from ``SAMPLED`` ones."""
    strategy = build_strategy(name)
    ends = np.random.default_rng(0).integers(strategy.history, len(year), SAMPLED)
    started = time.perf_counter()
    for end in ends:
        window = year.iloc[end - strategy.history : end].reset_index(drop=True)
        build_strategy(name).remembered_signals(window)
    return (time.perf_counter() - started) / SAMPLED * len(year)


def _label(root: Path) -> str:
    return "this" if root == ROOT else root.name


def _run(name: str, candles: Path, cwd: Path, root: Path) -> Run:
    """The command's wall time, the analysis' own, prefixes, replay coverage, and the CPU
    seconds of the command and its worker processes (what the load of the machine changes
    least)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "strategy", "check", name, "--data", str(candles)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    verdict = VERDICT.search(done.stdout)
    prefixes, replayed = PREFIXES.search(done.stdout), REPLAYED.search(done.stdout)
    if done.returncode != 0 or verdict is None or prefixes is None or replayed is None:
        raise SystemExit(f"{name}: exit {done.returncode}\n{done.stdout}{done.stderr}")
    covered = f"{replayed.group(1)} of {replayed.group(2)}"
    return wall, float(verdict.group(2)), int(prefixes.group(1)), covered, cpu


if __name__ == "__main__":
    sys.exit(main())

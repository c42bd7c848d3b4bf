"""Monte Carlo robustness: 10,000 resamples of 1,000 trades (``bot.research.monte_carlo``)
against the issue's target of 1 s (issue 18), and the reference: the same bootstrap one
resample at a time in plain Python, extrapolated from ``SAMPLED`` resamples timed here.

    .venv/bin/python -m bench.monte_carlo_speed [--resamples 10000] [--trades 1000] [--repeat 5]

Prints the best of ``--repeat`` runs (the first is a warm-up of numpy's code paths too).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bot.research.monte_carlo import monte_carlo

TARGET = 1.0
SAMPLED = 50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--trades", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    returns = np.random.default_rng(1).normal(0.002, 0.02, args.trades)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        figures = monte_carlo(returns, args.resamples, halt=0.15)
        times.append(time.perf_counter() - start)
    best = min(times)
    reference = _plain_python(returns.tolist(), SAMPLED) * args.resamples / SAMPLED
    verdict = "within" if best <= TARGET else "OVER"
    print(f"{args.resamples:,} resamples x {args.trades:,} trades")
    median = sorted(times)[len(times) // 2]
    print(f"vectorised: first {times[0]:.3f} s, best {best:.3f} s, median {median:.3f} s")
    print(f"  {verdict} the {TARGET:.0f} s target")
    print(f"plain Python, one resample at a time: {reference:.1f} s (from {SAMPLED} timed)")
    print(f"figures: {figures.as_dict()}")
    return 0 if best <= TARGET else 1


def _plain_python(returns: list[float], resamples: int) -> float:
    """Seconds for ``resamples`` bootstraps, a loop per trade: the reference."""
    rng = np.random.default_rng(2)
    start = time.perf_counter()
    for _ in range(resamples):
        equity, peak, worst = 1.0, 1.0, 0.0
        for pick in rng.integers(0, len(returns), len(returns)).tolist():
            equity *= 1 + returns[pick]
            peak = max(peak, equity)
            worst = max(worst, 1 - equity / peak)
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())

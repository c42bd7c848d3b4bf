"""Monte Carlo robustness of a backtest (issue 18): its closed trades' returns resampled with
replacement, each resample as many trades as the backtest closed, compounded on the starting
balance. Reports the 5th/50th/95th percentiles of the final return and of the max drawdown,
and the share of resamples whose drawdown went deeper than the risk manager's halt.

A trade's return is its PnL over the equity it was entered on (the balance plus every earlier
trade's PnL), so a resample reorders the backtest's own outcomes; seeded, so the same backtest
and seed give the same figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from bot.core.errors import UserInputError

if TYPE_CHECKING:
    from bot.research.backtest import BacktestResult

DEFAULT_SEED = 20_260_101
MAX_RESAMPLES = 100_000
PERCENTILES = (5, 50, 95)
CHUNK_CELLS = 2_000_000  # resample rows × trades drawn at once: bounds memory


@dataclass(frozen=True, slots=True)
class MonteCarlo:
    resamples: int
    trades: int
    seed: int
    halt: float  # the drawdown limit that halts entries, a fraction (0: no halt)
    final_return: tuple[float, float, float]  # 5th, 50th, 95th percentile, fractions
    max_drawdown: tuple[float, float, float]
    halt_chance: float | None  # share of resamples with a drawdown deeper than ``halt``

    def as_dict(self) -> dict[str, object]:
        return {
            "resamples": self.resamples,
            "trades": self.trades,
            "seed": self.seed,
            "halt_drawdown": self.halt,
            "final_return": dict(zip(("p5", "p50", "p95"), self.final_return, strict=True)),
            "max_drawdown": dict(zip(("p5", "p50", "p95"), self.max_drawdown, strict=True)),
            "halt_chance": self.halt_chance,
        }

    def lines(self) -> list[str]:
        """Plain text, one figure a line, as the CLI table and the chat caption show it."""
        ret = ", ".join(f"{v:+.2%}" for v in self.final_return)
        dd = ", ".join(f"{v:.2%}" for v in self.max_drawdown)
        sample = f"{self.resamples:,} resamples of {self.trades:,} trades"
        return [
            f"Monte Carlo: {sample} (seed {self.seed})",
            f"final return p5/p50/p95: {ret}",
            f"max drawdown p5/p50/p95: {dd}",
            (
                "no drawdown halt set (risk max_drawdown 0)"
                if self.halt_chance is None
                else f"chance of drawdown over the {self.halt * 100:g}% halt: "
                f"{self.halt_chance:.1%}"
            ),
        ]


def resample_count(text: str, flag: str) -> int:
    """``text`` as a number of resamples: a whole number from 1 to MAX_RESAMPLES."""
    try:
        count = int(text)
    except ValueError:
        raise UserInputError(f"{flag} {text!r}: give a whole number of resamples") from None
    if not 1 <= count <= MAX_RESAMPLES:
        raise UserInputError(f"{flag} {count}: resamples must be from 1 to {MAX_RESAMPLES:,}")
    return count


def trade_returns(pnl: NDArray[np.float64], balance: float) -> NDArray[np.float64]:
    """Each trade's PnL over the equity it was entered on, trades in the order they closed."""
    before = balance + np.concatenate(([0.0], np.cumsum(pnl)[:-1]))
    returns: NDArray[np.float64] = pnl / before
    return returns


def check_trades(count: int) -> None:
    if count < 2:
        raise UserInputError(
            f"Monte Carlo needs at least 2 closed trades; this backtest closed {count}"
        )


def monte_carlo(
    returns: NDArray[np.float64], resamples: int, halt: float, seed: int = DEFAULT_SEED
) -> MonteCarlo:
    """``resamples`` bootstraps of ``returns`` (each the same length), vectorised in chunks."""
    check_trades(len(returns))
    if not 1 <= resamples <= MAX_RESAMPLES:
        raise UserInputError(f"resamples must be from 1 to {MAX_RESAMPLES:,}")
    n = len(returns)
    growth = np.log1p(np.asarray(returns, dtype=np.float64))
    rng = np.random.default_rng(seed)
    finals = np.empty(resamples)
    drawdowns = np.empty(resamples)
    rows = max(1, CHUNK_CELLS // n)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        picks = rng.integers(0, n, size=(stop - start, n))
        path = np.cumsum(growth[picks], axis=1)  # log equity over the starting balance
        peak = np.maximum(np.maximum.accumulate(path, axis=1), 0.0)  # the balance is a peak
        drawdowns[start:stop] = -np.expm1((path - peak).min(axis=1))
        finals[start:stop] = np.expm1(path[:, -1])
    final_pcts = np.percentile(finals, PERCENTILES)
    dd_pcts = np.percentile(drawdowns, PERCENTILES)
    return MonteCarlo(
        resamples=resamples,
        trades=n,
        seed=seed,
        halt=halt,
        final_return=(float(final_pcts[0]), float(final_pcts[1]), float(final_pcts[2])),
        max_drawdown=(float(dd_pcts[0]), float(dd_pcts[1]), float(dd_pcts[2])),
        # deeper than the halt, as the risk guard compares; a limit of 0 halts nothing
        halt_chance=float(np.mean(drawdowns > halt)) if halt > 0 else None,
    )


def resampled(result: BacktestResult, resamples: int, seed: int | None = None) -> MonteCarlo:
    """The figures for ``result``'s closed trades (the one still open at the end is left
    out), against its drawdown halt; refused under two closed trades."""
    table = result.table
    check_trades(table.closed)
    returns = trade_returns(table.pnl[: table.closed], result.setup.balance)
    halt = result.setup.limits.max_drawdown
    return monte_carlo(returns, resamples, halt, DEFAULT_SEED if seed is None else seed)

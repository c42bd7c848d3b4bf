"""`pairpilot strategy check`'s analysis: is a strategy fit to trade (issue 18)?

Five checks on one candle series, each with a verdict:

- bad output: ``signals`` returns one ENTER / EXIT / HOLD code per candle, same index, no NaN
  or infinity (bot/research/signal_output.py), and leaves the candles it is given unchanged;
  checked on every run below as well;
- determinism: two runs here on equal copies of the candles give the same signals, and so does
  a run in each of two other processes (other hash seeds, their clocks over a day ahead:
  bot/research/check_processes.py);
- look-ahead: no signal changes when later candles are cut (bot/research/signal_stability.py:
  prefixes), and a live replay (bot/research/live_replay.py: the window a live tick hands the
  strategy, re-indexed from 0, through the method the engine calls) decides as the whole
  history on every candle it covers; a differing candle where the whole prefix differs too;
- warm-up: the same replay, a differing candle where the whole prefix agrees (the live window
  of ``strategy.history`` candles is too short), and history cut at its start; the number of
  candles it needs;
- cost: time per candle of one run over the whole series (reported, never failed).

Every run is on a fresh copy of the strategy object as given. The replay, prefixes and cuts run
in the two other processes (bot/research/check_worker.py), each computing the whole history
only after them, so a cache a strategy builds on one call cannot serve a later one. A warning
line names what the source reads that a strategy should not (bot/research/source_scan.py).

When output is bad or not deterministic, the later checks are not run (their verdict says so):
their comparisons would mean nothing. Too little data for the warm-up cuts is refused with
TooLittleData before anything runs; a strategy that decides fewer than ``MIN_DECISIONS`` times
on the data with Inconclusive (nothing could be checked: a pass would mean nothing).
"""

from __future__ import annotations

import copy
import secrets
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from bot.core.errors import DataError
from bot.research.check_processes import Workers
from bot.research.check_verdicts import Analysis, Verdict, action, candle, judged
from bot.research.check_version import check_version
from bot.research.check_worker import Job
from bot.research.live_replay import replay_rows
from bot.research.receipts import candle_hash, source_hash
from bot.research.signal_output import BadOutput, signal_codes
from bot.research.signal_stability import lowest_prefix, planned_cuts, planned_prefixes
from bot.research.source_scan import risky_reads
from strategies.base import HOLD, Strategy
from strategies.registry import strategy_registry

Codes = npt.NDArray[np.int8]

MIN_CANDLES = 200
MIN_DECISIONS = 20  # fewer ENTER / EXIT signals on the data: nothing could be checked
HISTORIES = 3  # the warm-up cuts need the data to hold this many live windows
CHECKS = ("bad output", "determinism", "look-ahead", "warm-up", "cost")


class TooLittleData(DataError):
    """The series is too short to check this strategy."""


class Inconclusive(TooLittleData):
    """The strategy decided too few times on the series for any check to mean something."""


@dataclass(frozen=True, slots=True)
class CheckReport:
    strategy: str
    params: dict[str, Any]
    verdicts: tuple[Verdict, ...]
    candles: int
    first_ms: int
    last_ms: int
    seconds: float  # the whole check
    warmup_needed: int | None  # measured; None when not run
    seconds_per_candle: float | None
    seed: int  # the random prefixes'
    coverage: str  # what the live replay covered ("" when not run)
    warnings: tuple[str, ...]  # what the source reads that it should not (source_scan)

    @property
    def passed(self) -> bool:
        return all(verdict.passed for verdict in self.verdicts)

    def failed(self) -> list[str]:
        return [verdict.check for verdict in self.verdicts if not verdict.passed]

    def record(self) -> dict[str, Any]:
        """What is stored beside the source hash: every verdict and figure, as JSON."""
        return {
            "strategy": self.strategy,
            "params": self.params,
            "passed": self.passed,
            "verdicts": [
                {"check": v.check, "passed": v.passed, "detail": v.detail} for v in self.verdicts
            ],
            "candles": self.candles,
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
            "seconds": self.seconds,
            "warmup_needed": self.warmup_needed,
            "seconds_per_candle": self.seconds_per_candle,
            "seed": self.seed,
            "coverage": self.coverage,
            "warnings": list(self.warnings),
        }


def fingerprint(
    strategy: Strategy, pair: str, timeframe: str, candles: pd.DataFrame
) -> dict[str, str]:
    """What a stored check is kept under: the strategy's source hash (the one receipts use),
    the version of the check's own code, and which candles it ran on."""
    return {
        "source_hash": source_hash(strategy),
        "check_version": check_version(),
        "pair": pair,
        "timeframe": timeframe,
        "candle_hash": candle_hash(candles),
    }


def minimum_candles(strategy: Strategy) -> int:
    return max(MIN_CANDLES, HISTORIES * strategy.history)


def check_strategy(
    strategy: Strategy, candles: pd.DataFrame, seed: int | None = None
) -> CheckReport:
    """Run every check of the module's docstring on ``candles`` (a validated candle frame).
    ``seed``: the random prefixes' (drawn here when None; the report keeps it)."""
    needed = minimum_candles(strategy)
    if len(candles) < needed:
        raise TooLittleData(
            f"too little data to check {strategy.name}: {len(candles)} candles, it needs at "
            f"least {needed} ({HISTORIES} x its live history of {strategy.history} candles, "
            f"at least {MIN_CANDLES})"
        )
    seed = secrets.randbelow(2**31) if seed is None else seed
    began = time.perf_counter()
    pristine = copy.deepcopy(strategy)  # never run: every run is on a copy of it
    verdicts: list[Verdict] = []
    found = Analysis()
    decided = 0
    # the worker processes start first: they import while this one runs the whole history
    with Workers(pristine, strategy_registry().recipe) as workers:
        try:
            given = candles.copy(deep=True)
            whole, first_run = _timed(copy.deepcopy(pristine), given)
            _unchanged(given, candles)
            again, second_run = _timed(copy.deepcopy(pristine), candles.copy(deep=True))
            found.per_candle = min(first_run, second_run) / len(candles)
            decided = int(np.count_nonzero(whole != HOLD))
            differs = np.flatnonzero(whole != again)
            if len(differs):
                verdicts = [_passed("bad output", "one action per candle, on every run")]
                verdicts.append(_nondeterministic(candles, whole, again, int(differs[0])))
            else:
                findings = workers.run(_jobs(pristine, candles, whole, seed))
                verdicts = judged(pristine, candles, whole, findings, found)
        except BadOutput as error:
            verdicts = [Verdict("bad output", False, str(error))]
    if decided < MIN_DECISIONS and all(verdict.passed for verdict in verdicts):
        raise Inconclusive(
            f"inconclusive: {strategy.name} decided {decided} times on this data (at least "
            f"{MIN_DECISIONS} needed); nothing was checked: check it on more, or livelier, "
            "candles"
        )
    done = {verdict.check for verdict in verdicts}
    verdicts += [
        Verdict(check, False, f"not run: {verdicts[-1].check} failed")
        for check in CHECKS[:-1]
        if check not in done
    ]
    verdicts.append(_cost(found.per_candle, len(candles)))
    stamps = candles["timestamp"]
    return CheckReport(
        strategy.name,
        dict(strategy.params),
        tuple(verdicts),
        len(candles),
        int(stamps.iloc[0]),
        int(stamps.iloc[-1]),
        time.perf_counter() - began,
        found.warmup,
        found.per_candle,
        seed,
        found.coverage,
        tuple(risky_reads(strategy)),
    )


def _jobs(pristine: Strategy, candles: pd.DataFrame, whole: Codes, seed: int) -> list[Job]:
    """The work, in two shares (every other candle, prefix and cut)."""
    probe = copy.deepcopy(pristine)
    rows = replay_rows(len(candles), probe.history, whole)
    prefixes = planned_prefixes(whole, lowest_prefix(probe), len(candles), seed)
    cuts = planned_cuts(probe.history, whole)
    return [
        Job(pristine, candles, whole, tuple(rows[k::2]), tuple(prefixes[k::2]), tuple(cuts[k::2]))
        for k in range(2)
    ]


def _timed(strategy: Strategy, candles: pd.DataFrame) -> tuple[Codes, float]:
    began = time.perf_counter()
    codes = signal_codes(strategy, candles)
    return codes, time.perf_counter() - began


def _unchanged(given: pd.DataFrame, candles: pd.DataFrame) -> None:
    """BadOutput when ``signals`` changed the frame it was given: the live engine and the
    backtest share their candles with the rest of a run."""
    if given.equals(candles):
        return
    columns = [
        str(name)
        for name in given.columns.union(candles.columns)
        if name not in given or name not in candles or not given[name].equals(candles[name])
    ]
    raise BadOutput(f"signals changed the candles it was given (columns {', '.join(columns)})")


def _passed(check: str, detail: str) -> Verdict:
    return Verdict(check, True, detail)


def _nondeterministic(candles: pd.DataFrame, first: Codes, second: Codes, row: int) -> Verdict:
    return Verdict(
        "determinism",
        False,
        f"two runs on the same candles differ, first at {candle(candles, row)}: "
        f"{action(int(first[row]))} then {action(int(second[row]))} "
        "(randomness, the clock or state kept between runs?)",
    )


def _cost(per_candle: float | None, candles: int) -> Verdict:
    if per_candle is None:
        return _passed("cost", "not measured")
    return _passed(
        "cost",
        f"{per_candle * 1e6:.2f} us per candle ({per_candle * candles * 1e3:.1f} ms "
        f"for {candles} candles)",
    )

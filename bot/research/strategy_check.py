"""`pairpilot strategy check`'s analysis: is a strategy fit to trade (issue 18)?

Five checks on one candle series, each with a verdict:

- bad output: ``signals`` returns one ENTER / EXIT / HOLD code per candle, same index, no NaN
  or infinity (bot/research/signal_output.py), and leaves the candles it is given unchanged;
  checked on every run below as well;
- determinism: two runs on equal copies of the candles give the same signals;
- look-ahead: no signal changes when later candles are cut (bot/research/signal_stability.py
  says which prefixes are recomputed and what could slip through);
- warm-up: the live window (``strategy.history`` candles) is long enough for every signal to
  equal the backtest's; when not, the number of candles it needs;
- cost: time per candle of one run over the whole series (reported, never failed).

When output is bad or not deterministic, the later checks are not run (their verdict says so):
their comparisons would mean nothing. Too little data for the warm-up cuts is refused with
TooLittleData before anything runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from bot.core.domain import from_ms
from bot.core.errors import DataError
from bot.research.receipts import candle_hash, source_hash
from bot.research.signal_output import BadOutput, signal_codes
from bot.research.signal_stability import Difference, first_lookahead, warmup_needed
from strategies.base import ENTER, EXIT, Strategy

Codes = npt.NDArray[np.int8]

MIN_CANDLES = 200
HISTORIES = 3  # the warm-up cuts need the data to hold this many live windows
CHECKS = ("bad output", "determinism", "look-ahead", "warm-up", "cost")
_ACTION = {ENTER: "enter", EXIT: "exit"}


class TooLittleData(DataError):
    """The series is too short to check this strategy."""


@dataclass(frozen=True, slots=True)
class Verdict:
    check: str  # one of CHECKS
    passed: bool
    detail: str


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
        }


def fingerprint(
    strategy: Strategy, pair: str, timeframe: str, candles: pd.DataFrame
) -> dict[str, str]:
    """What a stored check is kept under: the strategy's source hash (the one receipts use),
    and which candles it ran on."""
    return {
        "source_hash": source_hash(strategy),
        "pair": pair,
        "timeframe": timeframe,
        "candle_hash": candle_hash(candles),
    }


def minimum_candles(strategy: Strategy) -> int:
    return max(MIN_CANDLES, HISTORIES * strategy.history)


def check_strategy(strategy: Strategy, candles: pd.DataFrame, seed: int = 0) -> CheckReport:
    """Run every check of the module's docstring on ``candles`` (a validated candle frame)."""
    needed = minimum_candles(strategy)
    if len(candles) < needed:
        raise TooLittleData(
            f"too little data to check {strategy.name}: {len(candles)} candles, it needs at "
            f"least {needed} ({HISTORIES} x its live history of {strategy.history} candles, "
            f"at least {MIN_CANDLES})"
        )
    began = time.perf_counter()
    verdicts: list[Verdict] = []
    warmup: int | None = None
    per_candle: float | None = None
    try:
        given = candles.copy(deep=True)
        whole, first_run = _timed(strategy, given)
        _unchanged(given, candles)
        again, second_run = _timed(strategy, candles.copy(deep=True))
        per_candle = min(first_run, second_run) / len(candles)
        verdicts.append(_passed("bad output", "one action per candle, on every run"))
        differs = np.flatnonzero(whole != again)
        if len(differs):
            verdicts.append(_nondeterministic(candles, whole, again, int(differs[0])))
        else:
            verdicts.append(_passed("determinism", "two runs give the same signals"))
            verdicts.append(_lookahead(strategy, candles, whole, seed))
            warmup = warmup_needed(strategy, candles, whole)
            verdicts.append(_warmup(strategy, warmup))
    except BadOutput as error:
        verdicts = [Verdict("bad output", False, str(error))]
        warmup = None
    done = {verdict.check for verdict in verdicts}
    verdicts += [
        Verdict(check, False, f"not run: {verdicts[-1].check} failed")
        for check in CHECKS[:-1]
        if check not in done
    ]
    verdicts.append(_cost(per_candle, len(candles)))
    stamps = candles["timestamp"]
    return CheckReport(
        strategy.name,
        dict(strategy.params),
        tuple(verdicts),
        len(candles),
        int(stamps.iloc[0]),
        int(stamps.iloc[-1]),
        time.perf_counter() - began,
        warmup,
        per_candle,
    )


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
        f"two runs on the same candles differ, first at {_candle(candles, row)}: "
        f"{_action(int(first[row]))} then {_action(int(second[row]))} "
        "(randomness, the clock or state kept between runs?)",
    )


def _lookahead(strategy: Strategy, candles: pd.DataFrame, whole: Codes, seed: int) -> Verdict:
    found = first_lookahead(strategy, candles, whole, seed)
    if found.difference is None:
        return _passed("look-ahead", f"{found.prefixes} prefixes recomputed, no signal changed")
    return Verdict("look-ahead", False, _peeked(candles, found.difference))


def _peeked(candles: pd.DataFrame, difference: Difference) -> str:
    return (
        f"the signal at {_candle(candles, difference.candle)} is "
        f"{_action(difference.with_whole)} on the whole history but "
        f"{_action(difference.with_prefix)} on the first {difference.prefix} candles: "
        "the strategy reads candles after the one it decides on"
    )


def _warmup(strategy: Strategy, needed: int) -> Verdict:
    declared = strategy.history
    if needed <= declared:
        return _passed("warm-up", f"{needed} candles seen needed, {declared} declared")
    return Verdict(
        "warm-up",
        False,
        f"declared warm-up too short: it needs at least {needed} candles of history, it "
        f"declares {declared} (warmup {strategy.warmup}): raise warmup (or history) to {needed}",
    )


def _cost(per_candle: float | None, candles: int) -> Verdict:
    if per_candle is None:
        return _passed("cost", "not measured")
    return _passed(
        "cost",
        f"{per_candle * 1e6:.2f} us per candle ({per_candle * candles * 1e3:.1f} ms "
        f"for {candles} candles)",
    )


def _candle(candles: pd.DataFrame, row: int) -> str:
    moment = from_ms(int(candles["timestamp"].iloc[row]))
    return f"candle {row} ({moment:%Y-%m-%d %H:%M} UTC)"


def _action(code: int) -> str:
    return _ACTION.get(code, "hold")

"""The strategy check's verdicts on determinism, look-ahead and warm-up, from what the two
processes of bot/research/check_worker.py found (issue 18), with the words that name a candle
and an action."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from bot.core.domain import from_ms
from bot.research.check_worker import Findings
from bot.research.live_replay import RECENT, STRIDE, Mismatch
from bot.research.signal_output import BadOutput
from bot.research.signal_stability import Difference
from strategies.base import ENTER, EXIT, Strategy

Codes = npt.NDArray[np.int8]
_ACTION = {ENTER: "enter", EXIT: "exit"}


@dataclass(frozen=True, slots=True)
class Verdict:
    check: str  # one of strategy_check.CHECKS
    passed: bool
    detail: str


@dataclass(slots=True)
class Analysis:
    """Figures gathered on the way: the warm-up measured, the time per candle, what the live
    replay covered."""

    warmup: int | None = None
    per_candle: float | None = None
    coverage: str = ""


def judged(
    strategy: Strategy,
    candles: pd.DataFrame,
    whole: Codes,
    findings: Sequence[Findings],
    found: Analysis,
) -> list[Verdict]:
    """Bad output (passed, unless a run in a worker was bad), determinism, then look-ahead and
    warm-up; ``found`` gets the warm-up measured and the replay's coverage."""
    for finding in findings:
        if finding.bad:
            raise BadOutput(finding.bad)
    verdicts = [Verdict("bad output", True, "one action per candle, on every run")]
    for finding in findings:
        if finding.crashed:
            detail = f"the strategy did not run in {finding.place}: {finding.crashed}"
            return [*verdicts, Verdict("determinism", False, detail)]
        assert finding.whole is not None
        differs = np.flatnonzero(finding.whole != whole)
        if len(differs):
            return [*verdicts, _elsewhere(candles, whole, finding, int(differs[0]))]
    places = "; ".join(sorted({finding.place for finding in findings}))
    verdicts.append(
        Verdict("determinism", True, f"two runs here and one in {places} give the same signals")
    )
    replayed = sum(f.replay.replayed for f in findings if f.replay)
    ticks = max(0, len(candles) - strategy.history + 1)
    found.coverage = f"live replay: {replayed:,} of {ticks:,} candles"
    mismatches = sorted(
        (m for f in findings if f.replay for m in f.replay.attributed), key=lambda m: m.row
    )
    verdicts.append(_lookahead(candles, findings, mismatches, found.coverage))
    needed = max([f.warmup or 0 for f in findings] + [m.needs or 0 for m in mismatches])
    found.warmup = needed
    differing = sum(f.replay.differing for f in findings if f.replay)
    verdicts.append(_warmup(strategy, candles, needed, mismatches, differing, replayed))
    return verdicts


def _elsewhere(candles: pd.DataFrame, whole: Codes, finding: Findings, row: int) -> Verdict:
    assert finding.whole is not None
    return Verdict(
        "determinism",
        False,
        f"a run in {finding.place} differs from this one, first at {candle(candles, row)}: "
        f"{action(int(whole[row]))} here, {action(int(finding.whole[row]))} there "
        "(set order, the clock, randomness, the environment?)",
    )


def _lookahead(
    candles: pd.DataFrame,
    findings: Sequence[Findings],
    mismatches: Sequence[Mismatch],
    coverage: str,
) -> Verdict:
    differences = [f.lookahead.difference for f in findings if f.lookahead]
    prefix = min((d for d in differences if d), key=lambda d: d.candle, default=None)
    live = next((m for m in mismatches if m.cause == "look-ahead"), None)
    prefixes = sum(f.lookahead.prefixes for f in findings if f.lookahead)
    if prefix is None and live is None:
        return Verdict(
            "look-ahead",
            True,
            f"{prefixes} prefixes recomputed, no signal changed; {coverage} "
            f"(the last {RECENT:,}, every signal, every {STRIDE}th), each as the whole history",
        )
    if live is not None and (prefix is None or live.row < prefix.candle):
        return Verdict(
            "look-ahead",
            False,
            f"the signal at {candle(candles, live.row)} is {action(live.whole)} on the whole "
            f"history but {action(live.live)} live and on the candles up to it: the strategy "
            "reads candles after the one it decides on",
        )
    assert prefix is not None
    return Verdict("look-ahead", False, _peeked(candles, prefix))


def _peeked(candles: pd.DataFrame, difference: Difference) -> str:
    return (
        f"the signal at {candle(candles, difference.candle)} is "
        f"{action(difference.with_whole)} on the whole history but "
        f"{action(difference.with_prefix)} on the first {difference.prefix} candles: "
        "the strategy reads candles after the one it decides on"
    )


def _warmup(
    strategy: Strategy,
    candles: pd.DataFrame,
    needed: int,
    mismatches: Sequence[Mismatch],
    differing: int,
    replayed: int,
) -> Verdict:
    declared = strategy.history
    late = next((m for m in mismatches if m.cause == "warm-up"), None)
    if needed <= declared and late is None:
        return Verdict("warm-up", True, f"{needed} candles seen needed, {declared} declared")
    needed = max(needed, declared + 1)
    live = (
        f"; live ticks decide otherwise than the backtest on {differing} of {replayed} "
        f"candles replayed, first at {candle(candles, late.row)} (needs more than {declared})"
        if late
        else ""
    )
    return Verdict(
        "warm-up",
        False,
        f"declared warm-up too short: it needs at least {needed} candles of history, it "
        f"declares {declared} (warmup {strategy.warmup}): raise warmup (or history) to "
        f"{needed}{live}",
    )


def candle(candles: pd.DataFrame, row: int) -> str:
    moment = from_ms(int(candles["timestamp"].iloc[row]))
    return f"candle {row} ({moment:%Y-%m-%d %H:%M} UTC)"


def action(code: int) -> str:
    return _ACTION.get(code, "hold")

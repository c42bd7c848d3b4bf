"""One share of the strategy check's work, done in a process of its own (issue 18).

The check (bot/research/strategy_check.py) computes the whole history's signals, then hands
each of two fresh processes (bot/research/check_processes.py) a ``Job``: candles to replay
live, prefixes to recompute, cuts to compare. A process does them, every run on a fresh copy
of the strategy object, and only then computes the whole history itself (its ``whole``, for
determinism): a cache the strategy builds on one call can serve no later one with the whole
history's values, and the process runs under its own hash seed and clock.

``python -m bot.research.check_worker`` reads, pickled on stdin, the parent's ``sys.path``, the
strategy registry's recipe and a clock shift, then the ``Job``; writes the pickled
``Findings`` on stdout (what the strategy prints goes to stderr).
"""

from __future__ import annotations

import copy
import pickle
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from bot.core.clock import shift_process_clock
from bot.research.live_replay import Replay, replay
from bot.research.signal_output import BadOutput, signal_codes
from bot.research.signal_stability import LookAhead, first_lookahead, warmup_needed
from strategies.base import Strategy

Codes = npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class Job:
    strategy: Strategy  # as given, never run: each run copies it
    candles: pd.DataFrame
    whole: Codes  # the whole history's signals, computed by the check
    rows: tuple[int, ...]  # candles to replay live
    prefixes: tuple[int, ...]
    cuts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Findings:
    replay: Replay | None
    lookahead: LookAhead | None
    warmup: int | None
    whole: Codes | None  # this process's own run on the whole history, computed last
    bad: str | None = None  # BadOutput on one of the runs: what was wrong
    place: str = "this process"
    crashed: str | None = None  # the process itself failed (the strategy did not load there)


def examine(job: Job, place: str = "this process") -> Findings:
    """Do ``job`` (module doc)."""

    def make() -> Strategy:
        return copy.deepcopy(job.strategy)

    try:
        replayed = replay(make, job.candles, job.whole, job.rows)
        lookahead = first_lookahead(make, job.candles, job.whole, job.prefixes)
        warmup = warmup_needed(make, job.candles, job.whole, job.cuts)
        whole = signal_codes(make(), job.candles.copy(deep=True))
    except BadOutput as error:
        return Findings(None, None, None, None, str(error), place)
    return Findings(replayed, lookahead, warmup, whole, None, place)


def main() -> None:
    from strategies.registry import install

    given, answer = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # the strategy's prints must not mix with the findings
    paths, recipe, shift, place = pickle.load(given)  # noqa: S301  (from the check)
    sys.path[:0] = [path for path in paths if path not in sys.path]
    if recipe is not None:
        install(recipe())  # user strategies load here as they do in the service
    shift_process_clock(shift)
    job: Any = pickle.load(given)  # noqa: S301  (from the check)
    answer.write(pickle.dumps(examine(job, place)))
    answer.flush()


if __name__ == "__main__":
    # By its importable name: what it pickles must be bot.research.check_worker's, not __main__'s.
    from bot.research.check_worker import main as by_name

    by_name()

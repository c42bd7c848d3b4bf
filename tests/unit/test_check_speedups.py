"""The strategy check's speed-ups change nothing it proves (session 24): the plain-output fast
path of ``signal_codes`` accepts exactly what ``output_problems`` accepts among its outputs and
names a problem in the same words, and the worker processes started before the check's own
runs are ended when the check needs no job of them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from bot.research.check_processes import Workers
from bot.research.signal_output import BadOutput, signal_codes
from bot.research.strategy_check import check_strategy
from strategies import build_strategy
from strategies.base import ParamSpec, Strategy
from strategies.output import output_problems
from tests.strategy_fixtures import garbage

ROWS = 8


class Returns(Strategy):
    """Returns whatever ``OUTPUT`` holds (a test sets it): signals are not touched by the
    warm-up rule (warmup 1)."""

    name = "returns_output"
    description = "a test fixture"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()
    OUTPUT: ClassVar[Any] = None

    @property
    def warmup(self) -> int:
        return 1

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        output: pd.Series = type(self).OUTPUT
        return output


def _outputs() -> list[Any]:
    codes = [1, 0, -1, 0, 0, 1, -1, 0]
    index = pd.RangeIndex(ROWS)
    return [
        pd.Series(codes, dtype=np.int8),
        pd.Series(codes, dtype=np.int64),
        pd.Series(codes, dtype=np.float64),
        pd.Series([True, False] * 4),
        pd.Series([0, 0, 2, 0, 0, 0, 0, 0], dtype=np.int8),
        pd.Series([0, 0, 255, 0, 0, 0, 0, 1], dtype=np.uint8),
        pd.Series([-2, 0, 0, 0, 0, 0, 0, 0], dtype=np.int64),
        pd.Series(codes, dtype=np.int8, index=pd.RangeIndex(1, ROWS + 1)),
        pd.Series(codes, dtype=np.int8).iloc[::-1],
        pd.Series(codes[:-1], dtype=np.int8),
        pd.Series([1, None, 0, 0, 0, 0, 0, 0], dtype="Int8"),
        pd.Series(codes, dtype="Int8"),
        pd.Series([0.0, np.inf, 0, 0, 0, 0, 0, 0]),
        pd.Series(["0"] * ROWS),
        np.zeros(ROWS, dtype=np.int8),
        pd.Series([], dtype=np.int8, index=pd.RangeIndex(0)),
        pd.Series(codes, dtype=np.int8, index=index),
    ]


@pytest.mark.parametrize("output", _outputs(), ids=lambda output: repr(output)[:40])
def test_signal_codes_accepts_and_words_what_output_problems_does(output: Any) -> None:
    candles = pd.DataFrame({"close": np.arange(ROWS, dtype=np.float64)})
    Returns.OUTPUT = output
    problems = output_problems(output, candles)
    for live in (False, True):
        if problems:
            with pytest.raises(BadOutput) as raised:
                signal_codes(Returns(), candles, live=live)
            assert str(raised.value) == "; ".join(problems)
        else:
            codes = signal_codes(Returns(), candles, live=live)
            assert codes.dtype == np.int8
            np.testing.assert_array_equal(codes, output.to_numpy().astype(np.int8))


def _children() -> set[int]:
    """This process's living children (Linux: /proc), zombies (not reaped) included."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended while read
            continue
        if int(fields[1]) == os.getpid():
            found.add(int(stat.parent.name))
    return found


def test_workers_started_early_are_ended_when_the_check_needs_no_job(
    btc_candles: pd.DataFrame,
) -> None:
    """A bad output in the check's own first run: the workers, started before it, are ended
    and reaped (no process left behind), and the verdict is the check's own."""
    before = _children()
    report = check_strategy(garbage("nan"), btc_candles)
    assert "bad output" in report.failed()
    assert _children() == before


def test_workers_left_unused_are_ended_on_leaving() -> None:
    before = _children()
    with Workers(build_strategy("sma_cross"), None):
        started = _children() - before
        assert len(started) == 2, started
    assert _children() == before

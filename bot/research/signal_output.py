"""Running a strategy's ``signals`` once and saying what is wrong with what it returned.

The strategy check (bot/research/strategy_check.py) runs user code many times; every run goes
through ``signal_codes``, so an exception or a malformed series is named the same way wherever
it happens: wrong type, wrong length, an index not the candles', NaN or infinite values, values
outside ENTER / EXIT / HOLD (strategies/output.py, which live trading names them with too).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from strategies.base import ENTER, EXIT, Strategy
from strategies.output import last_line, output_problems


class BadOutput(Exception):
    """The strategy raised, or returned something that is not one code per candle."""


def signal_codes(
    strategy: Strategy, candles: pd.DataFrame, live: bool = False
) -> npt.NDArray[np.int8]:
    """``strategy.signals(candles)`` as int8 codes; BadOutput naming what is wrong. ``live``:
    through ``remembered_signals``, the method the live engine calls on a tick's candles
    (bot/trading/engine.py ``signal_from_candles``)."""
    try:
        output = strategy.remembered_signals(candles) if live else strategy.signals(candles)
    except Exception as error:  # user code: any exception is a finding, not a crash
        raise BadOutput(_raised(strategy, candles, error)) from error
    codes = _plain_codes(output, candles)
    if codes is not None:
        return codes
    problems = output_problems(output, candles)
    if problems:
        raise BadOutput("; ".join(problems))
    assert isinstance(output, pd.Series)
    return output.to_numpy().astype(np.int8)


def _plain_codes(output: object, candles: pd.DataFrame) -> npt.NDArray[np.int8] | None:
    """``output`` as codes when it is plainly right, else None: a Series of numpy integers,
    one per candle on the candles' index, each ENTER, EXIT or HOLD (what ``signal_series``
    returns). Exactly the outputs ``output_problems`` finds nothing wrong with among integer
    ones, at a quarter of its cost (no float conversion, no ``isin``): the live replay asks
    thousands of times per check. Anything else goes to ``output_problems``, which names what
    is wrong (or passes floats and booleans that hold the codes)."""
    if not isinstance(output, pd.Series) or len(output) != len(candles):
        return None
    dtype = output.dtype
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iu":
        return None
    values = output.to_numpy()
    if len(values) and (values.min() < EXIT or values.max() > ENTER):
        return None
    if not output.index.equals(candles.index):
        return None
    return values.astype(np.int8)


def _raised(strategy: Strategy, candles: pd.DataFrame, error: Exception) -> str:
    """What went wrong when ``signals`` raised: the exception's last line, or, when
    ``compute_signals`` returned something the warm-up rule could not handle (a list, an
    array), what was wrong with it."""
    try:
        problems = output_problems(strategy.compute_signals(candles), candles)
    except Exception:  # it raised again: report the first exception
        problems = []
    if problems:
        return "; ".join(problems)
    return f"signals raised {last_line(error)}"

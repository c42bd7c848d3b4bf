"""Running a strategy's ``signals`` once and saying what is wrong with what it returned.

The strategy check (bot/research/strategy_check.py) runs user code many times; every run goes
through ``signal_codes``, so an exception or a malformed series is named the same way wherever
it happens: wrong type, wrong length, an index not the candles', NaN or infinite values, values
outside ENTER / EXIT / HOLD.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from strategies.base import ENTER, EXIT, HOLD, Strategy

ALLOWED = (EXIT, HOLD, ENTER)


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
    problems = output_problems(output, candles)
    if problems:
        raise BadOutput("; ".join(problems))
    assert isinstance(output, pd.Series)
    return output.to_numpy().astype(np.int8)


def output_problems(output: object, candles: pd.DataFrame) -> list[str]:
    """Every way ``output`` fails to be one ENTER / EXIT / HOLD code per candle of ``candles``."""
    if not isinstance(output, pd.Series):
        return [f"signals returned a {type(output).__name__}, not a pandas Series"]
    if len(output) != len(candles):
        return [f"wrong length: {len(output)} signals for {len(candles)} candles"]
    problems = []
    if not output.index.equals(candles.index):
        problems.append("index mismatch: the signals' index is not the candles' index")
    try:
        values = output.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        return [*problems, f"values are not numbers (dtype {output.dtype})"]
    nan = np.isnan(values)
    if nan.any():
        problems.append(f"NaN action at candle {int(np.argmax(nan))} ({int(nan.sum())} in all)")
    inf = np.isinf(values)
    if inf.any():
        problems.append(f"infinite action at candle {int(np.argmax(inf))}")
    outside = np.isfinite(values) & ~np.isin(values, ALLOWED)
    if outside.any():
        first = int(np.argmax(outside))
        problems.append(
            f"value {values[first]:g} at candle {first} is not an action "
            f"(allowed: {ENTER} enter, {EXIT} exit, {HOLD} hold)"
        )
    return problems


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
    last = str(error).strip().splitlines()[-1:] or [""]
    return f"signals raised {type(error).__name__}: {last[0]}"

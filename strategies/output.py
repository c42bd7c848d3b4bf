"""What is wrong with a strategy's output, and how its exception is shown: one wording for the
strategy check (bot/research/signal_output.py) and live trading (bot/trading/strategy_calls.py).

A strategy's ``signals`` must be a pandas Series of one ENTER / EXIT / HOLD code per candle, on
the candles' index: anything else (wrong type, wrong length, an index not the candles', NaN or
infinite values, values outside the codes) is named here. An exception in its code is shown as
its type and the last line of its message, never a traceback.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from strategies.base import ENTER, EXIT, HOLD

ALLOWED = (EXIT, HOLD, ENTER)


def output_problems(
    output: object, candles: pd.DataFrame, *, acted_on: int | None = None
) -> list[str]:
    """Every way ``output`` fails to be one ENTER / EXIT / HOLD code per candle of ``candles``;
    with ``acted_on`` (a position), only that candle's value is looked at (live trading acts on
    the last candle alone), its shape and index still in full."""
    if not isinstance(output, pd.Series):
        return [f"signals returned a {type(output).__name__}, not a pandas Series"]
    if len(output) != len(candles):
        return [f"wrong length: {len(output)} signals for {len(candles)} candles"]
    problems = []
    if not output.index.equals(candles.index):
        problems.append("index mismatch: the signals' index is not the candles' index")
    start = 0 if acted_on is None else acted_on
    looked_at = output if acted_on is None else output.iloc[acted_on : acted_on + 1]
    try:
        values = looked_at.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        return [*problems, f"values are not numbers (dtype {output.dtype})"]
    nan = np.isnan(values)
    if nan.any():
        first = start + int(np.argmax(nan))
        problems.append(f"NaN action at candle {first} ({int(nan.sum())} in all)")
    inf = np.isinf(values)
    if inf.any():
        problems.append(f"infinite action at candle {start + int(np.argmax(inf))}")
    outside = np.isfinite(values) & ~np.isin(values, ALLOWED)
    if outside.any():
        first = int(np.argmax(outside))
        problems.append(
            f"value {values[first]:g} at candle {start + first} is not an action "
            f"(allowed: {ENTER} enter, {EXIT} exit, {HOLD} hold)"
        )
    return problems


REASON_LIMIT = 300  # characters of an exception's line kept: it goes to alerts, /pairs, the log


def last_line(error: BaseException) -> str:
    """``error`` as its type and the last line of its message (``KeyError: 'vwap'``): what a
    person is shown of an exception in user code, never its traceback. It never raises (a
    message whose ``str()`` raises anything, a BaseException included, is ``<unprintable>``)
    and is cut at REASON_LIMIT characters: a message may be a whole frame's repr, and it is
    shown in every chat reply that names the fault."""
    try:
        message = str.__str__(str(error))  # a plain str: a subclass's methods are user code
    except BaseException:  # the user's __str__: any failure means there is no message to show
        message = "<unprintable>"
    last = message.strip().splitlines()[-1:] or [""]
    line = f"{type(error).__name__}: {last[0]}"
    if len(line) <= REASON_LIMIT:
        return line
    return f"{line[: REASON_LIMIT - 1]}… ({len(line):,} characters)"

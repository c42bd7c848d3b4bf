"""Candle files in our CSV format, and the replay source that hands out closed candles only.

The format is the one in the shared data folder: gzip (or plain) CSV with the header
``timestamp,open,high,low,close,volume``; ``timestamp`` is the candle's open time in
milliseconds since the epoch (UTC).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from bot.core.domain import from_ms, to_ms
from bot.core.errors import DataError, NotFound, UserInputError
from bot.core.timeframes import timeframe_name, timeframe_seconds

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
_DTYPES = {"timestamp": "int64", **{column: "float64" for column in COLUMNS[1:]}}
_FILE_NAME = re.compile(r"^([A-Z0-9]+)_([A-Z0-9]+)-([0-9]+[mhdw])\.csv(\.gz)?$")


def read_candle_file(path: Path) -> pd.DataFrame:
    """Load and validate a candle file; raises DataError naming the first problem found."""
    if not path.is_file():
        raise DataError(f"candle file {path} does not exist")
    try:  # the fast path: a well-formed file parses straight into numbers
        frame = pd.read_csv(path, dtype=_DTYPES, keep_default_na=False)
        if tuple(frame.columns) == COLUMNS:
            return validate_candles(frame, str(path))
    except (ValueError, OverflowError, pd.errors.ParserError):
        pass  # read it again as text to say exactly which value is wrong
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise DataError(f"candle file {path} cannot be read as CSV: {error}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"candle file {path} is empty") from None
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, EOFError) as error:
        raise DataError(f"candle file {path} cannot be read as CSV: {error}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"candle file {path} is empty") from None
    if tuple(frame.columns) != COLUMNS:
        raise DataError(
            f"candle file {path} has header {','.join(map(str, frame.columns))!r}; "
            f"expected {','.join(COLUMNS)!r}"
        )
    return validate_candles(_to_numbers(frame, path), str(path))


def _to_numbers(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    result = pd.DataFrame(index=frame.index)
    for column in COLUMNS:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = numbers.isna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise DataError(
                f"candle file {path} line {row + 2}: {column} {frame[column].iloc[row]!r} "
                "is not a number"
            )
        result[column] = numbers
    if not (result["timestamp"] == result["timestamp"].round()).all():
        raise DataError(f"candle file {path}: timestamps must be whole milliseconds")
    result["timestamp"] = result["timestamp"].astype(np.int64)
    return result


def validate_candles(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Check order, uniqueness and price sanity; returns the frame unchanged."""
    if frame.empty:
        raise DataError(f"{origin} holds no candles")
    stamps = frame["timestamp"].to_numpy()
    steps = np.diff(stamps)
    if (steps == 0).any():
        row = int(np.argmax(steps == 0)) + 1
        raise DataError(f"{origin}: duplicated timestamp {_iso(stamps[row])} (row {row + 1})")
    if (steps < 0).any():
        row = int(np.argmax(steps < 0)) + 1
        raise DataError(
            f"{origin}: timestamps are not sorted: {_iso(stamps[row])} (row {row + 1}) "
            f"comes after {_iso(stamps[row - 1])}"
        )
    for column in PRICE_COLUMNS:
        prices = frame[column].to_numpy()
        bad = ~(prices > 0) | ~np.isfinite(prices)  # NaN fails both
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{origin}: candle {_iso(stamps[row])} has a missing or non-positive {column}"
            )
    if (frame["volume"].to_numpy() < 0).any():
        row = int(np.argmax(frame["volume"].to_numpy() < 0))
        raise DataError(f"{origin}: candle {_iso(stamps[row])} has a negative volume")
    high, low = frame["high"].to_numpy(), frame["low"].to_numpy()
    body_high = np.maximum(frame["open"].to_numpy(), frame["close"].to_numpy())
    body_low = np.minimum(frame["open"].to_numpy(), frame["close"].to_numpy())
    inconsistent = (high < body_high) | (low > body_low)
    if inconsistent.any():
        row = int(np.argmax(inconsistent))
        raise DataError(f"{origin}: candle {_iso(stamps[row])} has high/low outside open/close")
    return frame.reset_index(drop=True)


def describe_file_name(path: Path) -> tuple[str, str] | None:
    """(pair, timeframe) from a name like ``BTC_USDT-1h.csv.gz``, or None."""
    match = _FILE_NAME.match(path.name)
    if not match:
        return None
    return f"{match.group(1)}/{match.group(2)}", match.group(3)


def pair_of(path: Path, given: str | None) -> str:
    """The pair a candle file holds: the one given, else the one its name says."""
    named = describe_file_name(path)
    if given:
        return given
    if named:
        return named[0]
    raise UserInputError(f"cannot tell the pair from {path.name}; pass --pair BASE/QUOTE")


def timeframe_of(path: Path, given: str | None, frame: pd.DataFrame) -> str:
    """The timeframe of a candle file: given, else from its name, else its candles' step;
    checked against the candles' open times."""
    named = describe_file_name(path)
    timeframe = given or (named[1] if named else infer_timeframe(frame))
    check_alignment(frame, timeframe, str(path))
    return timeframe


def infer_timeframe(frame: pd.DataFrame) -> str:
    """The most common step between candles, as a timeframe name."""
    if len(frame) < 2:
        raise DataError("cannot infer a timeframe from fewer than two candles; pass --timeframe")
    steps = np.diff(frame["timestamp"].to_numpy()) // 1000
    values, counts = np.unique(steps, return_counts=True)
    return timeframe_name(int(values[np.argmax(counts)]))


def check_alignment(frame: pd.DataFrame, timeframe: str, origin: str) -> None:
    """Every candle must open on a multiple of the timeframe."""
    step_ms = timeframe_seconds(timeframe) * 1000
    misaligned = frame["timestamp"].to_numpy() % step_ms != 0
    if misaligned.any():
        row = int(np.argmax(misaligned))
        raise DataError(
            f"{origin}: candle {_iso(int(frame['timestamp'].iloc[row]))} does not start on a "
            f"{timeframe} boundary"
        )


def _iso(milliseconds: int) -> str:
    return from_ms(int(milliseconds)).strftime("%Y-%m-%dT%H:%MZ")


class ReplaySource:
    """Replays candle frames against a clock: a candle is handed out once its close has passed."""

    def __init__(self, frames: Mapping[str, pd.DataFrame], timeframes: Mapping[str, str]) -> None:
        self._frames = dict(frames)
        self._step_ms = {pair: timeframe_seconds(tf) * 1000 for pair, tf in timeframes.items()}
        self._stamps = {pair: frame["timestamp"].to_numpy() for pair, frame in frames.items()}

    def check_pair(self, pair: str) -> None:
        if pair not in self._frames:
            close = difflib.get_close_matches(pair, list(self._frames), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise NotFound(f"{pair} has no replay data (replaying {', '.join(self._frames)}){hint}")

    def check_timeframe(self, pair: str, timeframe: str) -> None:
        self.check_pair(pair)
        if timeframe_seconds(timeframe) * 1000 != self._step_ms[pair]:
            offered = timeframe_name(self._step_ms[pair] // 1000)
            raise UserInputError(f"{pair} replays {offered} candles, not {timeframe}")

    def first_open(self, pair: str) -> datetime:
        return from_ms(int(self._stamps_for(pair)[0]))

    def last_close(self, pair: str) -> datetime:
        return from_ms(int(self._stamps_for(pair)[-1]) + self._step_ms[pair])

    async def closed_candles(
        self, pair: str, now: datetime, limit: int, timeframe: str | None = None
    ) -> pd.DataFrame:
        """Up to ``limit`` most recent candles whose close time is at or before ``now``
        (a replay has one timeframe per pair; ``timeframe`` is checked against it)."""
        if timeframe is not None:
            self.check_timeframe(pair, timeframe)
        stamps = self._stamps_for(pair)
        cutoff = to_ms(now) - self._step_ms[pair]  # opened at or before this: closed
        end = int(np.searchsorted(stamps, cutoff, side="right"))
        return self._frames[pair].iloc[max(0, end - limit) : end]

    async def price(self, pair: str, now: datetime) -> float:
        """The price at ``now``: the open of the candle forming then (the next candle's open);
        inside a gap of this pair's data, the first open after it (where trading resumed)."""
        index = self._trading(pair, now)  # first: an unknown pair is NotFound, not KeyError
        return float(self._frames[pair]["open"].iloc[index])

    async def fill_time(self, pair: str, now: datetime) -> datetime:
        """``now``, or inside a gap of this pair's data the open of its first candle after it:
        an order there fills at that open's price, and at that time (review F4)."""
        resumed = from_ms(int(self._stamps_for(pair)[self._trading(pair, now)]))
        return max(now, resumed)

    async def candle_after(self, pair: str, since: datetime, now: datetime) -> pd.Series | None:
        stamps = self._stamps_for(pair)
        index = int(np.searchsorted(stamps, to_ms(since), side="left"))
        if index >= len(stamps) or stamps[index] + self._step_ms[pair] > to_ms(now):
            return None
        return self._frames[pair].iloc[index]

    def trading_resumes(self, now: datetime) -> datetime:
        """``now`` if some pair has a candle forming then; else, inside a gap every pair's
        data shares (an exchange outage), the open of the first candle after it."""
        later = []
        for pair, stamps in self._stamps.items():
            index = int(np.searchsorted(stamps, to_ms(now), side="right")) - 1
            if index >= 0 and to_ms(now) < stamps[index] + self._step_ms[pair]:
                return now
            if index + 1 < len(stamps):
                later.append(int(stamps[index + 1]))
        return from_ms(min(later)) if later else now

    async def volume(self, pair: str, now: datetime) -> float | None:
        """The volume of the candle forming at ``now``, which an order then trades into."""
        index = self._trading(pair, now)
        return float(self._frames[pair]["volume"].iloc[index])

    def _trading(self, pair: str, now: datetime) -> int:
        """The candle an order at ``now`` trades in: the one forming, or after a gap in this
        pair's data (another pair's candles may still be forming) the first one after it."""
        stamps = self._stamps_for(pair)
        index = int(np.searchsorted(stamps, to_ms(now), side="right")) - 1
        in_gap = 0 <= index < len(stamps) - 1 and to_ms(now) >= stamps[index] + self._step_ms[pair]
        return index + 1 if in_gap else self._forming(pair, now)

    def _forming(self, pair: str, now: datetime) -> int:
        stamps = self._stamps_for(pair)
        index = int(np.searchsorted(stamps, to_ms(now), side="right")) - 1
        if index < 0 or to_ms(now) >= stamps[index] + self._step_ms[pair]:
            raise NotFound(f"no {pair} candle is forming at {now.isoformat()}")
        return index

    def _stamps_for(self, pair: str) -> npt.NDArray[np.int64]:
        try:
            return self._stamps[pair]
        except KeyError:
            raise NotFound(f"no replay data for {pair}") from None

"""The strategy check's worker processes run with their clocks ahead (bot/research/
check_processes.py), so a strategy that decides by the time decides otherwise in one of them.
Whatever minute the check starts at, some worker must see another value of each reading a
strategy may take from the clock. A shift of 25 h 7 min alone kept the hour's parity in the
last 7 minutes of every hour: a strategy choosing its length by the hour's parity passed its
determinism check when the check ran at minute 53 to 59 (CI, 2026-11-27)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bot.research.check_processes import CLOCK_SHIFTS, HASH_SEEDS

START = int(datetime(2026, 11, 27, tzinfo=UTC).timestamp())
READINGS: dict[str, Callable[[int], int]] = {
    "the hour (a seed)": lambda t: t // 3600,
    "the day (a seed)": lambda t: t // 86400,
    "the minute (a seed)": lambda t: t // 60,
    "the hour's parity": lambda t: t // 3600 % 2,
    "the hour of the day": lambda t: t // 3600 % 24,
    "the minute of the hour": lambda t: t // 60 % 60,
}


def missed(reading: Callable[[int], int], within: range) -> list[int]:
    """The start times (seconds into ``within``) at which no worker's clock reads otherwise."""
    return [
        t - START
        for t in within
        if all(reading(t + shift) == reading(t) for shift in CLOCK_SHIFTS if shift)
    ]


def test_every_worker_has_its_clock_ahead() -> None:
    assert len(CLOCK_SHIFTS) == len(HASH_SEEDS)
    assert all(shift > 0 for shift in CLOCK_SHIFTS)


@pytest.mark.parametrize("name", READINGS)
def test_every_start_time_of_a_day_has_a_worker_whose_clock_reads_otherwise(name: str) -> None:
    assert missed(READINGS[name], range(START, START + 86400, 30)) == []


def test_the_days_parity_differs_but_in_the_last_minutes_of_a_day() -> None:
    """One shift cannot be both an odd number of hours and of days: the day's parity slips
    only when the check starts in the last 7 minutes of a UTC day."""
    slipped = missed(lambda t: t // 86400 % 2, range(START, START + 86400, 30))
    assert slipped
    assert min(slipped) >= 86400 - 7 * 60

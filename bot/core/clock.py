"""The only place that reads the time. Everything else gets a Clock.

A clock has two readings: ``now`` (the wall clock: UTC, for dates, showing times and Unix
seconds; NTP or an admin may step it at any moment) and ``monotonic`` (seconds that only
ever move forward at the rate time passes, with no meaning of their own: for measuring how
long something took or how far apart two moments were, which a step of the wall clock must
not change). The host's monotonic reading counts a suspend (a laptop lid, a paused VM):
Telegram's clock and a Confirm's 30 s go on while the host sleeps.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class SystemClock:
    """Wall-clock UTC time, and the host's monotonic clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """CLOCK_BOOTTIME on Linux: CLOCK_MONOTONIC (``time.monotonic``) stops while the host
        is suspended, so after a resume an old command looked fresh and an expired Confirm
        open; BOOTTIME goes on counting, and NTP never steps it. Elsewhere: time.monotonic."""
        boottime = getattr(time, "CLOCK_BOOTTIME", None)
        return time.monotonic() if boottime is None else time.clock_gettime(boottime)


class FakeClock:
    """A clock that moves only when told: tests, backtests and replays. ``advance`` is time
    passing (both readings move); ``set`` is the wall clock being set (a step: the monotonic
    reading stays where it is)."""

    def __init__(self, start: datetime) -> None:
        self._now = _require_utc(start)
        self._ticks = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._ticks

    def set(self, moment: datetime) -> None:
        self._now = _require_utc(moment)

    def advance(self, delta: timedelta) -> None:
        self._now += delta
        self._ticks += delta.total_seconds()


def _require_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() != timedelta(0):
        raise ValueError(f"clock times must be UTC-aware, got {moment!r}")
    return moment


def shift_process_clock(seconds: float) -> None:
    """Move this process's ``time.time`` and ``time.time_ns`` ``seconds`` ahead. Only for the
    strategy check's worker process (bot/research/check_worker.py): a strategy seeding its
    randomness from the time decides otherwise there than in the check's own process."""
    if not seconds:
        return
    wall, wall_ns = time.time, time.time_ns
    time.time = lambda: wall() + seconds
    time.time_ns = lambda: wall_ns() + int(seconds * 1e9)

"""The only place that reads the time. Everything else gets a Clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SystemClock:
    """Wall-clock UTC time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told: tests, backtests and replays."""

    def __init__(self, start: datetime) -> None:
        self._now = _require_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = _require_utc(moment)

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def _require_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() != timedelta(0):
        raise ValueError(f"clock times must be UTC-aware, got {moment!r}")
    return moment

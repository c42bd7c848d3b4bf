from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.clock import FakeClock, SystemClock


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(datetime(2025, 1, 1, tzinfo=UTC))
    assert clock.now() == datetime(2025, 1, 1, tzinfo=UTC)
    clock.advance(timedelta(hours=2))
    assert clock.now() == datetime(2025, 1, 1, 2, tzinfo=UTC)
    clock.set(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.now().year == 2026


def test_clocks_refuse_naive_and_non_utc_times() -> None:
    with pytest.raises(ValueError, match="UTC-aware"):
        FakeClock(datetime(2025, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="UTC-aware"):
        FakeClock(datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=2))))


def test_system_clock_is_utc_aware() -> None:
    assert SystemClock().now().utcoffset() == timedelta(0)


def test_setting_a_fake_wall_clock_is_a_step_its_monotonic_reading_stays() -> None:
    clock = FakeClock(datetime(2025, 1, 1, tzinfo=UTC))
    start = clock.monotonic()
    clock.advance(timedelta(seconds=5))  # time passes: both move
    clock.set(datetime(2024, 1, 1, tzinfo=UTC))  # NTP steps the wall clock: only it moves
    assert clock.monotonic() - start == 5.0
    assert SystemClock().monotonic() <= SystemClock().monotonic()

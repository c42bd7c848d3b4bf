from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.core.clock import FakeClock, SystemClock


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


def test_the_system_clock_s_monotonic_reading_counts_a_host_suspend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review round 5 F3: CLOCK_MONOTONIC stops while the host is suspended (a laptop lid, a
    paused VM) and Telegram's clock does not, so an old command looked fresh after a resume.
    CLOCK_BOOTTIME counts the suspend (and NTP never steps it); elsewhere: time.monotonic."""
    if not hasattr(time, "CLOCK_BOOTTIME"):
        pytest.skip("no CLOCK_BOOTTIME on this platform")
    real = time.clock_gettime

    def suspended_10_min(clock_id: int) -> float:  # what a host suspended 10 min reads
        return real(clock_id) + (600.0 if clock_id == time.CLOCK_BOOTTIME else 0.0)

    monkeypatch.setattr(time, "clock_gettime", suspended_10_min)
    assert SystemClock().monotonic() - time.monotonic() == pytest.approx(600.0, abs=1.0)
    monkeypatch.delattr(time, "CLOCK_BOOTTIME")  # not Linux
    assert SystemClock().monotonic() == pytest.approx(time.monotonic(), abs=1.0)

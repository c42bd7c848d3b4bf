"""Telegram's clock read from Date headers: the offset, the skew alert and its end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from bot.clock import FakeClock
from handlers.telegram_clock import TelegramClock

HOST = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def _header(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def test_the_offset_is_the_median_of_the_last_answers_and_the_skew_is_told_once() -> None:
    wall, told = FakeClock(HOST), []
    clock = TelegramClock(wall, told.append)
    assert clock.offset == 0.0  # nothing seen yet: the host's clock is taken as it is
    for _ in range(3):
        clock.observe(_header(HOST - timedelta(seconds=90)))  # the host is 90 s fast
    clock.observe(_header(HOST + timedelta(hours=1)))  # one odd answer does not move it
    assert clock.offset == -89.5
    assert clock.telegram_time(HOST) == HOST - timedelta(seconds=89.5)
    assert told == [-89.5]
    for _ in range(5):  # NTP fixed it
        clock.observe(_header(HOST))
    assert told == [-89.5, None]


def test_a_missing_or_malformed_date_header_is_ignored() -> None:
    clock = TelegramClock(FakeClock(HOST))
    for header in (None, "", "yesterday", "Thu, 26 Nov 2026 12:00:00"):  # no zone: naive
        clock.observe(header)
    assert clock.offset == 0.0


def test_an_absurd_date_is_no_reading_and_a_large_offset_is_not_trusted() -> None:
    """Review F17: ``Date: 9999`` crashed every command; a Date minutes off refused fresh ones."""
    wall, told = FakeClock(HOST), []
    clock = TelegramClock(wall, told.append)
    clock.observe("Fri, 31 Dec 9999 23:59:59 GMT")
    clock.observe(_header(HOST - timedelta(hours=2)))
    assert clock.offset == 0.0
    assert told == []
    clock.observe(_header(HOST + timedelta(seconds=300)))
    assert told == [300.5]  # told to the admins, but ages are judged by the host's clock
    assert not clock.trusted
    assert clock.telegram_time(HOST) == HOST

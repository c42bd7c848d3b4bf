"""Telegram's clock as bounds on its offset: updates' dates (lower), the bot's sent messages
(both sides), the Date header only while it agrees; the skew alert and its end; bounds held
against the host's monotonic clock, so a step of its wall clock changes no age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from bot.core.clock import FakeClock
from handlers.telegram_clock import READING_SECONDS, TelegramClock

HOST = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def _header(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


async def _answer(
    clock: TelegramClock,
    wall: FakeClock,
    method: str,
    result: object,
    date: str | None = None,
    after: float = 0.0,
) -> None:
    """The Bot API answers ``method`` with ``result`` ``after`` seconds (the host's) after it
    was asked."""
    request = httpx.Request("POST", f"http://api/bot1:x/{method}")
    await clock.on_request(request)
    wall.advance(timedelta(seconds=after))
    headers = {"date": date} if date else {}
    await clock.on_response(
        httpx.Response(200, json={"ok": True, "result": result}, headers=headers, request=request)
    )


def _update(update_id: int, date: datetime) -> dict[str, object]:
    return {"update_id": update_id, "message": {"message_id": 1, "date": int(date.timestamp())}}


def _sent(date: datetime) -> dict[str, object]:
    return {"message_id": 2, "date": int(date.timestamp())}


async def test_a_sent_message_bounds_telegram_s_clock_and_the_skew_is_told_once() -> None:
    wall, told = FakeClock(HOST), []
    clock = TelegramClock(wall, told.append)
    start = wall.monotonic()
    assert clock.latest(start) is None  # nothing sent yet: no upper bound
    telegram = HOST - timedelta(seconds=90)  # the host is 90 s fast
    await _answer(clock, wall, "sendMessage", _sent(telegram), after=0.2)
    low, high = clock.bounds()
    assert low == pytest.approx(-90.2)  # dated between the send's start and its answer
    assert high == -89.0
    assert clock.latest(start) == HOST - timedelta(seconds=89)
    assert clock.source == "Telegram's clock, read from Telegram's own message dates"
    assert told == [clock.offset]
    assert -90.3 <= clock.offset <= -89.0
    wall.advance(timedelta(seconds=READING_SECONDS + 1))  # old readings are forgotten
    assert clock.latest(wall.monotonic()) is None
    await _answer(clock, wall, "sendMessage", _sent(wall.now()))  # NTP fixed it
    assert told[-1] is None


async def test_updates_dates_are_only_lower_bounds_however_they_came() -> None:
    """Review F2: a backlog page or a late delivery is no reading of "now": an update dated
    150 s ago moves no upper bound, so a command it carries can never look fresh."""
    wall = FakeClock(HOST)
    clock = TelegramClock(wall)
    for waited in (0.0, 5.0):  # a quick answer, a poll that waited
        await _answer(clock, wall, "getUpdates", [], after=waited)
        clock.updates_arrived([_update(1, wall.now() - timedelta(seconds=150))])
    assert clock.latest(wall.monotonic()) is None
    clock.updates_arrived([_update(2, wall.now() + timedelta(seconds=30))])
    assert clock.bounds() == (30.0, None)  # a fresh update on a host 30 s slow
    assert clock.offset == 30.0  # the estimate never goes below a bound


async def test_a_date_header_counts_only_while_it_agrees_with_telegram_s_dates() -> None:
    """Review F4: a Date 120 s ahead or 170 s behind (a proxy, a self-hosted Bot API on a bad
    clock) no longer judges ages: it contradicts the sent messages' dates, and is told once."""
    wall, wrong, told = FakeClock(HOST), [], []
    clock = TelegramClock(wall, told.append, on_date_wrong=wrong.append)
    await _answer(clock, wall, "getMe", {}, date=_header(HOST + timedelta(seconds=120)))
    assert clock.latest(wall.monotonic()) is None  # a header alone is no upper bound
    await _answer(clock, wall, "sendMessage", _sent(HOST))
    assert clock.bounds() == (0.0, 1.0)
    assert 0.0 <= clock.offset <= 1.0
    assert len(wrong) == 1
    assert "Date header disagrees with Telegram's message dates" in wrong[0]
    await _answer(clock, wall, "getMe", {}, date=_header(HOST - timedelta(seconds=170)))
    assert clock.offset <= 1.0
    assert len(wrong) == 1  # told once
    await _answer(clock, wall, "getMe", {}, date=_header(HOST))
    assert clock.offset == 0.5  # a right header refines the estimate within the bounds


async def test_a_large_offset_confirmed_by_telegram_s_dates_is_used() -> None:
    """Review F5: a host 5 min off with a right Date header: the sent messages confirm it, so
    ages are judged by it (no cap on its size)."""
    wall = FakeClock(HOST)
    clock = TelegramClock(wall)
    telegram = HOST + timedelta(seconds=300)
    await _answer(clock, wall, "sendMessage", _sent(telegram), date=_header(telegram))
    assert clock.latest(wall.monotonic()) == HOST + timedelta(seconds=301)
    assert clock.telegram_time(wall.monotonic()) == HOST + timedelta(seconds=300.5)


async def test_a_step_of_the_host_s_wall_clock_changes_no_age() -> None:
    """Review round 4 F3/F4: bounds were in wall seconds, so NTP stepping the host back 100 s
    let a 150 s old command look 50 s old (and forward, a fresh one look 2 min old). Against
    the monotonic clock they do not move; the wall clock's new offset is only told."""
    wall, told = FakeClock(HOST), []
    clock = TelegramClock(wall, told.append)
    await _answer(clock, wall, "sendMessage", _sent(HOST))
    before = clock.latest(wall.monotonic())
    for step in (-100, +220):  # back 100 s, then 120 s fast
        wall.set(wall.now() + timedelta(seconds=step))
        assert clock.latest(wall.monotonic()) == before == HOST + timedelta(seconds=1)
    assert clock.bounds() == (-120.0, -119.0)  # against the wall as it reads now
    await _answer(clock, wall, "sendMessage", _sent(HOST))
    assert told == [clock.offset]  # the admins hear that the host's clock is off
    assert -120.0 <= clock.offset <= -119.0


async def test_contradicting_bounds_mean_the_monotonic_clock_lost_time() -> None:
    """A suspended host whose monotonic clock stopped (CLOCK_MONOTONIC, where there is no
    CLOCK_BOOTTIME) while Telegram's (and the wall) went on: the old bounds contradict the
    new reading and are dropped."""
    wall = FakeClock(HOST)
    clock = TelegramClock(wall)
    await _answer(clock, wall, "sendMessage", _sent(HOST))
    wall.set(HOST + timedelta(seconds=60))  # a minute suspended: the monotonic clock stood
    await _answer(clock, wall, "sendMessage", _sent(HOST + timedelta(seconds=60)))
    assert clock.bounds() == (0.0, 1.0)  # only the newest reading is kept


async def test_malformed_or_absurd_dates_are_no_reading() -> None:
    """Review F17: ``Date: 9999`` crashed every command."""
    wall, told = FakeClock(HOST), []
    clock = TelegramClock(wall, told.append)
    for header in ("yesterday", "Thu, 26 Nov 2026 12:00:00", "Fri, 31 Dec 9999 23:59:59 GMT"):
        await _answer(clock, wall, "getMe", {}, date=header)
    await _answer(clock, wall, "sendMessage", {"message_id": 1, "date": "soon"})
    await _answer(clock, wall, "sendMessage", _sent(HOST + timedelta(days=400)))
    assert clock.offset == 0.0
    assert clock.bounds() == (None, None)
    assert told == []

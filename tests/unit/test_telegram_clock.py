"""Telegram's clock read from Date headers: the offset, the skew alert and its end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx

from bot.clock import FakeClock
from handlers.telegram_clock import WAITED_SECONDS, TelegramClock

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


async def _answer(clock: TelegramClock, method: str, result: object,
                  date: str | None = None, after: float = 0.0) -> None:  # fmt: skip
    """The Bot API answers ``method`` with ``result`` ``after`` seconds after it was asked."""
    request = httpx.Request("POST", f"http://api/bot1:x/{method}")
    await clock.on_request(request)
    if after:
        await asyncio.sleep(after)
    headers = {"date": date} if date else {}
    await clock.on_response(httpx.Response(200, json={"ok": True, "result": result},
                                           headers=headers, request=request))  # fmt: skip


def _update(update_id: int, date: datetime) -> dict[str, object]:
    return {"update_id": update_id, "message": {"message_id": 1, "date": int(date.timestamp())}}


async def test_without_a_date_header_telegram_s_own_dates_are_read() -> None:
    """Review F18: a self-hosted Bot API server sends no Date header."""
    wall, told = FakeClock(HOST), []
    clock = TelegramClock(wall, told.append)
    telegram = HOST - timedelta(seconds=90)  # the host is 90 s fast
    # the updates that waited for the bot at its start: no reading, however old
    await _answer(clock, "getUpdates", [_update(1, telegram - timedelta(hours=1))])
    await _answer(clock, "answerCallbackQuery", True)
    assert clock.source.startswith("the host's clock")
    await _answer(clock, "sendMessage", {"message_id": 2, "date": int(telegram.timestamp())})
    assert clock.offset == -89.5
    assert clock.source == "Telegram's clock, read from Telegram's own message dates"
    assert told == [-89.5]
    # a Date header, once seen, is the only source: dates no longer count
    await _answer(clock, "getMe", {}, date=_header(HOST))
    await _answer(clock, "sendMessage", {"message_id": 3, "date": int(telegram.timestamp())})
    assert clock.offset == 0.5
    assert clock.source == "Telegram's clock, read from the Bot API's Date header"


async def test_a_poll_that_waited_or_followed_the_last_one_is_a_reading() -> None:
    wall = FakeClock(HOST)
    clock = TelegramClock(wall)
    telegram = HOST + timedelta(seconds=30)  # the host is 30 s slow
    await _answer(clock, "getUpdates", [_update(1, telegram)], after=WAITED_SECONDS)
    assert clock.offset == 30.5  # it waited: the update was made during it
    clock = TelegramClock(wall)
    await _answer(clock, "getUpdates", [])  # the first, quick answer: whatever waited
    await _answer(clock, "getUpdates", [_update(2, telegram)])  # asked at once after it
    assert clock.offset == 30.5

"""Alerts and messages reaching the chats through the real python-telegram-bot client and
the Bot API emulator: rate limits, outages, lost answers, restarts, long texts, each
user's alert choices, and the daily report."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.alerts.outbox import AlertDispatcher
from bot.app.run import push_daily_report
from bot.core.clock import FakeClock
from bot.core.domain import AlertPriority
from bot.ops.scheduler import Jobs
from handlers.delivery import MAY_REPEAT, plain, send_photo, send_text
from tests.rigs.chat_rig import ADMIN, TRADER, USERS, VIEWER, chat_stack

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


async def test_alerts_reach_every_user_once_through_rate_limits_and_an_outage(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        outbox, clock = chat.trading.outbox, chat.trading.clock
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, clock)
        await outbox.push("trade", AlertPriority.TRADE, "BTC/USDT BUY 0.01 @ 100,000.00")
        chat.emulator.limit("sendMessage", 1, 1)  # Telegram says: retry after 1 s
        assert await dispatcher.drain() == 1
        assert [m.text for m in chat.emulator.to(ADMIN)] == ["BTC/USDT BUY 0.01 @ 100,000.00"]
        assert all(len(chat.emulator.to(user)) == 1 for user in USERS)
        chat.emulator.is_down = True
        await outbox.push("trade", AlertPriority.TRADE, "ETH/USDT SELL")
        await outbox.push("risk_halt", AlertPriority.CRITICAL, "Trading halted: drawdown")
        assert await dispatcher.drain() == 0  # queued, not lost
        clock.advance(timedelta(minutes=10))
        chat.emulator.is_down = False
        assert await dispatcher.drain() == 2
        texts = [m.text for m in chat.emulator.to(VIEWER)]
        assert texts[1:] == [
            "(late by 10 min) Trading halted: drawdown",
            "(late by 10 min) ETH/USDT SELL",
        ]
        assert await dispatcher.drain() == 0
        assert all(len(chat.emulator.to(user)) == 3 for user in USERS)  # none twice


async def test_alerts_survive_dropped_connections_and_a_doubtful_resend_says_so(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, chat.trading.clock)
        first, *others = USERS  # chats are served in this order
        chat.emulator.lost_answers = 1  # the message reaches the chat, its answer is lost
        await chat.trading.outbox.push("trade", AlertPriority.TRADE, "BTC/USDT BUY")
        assert await dispatcher.drain() == 0  # a network error: kept for the next drain
        assert await dispatcher.drain() == 1
        assert [m.text for m in chat.emulator.to(first)] == [
            "BTC/USDT BUY",
            f"{MAY_REPEAT} BTC/USDT BUY",
        ]
        assert all([m.text for m in chat.emulator.to(u)] == ["BTC/USDT BUY"] for u in others)
        chat.emulator.hang_ups = 2  # dropped before Telegram handled it: nothing showed
        await chat.trading.outbox.push("trade", AlertPriority.TRADE, "ETH/USDT BUY")
        assert await dispatcher.drain() == 0
        assert await dispatcher.drain() == 0
        assert await dispatcher.drain() == 1
        assert chat.emulator.hang_ups == 0
        # the bot cannot tell this from a lost answer, so it says it may be a repeat
        assert [m.text for m in chat.emulator.to(first)][2:] == [f"{MAY_REPEAT} ETH/USDT BUY"]
        chat.emulator.is_down = True  # a 502 is an answer: the resend needs no such word
        await chat.trading.outbox.push("trade", AlertPriority.TRADE, "SOL/USDT BUY")
        assert await dispatcher.drain() == 0
        chat.emulator.is_down = False
        assert await dispatcher.drain() == 1
        assert all(chat.emulator.to(u)[-1].text == "SOL/USDT BUY" for u in USERS)


async def test_alerts_survive_a_restart_and_a_send_cut_short_is_resent_as_a_maybe(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, chat.trading.clock)
        chat.emulator.flaky[TRADER] = 99  # the trader's chat keeps failing from here on
        await chat.trading.outbox.push("trade", AlertPriority.TRADE, "ETH/USDT SELL")
        await chat.trading.outbox.push("risk_halt", AlertPriority.CRITICAL, "Trading halted")
        assert await dispatcher.drain() == 0
        before = {user: [m.text for m in chat.emulator.to(user)] for user in USERS}
        assert before[ADMIN] == ["Trading halted"]  # the halt first
        assert before[TRADER] == []
        chat.emulator.flaky[TRADER] = 0
        chat.emulator.send_delay = 0.6
        draining = asyncio.create_task(dispatcher.drain())
        await asyncio.sleep(0.3)
        assert chat.emulator.sending == 1  # the trader's halt is on its way
        draining.cancel()  # the service dies in the middle of the send
        with contextlib.suppress(asyncio.CancelledError):
            await draining
        await chat.emulator.quiet(0.5)
        before = {user: [m.text for m in chat.emulator.to(user)] for user in USERS}
        assert before[TRADER] == ["Trading halted"]  # it arrived; the bot never heard so
    async with chat_stack(tmp_path) as chat:  # the service restarted on the same database
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, chat.trading.clock)
        assert await chat.alerts.backlog() == 2
        assert await dispatcher.drain() == 2
        after = {user: [m.text for m in chat.emulator.to(user)] for user in USERS}
        assert after[TRADER] == [f"{MAY_REPEAT} Trading halted", "ETH/USDT SELL"]
        assert after[ADMIN] == ["ETH/USDT SELL"]  # the halt it already had is not sent again
        assert after[VIEWER] == ["Trading halted", "ETH/USDT SELL"]
        assert await chat.alerts.backlog() == 0
        assert [await chat.alerts.attempted_chats(i) for i in (1, 2)] == [set(), set()]


async def test_a_chat_that_failed_midway_gets_the_alert_later_and_the_others_not_twice(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, chat.trading.clock)
        chat.emulator.flaky[TRADER] = 1
        chat.emulator.blocked.add(VIEWER)
        await chat.trading.outbox.push("trade", AlertPriority.TRADE, "BTC/USDT BUY")
        assert await dispatcher.drain() == 0  # the trader's chat failed: still queued
        assert await dispatcher.drain() == 1
        assert [m.text for m in chat.emulator.to(ADMIN)] == ["BTC/USDT BUY"]
        assert [m.text for m in chat.emulator.to(TRADER)] == ["BTC/USDT BUY"]
        assert chat.emulator.to(VIEWER) == []  # blocked the bot: skipped, not retried forever
        assert await chat.alerts.backlog() == 0


async def test_a_user_who_never_opened_the_bot_holds_back_nobody_s_alerts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with chat_stack(tmp_path) as chat:
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, chat.trading.clock)
        chat.emulator.strangers.add(TRADER)  # Telegram: "Bad Request: chat not found"
        report = b"\x89PNG\r\n\x1a\n report"
        await chat.trading.outbox.push("daily_report", AlertPriority.INFO, "Today", report)
        await chat.trading.outbox.push("risk_halt", AlertPriority.CRITICAL, "Trading halted")
        assert await dispatcher.drain() == 2
        for user in (ADMIN, VIEWER):
            got = chat.emulator.to(user)
            assert [(m.text, m.photo) for m in got] == [("Trading halted", None), ("Today", report)]
        assert chat.emulator.to(TRADER) == []
        assert await chat.alerts.backlog() == 0
        assert caplog.text.count(f"not sent to chat {TRADER}: Chat not found") == 2


async def test_long_texts_are_split_and_refused_markup_falls_back_to_plain_text(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        bot = chat.frontend.application.bot
        long = "\n".join(f"line {i} " + "x" * 90 for i in range(120))
        sent = await send_text(bot, ADMIN, long)
        assert len(sent) == 3
        assert all(len(m.text) <= 4096 for m in chat.emulator.to(ADMIN))
        assert "\n".join(m.text for m in chat.emulator.to(ADMIN)) == long
        await send_text(bot, VIEWER, "<b>bold</i> 5 < 6")
        assert chat.emulator.to(VIEWER)[-1].text == "bold 5 < 6"
        assert chat.emulator.to(VIEWER)[-1].parse_mode is None


async def test_each_user_chooses_which_alerts_arrive_and_how(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        assert "trade: on" in await chat.ask(VIEWER, "/alerts")
        assert "trade: silent" in await chat.ask(VIEWER, "/alerts trade silent")
        assert "startup: off" in await chat.ask(VIEWER, "/alerts startup off")
        assert "cannot be switched off" in await chat.ask(VIEWER, "/alerts risk_halt off")
        assert "no alert kind 'trades'" in await chat.ask(VIEWER, "/alerts trades off")
        assert "choose on, silent or off" in await chat.ask(VIEWER, "/alerts trade loud")
        sent_before = {user: len(chat.emulator.to(user)) for user in USERS}
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, chat.trading.clock)
        await chat.trading.outbox.push("startup", AlertPriority.INFO, "pairpilot started")
        await chat.trading.outbox.push("trade", AlertPriority.TRADE, "BTC/USDT BUY")
        assert await dispatcher.drain() == 2
        viewer = chat.emulator.to(VIEWER)[sent_before[VIEWER] :]
        assert [(m.text, m.silent) for m in viewer] == [("BTC/USDT BUY", True)]
        admin = chat.emulator.to(ADMIN)[sent_before[ADMIN] :]
        assert [(m.text, m.silent) for m in admin] == [
            ("BTC/USDT BUY", False),
            ("pairpilot started", False),
        ]
    async with chat_stack(tmp_path) as chat:  # kept over a restart
        assert "trade: silent" in await chat.ask(VIEWER, "/alerts")


async def test_health_and_the_daily_report(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        for _ in range(30):
            await chat.trading.driver.step()
        health = await chat.ask(VIEWER, "/health")
        assert "BTC/USDT 1h: last new candle 0 min ago" in health
        assert "exchange:" in health
        assert "ms to answer" in health
        assert "alerts waiting to be delivered:" in health
        await push_daily_report(chat.frontend_cockpit, chat.trading.outbox)
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, chat.trading.clock)
        await dispatcher.drain()
        report = chat.emulator.to(ADMIN)[-1]
        assert report.photo is not None
        assert len(report.photo) <= 300_000
        assert report.text.startswith("Daily report")
        assert "1 pair(s) running" in report.text


def test_the_daily_report_fires_at_the_configured_local_time() -> None:
    jobs = Jobs(FakeClock(datetime(2025, 7, 1, tzinfo=UTC)))

    async def nothing() -> None:
        return None

    jobs.daily("20:00", "Europe/Berlin", nothing, "daily-report")
    trigger = jobs.scheduler.get_job("daily-report").trigger
    fire = trigger.get_next_fire_time(None, datetime(2025, 7, 1, 12, 0, tzinfo=UTC))
    assert fire.astimezone(UTC) == datetime(2025, 7, 1, 18, 0, tzinfo=UTC)  # 20:00 CEST


async def test_a_caption_over_telegrams_limit_keeps_every_line(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        bot = chat.frontend.application.bot
        caption = "<b>head</b>\n" + "\n".join(f"row {i}: " + "y" * 60 for i in range(20))
        caption += "\n✅ identical to receipt abc123"  # the line that matters comes last
        assert len(caption) > 1024
        await send_photo(bot, ADMIN, PNG, caption)
        photo, rest = chat.emulator.to(ADMIN)[-2:]
        assert photo.photo == PNG
        assert len(photo.text) <= 1024
        assert rest.photo is None
        assert f"{photo.text}\n{rest.text}" == plain(caption)  # every line, cut at a line end
        await send_photo(bot, VIEWER, PNG, "<b>bold</i>\n" + "z" * 1100)  # refused markup
        photo, rest = chat.emulator.to(VIEWER)[-2:]
        assert (photo.text, rest.text) == ("bold", "z" * 1100)  # plain, the rest as one text

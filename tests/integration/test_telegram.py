"""The real python-telegram-bot client against the local Bot API emulator, over a replay stack."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.alerts.outbox import AlertDispatcher
from bot.app.bootstrap import assemble_replay, build_cockpit, load_replay
from bot.app.config import (
    Secrets,
    TelegramSettings,
    TelegramUser,
    WebhookSettings,
    telegram_options,
)
from bot.app.exchange_service import push_daily_report
from bot.app.serve import run_service
from bot.chat.cockpit import Venue
from bot.chat.requests import normalise_pair
from bot.core.clock import FakeClock
from bot.core.domain import AlertPriority
from bot.core.errors import UserInputError
from bot.market.history import ReplayHistory
from bot.ops.scheduler import Jobs
from handlers.commands import COMMANDS, Actions
from handlers.delivery import MAY_REPEAT, chunks, plain, send_text
from handlers.frontend import TelegramFrontend, telegram_factory
from storage.alerts import SqliteAlertRepository
from storage.db import open_database
from tests.doubles.telegram_emulator import TelegramEmulator, post_update, running
from tests.rigs.builders import replay_settings
from tests.rigs.chat_rig import ADMIN, STRANGER, TRADER, USERS, VIEWER, chat_stack


async def test_commands_are_registered_and_whoami_answers_anyone(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        menus = {scope: [c["command"] for c in menu] for scope, menu in chat.emulator.menus.items()}
        assert menus[f"chat:{ADMIN}"] == list(COMMANDS)  # each user sees what their role may run
        assert "halt" not in menus[f"chat:{TRADER}"]
        assert "startpair" in menus[f"chat:{TRADER}"]
        assert menus["default"] == menus[f"chat:{VIEWER}"]  # groups and strangers: reads only
        assert "flatten" not in menus["default"]
        assert "status" in menus["default"]
        reply = await chat.ask(STRANGER, "/whoami")
        assert f"user id {STRANGER}" in reply
        assert "not in the config" in reply
        assert "role admin" in await chat.ask(ADMIN, "/whoami")


async def test_strangers_get_no_reply_and_admins_an_hourly_summary(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        chat.emulator.say(STRANGER, "/status")
        chat.emulator.say(STRANGER, "/flatten")
        chat.emulator.say(STRANGER + 1, "/status", chat_id=-500)  # in a group: still nobody
        await chat.emulator.quiet(0.5)
        assert chat.emulator.to(STRANGER) == []
        assert chat.emulator.to(-500) == []
        assert chat.trading.engine.portfolio.cash > 0
        assert not await chat.trading.engine.guard.halted()
        notices = [a for a in await chat.alerts.pending() if a.kind == "unauthorised"]
        assert len(notices) == 1
        assert "unknown user(s) tried commands in the last hour" in notices[0].text
        assert notices[0].priority is AlertPriority.INFO  # behind trade alerts
        chat.emulator.say(STRANGER + 2, "/status", chat_id=-501)
        await chat.emulator.quiet(0.3)
        assert len([a for a in await chat.alerts.pending() if a.kind == "unauthorised"]) == 1
        chat.wall.advance(timedelta(hours=1, seconds=1))  # real time, not a replay's
        chat.emulator.say(STRANGER + 3, "/status", chat_id=-502)
        await chat.emulator.quiet(0.5)
        notices = [a for a in await chat.alerts.pending() if a.kind == "unauthorised"]
        assert len(notices) == 2
        assert "@-) /status" in notices[1].text
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, chat.trading.clock)
        await dispatcher.drain()
        assert len(chat.emulator.to(ADMIN)) == 2  # admins only: viewers and traders get none
        assert chat.emulator.to(VIEWER) == chat.emulator.to(TRADER) == []
        refusals = [e for e in await chat.audit.latest(20) if e.result.startswith("refused")]
        assert {e.actor for e in refusals} >= {str(STRANGER), str(STRANGER + 3)}  # audited


async def test_roles_gate_commands_and_everything_is_audited(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        status = await chat.ask(VIEWER, "/status")
        assert "paper" in status
        assert "Equity 1,000.00 USDT" in status
        assert "BTC/USDT" in status
        refused = await chat.ask(VIEWER, "/startpair ETH/USDT")
        assert "needs the trader role; you are viewer" in refused
        assert await chat.ask(TRADER, "/halt") == "/halt needs the admin role; you are trader."
        assert not await chat.trading.engine.guard.halted()
        in_group = await chat.ask(ADMIN, "/halt", chat_id=-500)  # a group: the sender counts
        assert "Trading halted" in in_group
        for _ in range(100):  # a command's audit line is written while its reply goes out
            entries = await chat.audit.latest(10)
            if len(entries) >= 3:
                break
            await asyncio.sleep(0.05)
        assert [(e.actor, e.command) for e in reversed(entries)] == [
            (str(VIEWER), "startpair"),
            (str(TRADER), "halt"),
            (str(ADMIN), "halt"),
        ]  # refusals and changes; reads stay out of the audit
        assert entries[1].result.startswith("refused")


async def test_a_trader_runs_pairs_and_bad_input_changes_nothing(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        started = await chat.ask(TRADER, "/startpair eth-usdt ema_cross 1h fast=10 share=0.25")
        assert "Started ETH/USDT: ema_cross 1h, 25% of capital" in started
        runs = {run.pair: run for run in chat.trading.service.runs()}
        assert runs["ETH/USDT"].params["fast"] == 10
        for text, expected in [
            ("/startpair DOGEUSDT", "DOGE/USDT has no replay data"),
            ("/startpair ETH/USDT", "already running"),
            ("/startpair BTC", "say which currency"),
            ("/startpair ETH/USDT magic", "unknown strategy"),
            ("/startpair ETH/USDT ema_cross 1h fast=99999", "out of bounds"),
            ("/stoppair", "usage: /stoppair PAIR"),
            ("/pause <b>x</b>", "is not a pair"),
            ("/trades -5", "must be from 1 to 100"),
        ]:
            reply = await chat.ask(TRADER, text)
            assert reply.startswith("⚠️"), (text, reply)
            assert expected in reply, (text, reply)
        assert len(chat.trading.service.runs()) == 2  # nothing changed
        assert "Paused ETH/USDT" in await chat.ask(TRADER, "/pause ETHUSDT")
        assert "ETH/USDT paused" in await chat.ask(TRADER, "/pairs")
        assert "Resumed ETH/USDT" in await chat.ask(TRADER, "/resume eth/usdt")
        assert "Stopped ETH/USDT" in await chat.ask(TRADER, "/stoppair ETH_USDT")
        assert [run.pair for run in chat.trading.service.runs()] == ["BTC/USDT"]
        usage = await chat.ask(VIEWER, "/help startpair")
        assert "/startpair PAIR [STRATEGY] [TIMEFRAME]" in usage


async def test_flatten_needs_a_confirmation_that_expires(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        for _ in range(500):  # trade until a position is open
            await chat.trading.driver.step()
            if chat.trading.engine.portfolio.positions():
                break
        assert chat.trading.engine.portfolio.positions()
        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/flatten")
        question = await chat.reply(ADMIN, after=before)
        buttons = question.reply_markup["inline_keyboard"][0]
        assert [b["text"] for b in buttons] == ["Confirm", "Cancel"]
        chat.emulator.press(TRADER, question, buttons[0]["callback_data"])  # not theirs
        chat.wall.advance(timedelta(seconds=31))  # real time: a replay clock races
        chat.emulator.press(ADMIN, question, buttons[0]["callback_data"])
        await chat.emulator.quiet(0.5)
        assert question.text == "Expired: send /flatten again."
        assert chat.trading.engine.portfolio.positions()  # nothing was sold
        chat.emulator.say(ADMIN, "/flatten")
        again = await chat.reply(ADMIN, after=before + 1)
        chat.emulator.press(
            ADMIN, again, again.reply_markup["inline_keyboard"][0][0]["callback_data"]
        )
        await chat.emulator.quiet(0.8)
        assert again.text == "Confirmed: /flatten is running; the result follows."
        (result,) = [a.text for a in await chat.alerts.pending() if "/flatten by" in a.text]
        assert result.startswith(f"/flatten by {ADMIN}: Flattened: halted")
        assert "Verified: the exchange holds no position." in result
        assert chat.trading.engine.portfolio.positions() == []
        assert await chat.trading.engine.guard.halted()


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


def test_pairs_are_read_in_every_usual_spelling() -> None:
    for text in ("BTC/USDT", "BTCUSDT", "btc-usdt", "btc_usdt", " btcusdt "):
        assert normalise_pair(text, "USDT") == "BTC/USDT"
    assert normalise_pair("ethbtc", "USDT") == "ETH/BTC"
    with pytest.raises(UserInputError):
        normalise_pair("bitcoin please", "USDT")
    assert chunks("") == ["."]
    assert plain("<b>a &amp; b</b>") == "a & b"


async def test_the_service_runs_with_telegram_in_its_own_loop(tmp_path: Path) -> None:
    emulator = TelegramEmulator()
    async with running(emulator) as base:
        config = replay_settings(tmp_path).model_copy(
            update={
                "telegram": TelegramSettings(
                    api_base_url=base, users=[TelegramUser(id=ADMIN, role="admin")]
                )
            }
        )
        stop = asyncio.Event()
        service = asyncio.create_task(
            run_service(
                config,
                Secrets(telegram_token=emulator.token),
                stop=stop,
                chat=telegram_factory(
                    telegram_options(config, Secrets(telegram_token=emulator.token))
                ),
            )
        )
        first = await emulator.reply(ADMIN, within=10)
        assert first.text.startswith("pairpilot started: paper mode, replay, BTC/USDT")
        emulator.say(ADMIN, "/status")
        status = await emulator.reply(ADMIN, after=1, within=10)
        assert "Equity" in status.text
        stop.set()
        await asyncio.wait_for(service, timeout=10)
    assert emulator.to(ADMIN)[-1].text == "pairpilot stopped"


def test_every_command_has_an_action() -> None:
    assert [name for name in COMMANDS if name != "whoami" and not hasattr(Actions, name)] == []


async def test_pnl_and_backtest_reply_with_charts_that_fit_a_phone(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        refused = await chat.ask(VIEWER, "/pnl")
        assert "not enough equity recorded" in refused
        for _ in range(100):
            await chat.trading.driver.step()
        photo = await chat.sent_back(VIEWER, "/pnl all")
        assert photo.photo is not None
        assert len(photo.photo) <= 300_000
        assert photo.photo.startswith(b"\x89PNG")
        assert "max drawdown" in photo.text
        assert "period '2w'" in await chat.ask(VIEWER, "/pnl 2w")
        before = len(chat.emulator.to(TRADER))
        chat.emulator.say(TRADER, "/backtest btcusdt ema_cross 1h 20 stop_loss=0.02")
        chat.emulator.say(TRADER, "/backtest ETH/USDT sma_cross")
        progress = await chat.reply(TRADER, after=before)
        for _ in range(300):  # the backtest runs beside the chat's next commands
            if any(m.photo for m in chat.emulator.to(TRADER)[before:]) and progress.text == "Done.":
                break
            await chat.emulator.quiet(0.1)
        replies = chat.emulator.to(TRADER)[before:]
        charts = [m for m in replies if m.photo is not None]
        assert len(charts) == 1  # the second was refused while the first ran
        assert any("a backtest is running (BTC/USDT ema_cross 1h 20d)" in m.text for m in replies)
        assert progress.edits >= 2  # loading, trading, drawing: one message, edited
        assert progress.text == "Done."
        assert "BTC/USDT ema_cross 1h" in charts[0].text
        assert "total return" in charts[0].text
        assert len(charts[0].photo) <= 300_000
        for text, expected in [
            ("/backtest BTC/USDT", "usage"),
            ("/backtest BTC/USDT magic", "unknown strategy"),
            ("/backtest BTC/USDT ema_cross 1h 9999", "DAYS 9999 must be"),
            ("/backtest BTC/USDT ema_cross 7x", "not valid"),
        ]:
            assert expected in await chat.ask(TRADER, text), text


async def test_risk_set_is_for_admins_bounded_and_kept_over_a_restart(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        assert "max_drawdown = 0.15" in await chat.ask(VIEWER, "/risk")
        assert "needs the admin role" in await chat.ask(TRADER, "/risk set max_drawdown 0.1")
        for text, expected in [
            ("/risk set max_drawdown 5", "/risk set max_drawdown=5: Input should be less than 1"),
            ("/risk set max_drawdown lots", "valid number"),
            ("/risk set leverage 10", "unknown key"),
            ("/risk set risk_per_trade 0.5", "less than or equal to 0.02"),
            ("/risk max_drawdown 0.1", "usage: /risk [set KEY VALUE]"),
        ]:
            assert expected in await chat.ask(ADMIN, text), text
        assert chat.trading.engine.guard.limits.max_drawdown == 0.15
        reply = await chat.ask(ADMIN, "/risk set max_drawdown 0.08")
        assert "max_drawdown = 0.08 from now on" in reply
        assert chat.trading.engine.guard.limits.max_drawdown == 0.08
    async with chat_stack(tmp_path) as chat:  # a restart
        assert chat.trading.engine.guard.limits.max_drawdown == 0.08


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


@pytest.mark.parametrize("strategy", ["bollinger_breakout", "macd"])  # over the price, below it
async def test_chart_shows_a_running_pair_with_its_strategy(tmp_path: Path, strategy: str) -> None:
    async with chat_stack(tmp_path) as chat:
        assert "ETH/USDT is not running" in await chat.ask(VIEWER, "/chart ETHUSDT")
        await chat.ask(TRADER, f"/startpair ETH/USDT {strategy} 1h share=0.5 stop_loss=0.03")
        for _ in range(300):
            await chat.trading.driver.step()
        photo = await chat.sent_back(VIEWER, "/chart eth-usdt")
        assert photo.photo is not None
        assert photo.photo.startswith(b"\x89PNG")
        assert len(photo.photo) <= 300_000
        assert photo.text.startswith(f"ETH/USDT 1h {strategy}, last close")
        assert "usage: /chart PAIR [TIMEFRAME]" in await chat.ask(VIEWER, "/chart")


async def test_a_webhook_takes_updates_only_with_the_secret(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = replay_settings(tmp_path)
    emulator = TelegramEmulator()
    hook = WebhookSettings(url=f"http://127.0.0.1:{port}/hook", port=port)
    async with running(emulator) as base, open_database(config.database_path) as db:
        replay = load_replay(config)
        trading = await assemble_replay(db, config, replay)
        cockpit = build_cockpit(
            db,
            Venue("paper", "replay", "USDT"),
            trading.service,
            trading.engine,
            trading.control,
            ReplayHistory(replay.source),
            Jobs(trading.clock),
            trading.clock,
        )
        frontend = TelegramFrontend(
            token=emulator.token,
            api_base_url=base,
            users=USERS,
            cockpit=cockpit,
            outbox=trading.outbox,
            alerts=SqliteAlertRepository(db),
            clock=trading.clock,
            webhook=hook,
            webhook_secret="s3cret",
        )
        frontend.start()
        await frontend.running.wait()
        try:
            assert emulator.webhook == (hook.url, "s3cret")
            assert "getUpdates" not in emulator.calls
            emulator.say(ADMIN, "/status")
            assert "Equity" in (await emulator.reply(ADMIN)).text
            forged = {
                "update_id": 999,
                "message": {
                    "message_id": 1,
                    "date": 1,
                    "text": "/halt",
                    "chat": {"id": ADMIN, "type": "private"},
                    "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
                    "from": {"id": ADMIN, "is_bot": False, "first_name": "x"},
                },
            }
            assert await post_update(hook.url, "guess", forged) == 403
            await emulator.quiet(0.3)
            assert not await trading.engine.guard.halted()
            assert await emulator.delivered() == [200]
        finally:
            await frontend.stop()


async def test_sweep_from_chat_edits_its_progress_and_replies_with_a_heatmap(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        for _ in range(400):
            await chat.trading.driver.step()
        assert "needs the admin role" in await chat.ask(TRADER, "/sweep BTCUSDT ema_cross fast=5")
        for text, expected in [
            ("/sweep BTC/USDT", "usage"),
            ("/sweep BTC/USDT ema_cross", "parameter space is empty"),
            ("/sweep BTC/USDT ema_cross fast=1:3:1", "outside the strategy"),
            ("/sweep BTC/USDT ema_cross fast=5 objective=luck", "objective"),
            ("/sweep BTC/USDT ema_cross 1h 3 fast=5", "DAYS 3 must be"),
        ]:
            assert expected in await chat.ask(ADMIN, text), text
        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/sweep btcusdt ema_cross 1h 14 fast=3:12:3 slow=20,30")
        progress = await chat.reply(ADMIN, after=before)
        photo = await chat.reply(ADMIN, after=before + 1, within=120)
        assert photo.photo is not None
        assert photo.photo.startswith(b"\x89PNG")
        assert len(photo.photo) <= 300_000
        assert photo.text.startswith("Sweep 1: 8 results, best by sharpe")
        await chat.emulator.quiet(1.0)  # the last edit follows the photo
        assert progress.edits >= 3  # loading, starting the workers, percentages, done
        assert progress.text == "Done."

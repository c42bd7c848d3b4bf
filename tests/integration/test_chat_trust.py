"""A chat you can trust when it matters (issue 20): stale and out-of-order commands, floods,
a deaf start-up, late button answers, races, huge sweeps. Real PTB client, Bot API emulator."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.alerts import AlertDispatcher
from bot.clock import SystemClock
from bot.config import Secrets, load_settings
from bot.errors import ConfigError
from bot.health import Health, check_health
from handlers.frontend import Backoff
from storage.equity import SqliteEquityRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import SqliteStateRepository
from tests.chat_rig import ADMIN, STRANGER, TRADER, VIEWER, Chat, chat_stack
from tests.telegram_emulator import Sent, TelegramEmulator


def _confirm(sent: Sent) -> str:
    assert sent.reply_markup is not None, sent.text
    return sent.reply_markup["inline_keyboard"][0][0]["callback_data"]


async def _open_position(chat: Chat) -> None:
    for _ in range(500):
        await chat.trading.driver.step()
        if chat.trading.engine.portfolio.positions():
            return
    raise AssertionError("no position opened")


# --- 1: age and order -------------------------------------------------------------------


async def test_commands_queued_while_down_change_nothing_by_themselves(tmp_path: Path) -> None:
    def while_down(emulator: TelegramEmulator) -> None:
        emulator.say(ADMIN, "/halt", ago=3 * 3600)
        emulator.say(ADMIN, "/risk set max_drawdown 0.1", ago=3 * 3600)
        emulator.say(VIEWER, "/pairs", ago=10 * 60)
        emulator.say(TRADER, "/startpair ETHUSDT share=0.2", ago=30 * 3600)  # past 24 h: gone

    async with chat_stack(tmp_path, before_start=while_down) as chat:
        await chat.emulator.quiet(0.8)
        guard = chat.trading.engine.guard
        assert not await guard.halted()
        assert guard.limits.max_drawdown == 0.15
        halt, risk = chat.emulator.to(ADMIN)
        assert halt.text.startswith("You sent /halt 3 h ago; it was not run then. Now it would:")
        assert "Confirm within 30 s" in halt.text
        assert "/risk set max_drawdown 0.1" in risk.text
        (pairs,) = chat.emulator.to(VIEWER)
        assert pairs.text.startswith("(asked 10 min ago) BTC/USDT running")
        assert chat.emulator.to(TRADER) == []  # Telegram dropped it after 24 hours
        assert [run.pair for run in chat.trading.service.runs()] == ["BTC/USDT"]
        chat.emulator.press(ADMIN, halt, _confirm(halt))  # a fresh Confirm does it now
        await chat.emulator.quiet(0.5)
        assert await guard.halted()
        entries = await chat.audit.latest(5)
        assert any("asked to confirm (sent 3 h ago)" in e.result for e in entries)


async def test_commands_from_one_chat_run_in_the_order_sent(tmp_path: Path) -> None:
    def sent_together(emulator: TelegramEmulator) -> None:
        emulator.say(TRADER, "/startpair ETHUSDT share=0.2")
        emulator.say(TRADER, "/stoppair ETHUSDT")
        emulator.say(TRADER, "/startpair ETHUSDT share=0.3")
        emulator.say(TRADER, "/pause ETHUSDT")

    async with chat_stack(tmp_path, before_start=sent_together) as chat:
        await chat.emulator.reply(TRADER, after=3, within=10)
        texts = [m.text for m in chat.emulator.to(TRADER)]
        assert texts[0].startswith("Started ETH/USDT")
        assert texts[1].startswith("Stopped ETH/USDT")
        assert texts[2].startswith("Started ETH/USDT: ema_cross 1h, 30%")
        assert texts[3].startswith("Paused ETH/USDT")
        run = chat.trading.service.run_for("ETH/USDT")
        assert run is not None
        assert run.state.value == "paused"


# --- 2: strangers never delay known users ---------------------------------------------


async def test_a_stranger_flooding_a_group_never_delays_an_admin_s_halt(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        for _ in range(300):
            chat.emulator.say(STRANGER, "/whoami", chat_id=-500)
        await chat.emulator.quiet(0.3)
        started = time.perf_counter()
        reply = await chat.ask(ADMIN, "/halt")
        took = time.perf_counter() - started
        assert "Trading halted" in reply
        assert took < 0.5, f"/halt answered after {took:.2f} s"
        assert len(chat.emulator.to(-500)) == 1  # one reply per stranger chat per window
        assert chat.frontend.strangers.dropped >= 299
        for user in range(300):  # many strangers, many groups: still a few at a time
            chat.emulator.say(5000 + user, "/whoami", chat_id=-1000 - user)
        chat.emulator.send_delay = 2.0  # every reply to them is slow
        await chat.emulator.quiet(0.3)
        started = time.perf_counter()
        await chat.frontend.stop()  # never waits on replies to strangers
        assert time.perf_counter() - started < 1.5


# --- 5: the kill switch's result is never lost ----------------------------------------


async def test_the_kill_switch_result_survives_a_slow_flatten(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        await _open_position(chat)
        chat.emulator.callback_seconds = 0.3  # Telegram refuses a late answer
        question = await chat.sent_back(ADMIN, "/flatten")
        prompt = question.text
        async with chat.trading.service.tick_lock:  # a tick holds the lock: flatten waits
            chat.emulator.press(ADMIN, question, _confirm(question))
            await chat.emulator.quiet(0.8)
        await chat.emulator.quiet(0.5)
        assert chat.emulator.refused_answers == 0  # answered at once
        assert question.text == "Confirmed: /flatten is running; the result follows."
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, chat.trading.clock)
        await dispatcher.drain()
        results = [m.text for m in chat.emulator.to(ADMIN) if "/flatten by" in m.text]
        assert len(results) == 1
        assert "Verified: the exchange holds no position." in results[0]
        assert results[0] in [m.text for m in chat.emulator.to(VIEWER)]  # everyone learns it
        assert "sell BTC/USDT 0." in prompt  # the prompt listed what would be sold


# --- 3: a deaf start-up is retried and reported ---------------------------------------


async def test_failed_start_up_calls_are_retried_and_reported(tmp_path: Path) -> None:
    def broken(emulator: TelegramEmulator) -> None:
        emulator.failing = {"setMyCommands": 1, "deleteWebhook": 3}

    async with chat_stack(tmp_path, before_start=broken, retry=Backoff(0.05, 0.2)) as chat:
        assert chat.emulator.failing == {"setMyCommands": 0, "deleteWebhook": 0}
        assert "Trading halted" in await chat.ask(ADMIN, "/halt")  # not deaf
        (notice,) = [a for a in await chat.alerts.pending() if a.kind == "chat_down"]
        assert "Commands cannot be received" in notice.text
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, chat.trading.clock)
        await dispatcher.drain()
        assert any("cannot be received" in m.text for m in chat.emulator.to(ADMIN))
        assert not any("cannot be received" in m.text for m in chat.emulator.to(VIEWER))
        assert chat.frontend.problem is None
        assert "chat commands" not in " ".join((await _health(chat)).problems)


async def test_health_and_slash_health_say_when_commands_cannot_be_received(
    tmp_path: Path,
) -> None:
    def down(emulator: TelegramEmulator) -> None:
        emulator.failing = {"deleteWebhook": 10**6}  # getMe works, polling never starts

    async with chat_stack(tmp_path, before_start=down, connected=False,
                          retry=Backoff(0.05, 0.1)) as chat:  # fmt: skip
        await asyncio.sleep(0.5)
        health = await _health(chat)  # what `pairpilot health` reads, from the database
        assert not health.ok
        assert "chat commands cannot be received: Telegram start-up failed" in health.problems[-1]
        chat.emulator.say(ADMIN, "/status")
        await chat.emulator.quiet(0.3)
        assert chat.emulator.to(ADMIN) == []  # deaf meanwhile
        chat.emulator.failing = {}
        await asyncio.wait_for(chat.frontend.running.wait(), 5)
        assert "paper" in (await chat.emulator.reply(ADMIN)).text  # the queued one, answered
        assert not any("chat" in p for p in (await _health(chat)).problems)
        assert "chat commands: received" in await chat.ask(VIEWER, "/health")


async def _health(chat: Chat) -> Health:
    return await check_health(
        runs=SqlitePairRunRepository(chat.db), equity=SqliteEquityRepository(chat.db),
        alerts=chat.alerts, now=SystemClock().now(), max_alert_age=timedelta(hours=1),
        state=SqliteStateRepository(chat.db),
    )  # fmt: skip


def test_a_webhook_secret_telegram_would_refuse_is_refused_by_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[telegram.webhook]\nurl = "https://bot.example.com/telegram"\n')
    for bad in ("has space", "semi;colon", "é", "x" * 257):
        with pytest.raises(ConfigError, match="letter A-Z or a-z, a digit, _ or -"):
            load_settings(config, Secrets(telegram_webhook_secret=bad))
    load_settings(config, Secrets(telegram_webhook_secret="Good_secret-123"))


# --- 6: one lock for the capital check and the start ----------------------------------


async def test_two_startpairs_at_once_never_take_more_than_the_capital(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        await chat.trading.control.stop("BTC/USDT")
        async with chat.trading.service.tick_lock:  # both arrive while a tick runs
            chat.emulator.say(TRADER, "/startpair ETHUSDT share=0.7")
            chat.emulator.say(ADMIN, "/startpair BTCUSDT share=0.7")  # another chat
            await chat.emulator.quiet(0.5)
        answers = (await chat.emulator.reply(TRADER)).text + (await chat.emulator.reply(ADMIN)).text
        assert sum(run.capital_share for run in chat.trading.service.runs()) == 0.7
        assert answers.count("Started") == 1
        assert "capital shares would add up to 140%" in answers


# --- 4: /sweep counts before it builds ------------------------------------------------


async def test_a_huge_sweep_is_refused_at_once_by_arithmetic(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        started = time.perf_counter()
        reply = await chat.ask(ADMIN, "/sweep BTC/USDT ema_cross stop_loss=0:0.5:0.0000002")
        assert time.perf_counter() - started < 1.0
        assert "2,500,001 combinations; at most 5,000 from chat" in reply
        reply = await chat.ask(
            ADMIN, "/sweep BTC/USDT ema_cross stop_loss=0:0.5:0.00000000001 fast=2:100:1 random=5"
        )
        assert "over 10^15 combinations" in reply or "at most 200,000" in reply
        assert chat.emulator.to(ADMIN)[-1].text == reply

"""Chat commands through the real python-telegram-bot client and the Bot API emulator: who
may run what, strangers, the audit trail, bad input, confirmations and /risk set."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from bot.alerts.outbox import AlertDispatcher
from bot.chat.requests import normalise_pair
from bot.core.domain import AlertPriority
from bot.core.errors import UserInputError
from handlers.command_table import COMMANDS
from handlers.delivery import chunks, plain
from tests.rigs.chat_rig import ADMIN, STRANGER, TRADER, VIEWER, chat_stack


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


def test_pairs_are_read_in_every_usual_spelling() -> None:
    for text in ("BTC/USDT", "BTCUSDT", "btc-usdt", "btc_usdt", " btcusdt "):
        assert normalise_pair(text, "USDT") == "BTC/USDT"
    assert normalise_pair("ethbtc", "USDT") == "ETH/BTC"
    with pytest.raises(UserInputError):
        normalise_pair("bitcoin please", "USDT")
    assert chunks("") == ["."]
    assert plain("<b>a &amp; b</b>") == "a & b"


def test_every_command_has_an_action() -> None:
    assert [name for name, c in COMMANDS.items() if name != "whoami" and c.run is None] == []


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

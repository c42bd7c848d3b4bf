"""A chat you can trust when it matters (issue 20): stale and out-of-order commands, floods,
a deaf start-up, late button answers, races, huge sweeps. Real PTB client, Bot API emulator."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.alerts.outbox import AlertDispatcher
from bot.app.config import load_settings
from bot.app.health_check import check_health
from bot.app.secret_values import Secrets
from bot.core.clock import SystemClock
from bot.core.errors import ConfigError
from bot.core.number_text import amount_text, price_text
from handlers.frontend import Backoff
from tests.doubles.telegram_emulator import Sent, TelegramEmulator
from tests.rigs.chat_rig import ADMIN, STRANGER, TRADER, VIEWER, Chat, chat_stack


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
        assert await guard.halted()  # halting is safe: a /halt never waits for a reading
        assert guard.limits.max_drawdown == 0.15
        # the /risk's first message read Telegram's clock, then pointed at its Confirm
        (halted,) = [m for m in chat.emulator.shown(ADMIN) if "halted" in m.text]
        (risk,) = [m for m in chat.emulator.shown(ADMIN) if "/risk" in m.text]
        assert "Trading halted" in halted.text  # "(asked 2 h ago)" if a lower bound was read
        assert risk.text.startswith("You sent /risk set max_drawdown 0.1 3 h ago; it was not")
        (pairs,) = chat.emulator.to(VIEWER)
        assert pairs.text.startswith("(asked 10 min ago) BTC/USDT running")
        assert chat.emulator.to(TRADER) == []  # Telegram dropped it after 24 hours
        assert [run.pair for run in chat.trading.service.runs()] == ["BTC/USDT"]
        chat.emulator.press(ADMIN, risk, _confirm(risk))  # a fresh Confirm does it now
        await chat.emulator.quiet(0.5)
        assert guard.limits.max_drawdown == 0.1
        entries = await chat.audit.latest(5)
        assert any("asked to confirm (sent 3 h ago)" in e.result for e in entries)


async def test_commands_from_one_chat_run_in_the_order_sent(tmp_path: Path) -> None:
    def sent_together(emulator: TelegramEmulator) -> None:
        emulator.say(TRADER, "/startpair ETHUSDT share=0.2")
        emulator.say(TRADER, "/stoppair ETHUSDT")
        emulator.say(TRADER, "/startpair ETHUSDT share=0.3")
        emulator.say(TRADER, "/pause ETHUSDT")

    async with chat_stack(tmp_path, before_start=sent_together) as chat:
        texts = await chat.answers(TRADER, 4)
        assert texts[0].startswith("Started ETH/USDT")
        assert texts[1].startswith("Stopped ETH/USDT")
        assert texts[2].startswith("Started ETH/USDT: ema_cross 1h, 30%")
        assert texts[3].startswith("Paused ETH/USDT")
        run = chat.trading.service.run_for("ETH/USDT")
        assert run is not None
        assert run.state.value == "paused"


async def test_a_chart_being_drawn_never_holds_up_the_chat_s_next_halt(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        for _ in range(100):
            await chat.trading.driver.step()
        chat.emulator.say(ADMIN, "/pnl all")  # a chart: drawn in another process, slowly
        chat.emulator.say(ADMIN, "/halt")
        first = await chat.reply(ADMIN, within=30)
        assert "Trading halted" in first.text
        assert (await chat.reply(ADMIN, after=1, within=60)).photo is not None


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


async def test_known_users_commands_run_side_by_side_when_sends_are_slow(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        chat.emulator.send_delay = 1.5  # each answer takes Telegram 1.5 s
        for user in (ADMIN, TRADER, VIEWER):
            chat.emulator.say(user, "/pairs")
        for user in (ADMIN, TRADER, VIEWER):  # none waits for another's connection
            assert "BTC/USDT" in (await chat.reply(user, within=4)).text


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
        deadline = time.perf_counter() + 30  # the flatten ends when a loaded machine lets it
        while time.perf_counter() < deadline:
            await dispatcher.drain()
            results = [m.text for m in chat.emulator.to(ADMIN) if "/flatten by" in m.text]
            if results:
                break
            await asyncio.sleep(0.1)
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
        notices = [a.text for a in await chat.alerts.pending() if a.kind == "chat_down"]
        assert notices[0].startswith("Commands cannot be received: Telegram start-up failed")
        assert notices[1:] == ["Commands are received again."]
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, chat.trading.clock)
        await dispatcher.drain()
        assert any("cannot be received" in m.text for m in chat.emulator.to(ADMIN))
        assert not any("cannot be received" in m.text for m in chat.emulator.to(VIEWER))
        assert chat.frontend.problem is None
        assert "chat commands" not in " ".join(await _health(chat))


async def test_a_configured_user_who_never_opened_the_bot_leaves_the_chat_working(
    tmp_path: Path,
) -> None:
    """Telegram refuses a per-chat command menu for a chat the bot has never seen (a user
    added to the config before writing to the bot privately): start-up skips that menu."""

    def unseen_trader(emulator: TelegramEmulator) -> None:
        emulator.strangers.add(TRADER)

    async with chat_stack(tmp_path, before_start=unseen_trader) as chat:
        assert "halted" in (await chat.ask(ADMIN, "/halt")).lower()
        assert f"chat:{TRADER}" not in chat.emulator.menus
        assert f"chat:{ADMIN}" in chat.emulator.menus
        assert "chat commands" not in " ".join(await _health(chat))


async def test_health_and_slash_health_say_when_commands_cannot_be_received(
    tmp_path: Path,
) -> None:
    def down(emulator: TelegramEmulator) -> None:
        emulator.failing = {"deleteWebhook": 10**6}  # getMe works, polling never starts

    async with chat_stack(
        tmp_path, before_start=down, connected=False, retry=Backoff(0.05, 0.1)
    ) as chat:
        await asyncio.sleep(0.5)
        problems = await _health(chat)  # what `pairpilot health` reads, from the database
        assert "chat commands cannot be received: Telegram start-up failed" in problems[-1]
        chat.emulator.say(ADMIN, "/status")
        await chat.emulator.quiet(0.3)
        assert chat.emulator.to(ADMIN) == []  # deaf meanwhile
        chat.emulator.failing = {}
        await asyncio.wait_for(chat.frontend.running.wait(), 5)
        assert "paper" in (await chat.reply(ADMIN)).text  # the queued one, answered
        assert not any("chat" in p for p in await _health(chat))
        assert "chat commands: received" in await chat.ask(VIEWER, "/health")


async def test_polling_that_keeps_failing_is_reported_and_so_is_its_recovery(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        chat.emulator.failing = {"getUpdates": 3}  # e.g. another instance polls: 409s
        for _ in range(100):
            if chat.frontend.problem is not None:
                break
            await asyncio.sleep(0.1)
        assert "getUpdates failed 3 times in a row" in (chat.frontend.problem or "")
        await asyncio.sleep(0.1)
        assert any("getUpdates failed" in p for p in await _health(chat))
        chat.emulator.say(ADMIN, "/status")
        assert "paper" in (await chat.reply(ADMIN, within=10)).text  # it came through
        for _ in range(100):
            if chat.frontend.problem is None:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.1)
        assert not any("chat" in p for p in await _health(chat))
        texts = [a.text for a in await chat.alerts.pending() if a.kind == "chat_down"]
        assert texts[0].startswith("Commands cannot be received: getUpdates failed")
        assert texts[1] == "Commands are received again."


async def _health(chat: Chat) -> list[str]:
    """The problems `pairpilot health` reports, read from the database as it does."""
    row = await chat.db.fetch_one("PRAGMA database_list")  # (seq, name, file) of "main"
    assert row is not None
    health = await check_health(
        chat.db,
        database_path=Path(row[2]),
        now=SystemClock().now(),
        max_alert_age=timedelta(hours=1),
    )
    return [check.detail for check in health.problems]


def test_a_webhook_secret_telegram_would_refuse_is_refused_by_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[telegram.webhook]\nurl = "https://bot.example.com/telegram"\n')
    for bad in ("has space", "semi;colon", "é", "x" * 257, "secret\n"):
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
        answers = (await chat.reply(TRADER)).text + (await chat.reply(ADMIN)).text
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
        reply = await chat.ask(ADMIN, "/sweep BTC/USDT ema_cross stop_loss=0:inf:0.1")
        assert "must be finite numbers" in reply
        assert chat.emulator.to(ADMIN)[-1].text == reply


# --- 7: critical alerts cannot be switched off --------------------------------------------


async def test_critical_alerts_can_be_quieter_never_off_and_every_kind_is_listed(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        for kind in ("exchange_error", "reconciliation_drift", "order_rejected", "risk_resume"):
            reply = await chat.ask(VIEWER, f"/alerts {kind} off")
            assert f"{kind} alerts cannot be switched off; make them silent" in reply
        assert "order_rejected: silent" in await chat.ask(VIEWER, "/alerts order_rejected silent")
        assert "dust: off" in await chat.ask(VIEWER, "/alerts dust off")
        listed = await chat.ask(VIEWER, "/alerts")
        for kind in _pushed_kinds():
            assert f"{kind}: " in listed, kind


def _pushed_kinds() -> set[str]:
    """Every alert kind the code pushes, read from the source."""
    pushed = re.compile(r"""(?:push\(\s*|notify\(\s*|OnceAlerts\([^)]*?)"([a-z_]+)",""")
    kinds = set()
    for folder in ("bot", "handlers"):
        for path in (Path(__file__).parents[2] / folder).rglob("*.py"):
            kinds |= set(pushed.findall(path.read_text(encoding="utf-8")))
    assert {"trade", "dust", "risk_halt", "unauthorised", "chat_down"} <= kinds
    return kinds


# --- 9: finite risk limits; switching a protection off needs a Confirm ----------------------


async def test_risk_limits_are_finite_and_switching_a_protection_off_needs_a_confirm(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        guard = chat.trading.engine.guard
        for value in ("inf", "1e309", "nan", "-inf"):
            reply = await chat.ask(ADMIN, f"/risk set min_order_value {value}")
            assert "expected a finite number" in reply, value
        assert "above the equity" in await chat.ask(ADMIN, "/risk set min_order_value 1e12")
        assert guard.limits.min_order_value == 10.0
        loosen = await chat.sent_back(ADMIN, "/risk set max_drawdown 0.999999")
        assert "loosen the drawdown halt to 1 (100%)" in loosen.text
        assert guard.limits.max_drawdown == 0.15  # waits for its Confirm
        assert "0.1 from now on" in await chat.ask(ADMIN, "/risk set max_drawdown 0.1")  # tighter
        question = await chat.sent_back(ADMIN, "/risk set max_drawdown 0")
        assert "switch the drawdown halt off" in question.text
        assert guard.limits.max_drawdown == 0.1  # not yet
        chat.emulator.press(ADMIN, question, _confirm(question))
        await chat.emulator.quiet(0.5)
        assert guard.limits.max_drawdown == 0
        (alert,) = [a for a in await chat.alerts.pending() if a.kind == "risk_change"]
        assert "drawdown halt is off" in alert.text
        audit = await chat.ask(ADMIN, "/audit 3")
        assert "<b>" not in audit  # results are stored as plain text


# --- 10: one pair rule for config and chat --------------------------------------------


async def test_a_pair_not_quoted_in_the_books_currency_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        for pair in ("ETHBTC", "BTC/USDC", "eth-eur"):
            reply = await chat.ask(TRADER, f"/startpair {pair}")
            assert "is not quoted in USDT (the key quote)" in reply, reply
        assert [run.pair for run in chat.trading.service.runs()] == ["BTC/USDT"]


# --- 11: the smaller ones -------------------------------------------------------------------


def test_prices_and_amounts_read_well_at_any_size() -> None:
    assert price_text(0.00001234) == "0.00001234"
    assert price_text(0.004567) == "0.004567"
    assert price_text(64_123.456) == "64,123.46"
    assert amount_text(1_234_567.0) == "1,234,567"
    assert amount_text(0.00012) == "0.00012"
    assert "e" not in amount_text(1e-7) + amount_text(1.2e9)


async def test_forwarded_edited_and_other_bots_commands_never_run(tmp_path: Path) -> None:
    def earlier(emulator: TelegramEmulator) -> None:  # an edit made before the bot started
        first = emulator.say(ADMIN, "/status")
        emulator.edit(ADMIN, first, "/halt")

    async with chat_stack(tmp_path, before_start=earlier) as chat:
        await chat.reply(ADMIN)  # the /status
        await chat.emulator.quiet(0.5)
        guard = chat.trading.engine.guard
        assert len(chat.emulator.to(ADMIN)) == 1
        assert not await guard.halted()  # the edit into /halt did not run
        chat.emulator.say(ADMIN, "/halt", forwarded_from=STRANGER)
        forwarded = await chat.reply(ADMIN, after=1)
        assert forwarded.text == "⚠️ A forwarded command is not run; send it yourself."
        assert not await guard.halted()
        chat.emulator.say(ADMIN, "/halt@otherbot", chat_id=-500)
        chat.emulator.say(ADMIN, "/nosuch@otherbot", chat_id=-500)
        await chat.emulator.quiet(0.5)
        assert chat.emulator.to(-500) == []  # addressed to another bot: silence
        assert not await guard.halted()
        assert "Trading halted" in await chat.ask(ADMIN, "/halt@pairpilot_bot", chat_id=-500)


async def test_refusals_are_audited_and_reads_are_not(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        await chat.ask(STRANGER, "/whoami")
        await chat.ask(VIEWER, "/nosuch")
        for _ in range(5):
            await chat.ask(VIEWER, "/status")
        question = await chat.sent_back(ADMIN, "/flatten")
        chat.emulator.press(TRADER, question, _confirm(question))  # not theirs
        await chat.emulator.quiet(0.5)
        entries = {(e.actor, e.command, e.result) for e in await chat.audit.latest(20)}
        assert (str(STRANGER), "whoami", "refused: not in the config") in entries
        assert (str(VIEWER), "nosuch", "refused: unknown command") in entries
        assert (str(TRADER), "button", "refused: not theirs or no longer valid") in entries
        assert not any(command == "status" for _, command, _ in entries)


async def test_long_research_ends_with_its_outcome_and_stops_at_shutdown(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        before = len(chat.emulator.to(TRADER))
        chat.emulator.say(TRADER, "/backtest DOGE/USDT ema_cross")
        progress = await chat.reply(TRADER, after=before)
        await chat.emulator.quiet(0.5)
        assert "no replay data" in progress.text  # not left at "loading candles…"
        long = await chat.ask(TRADER, "/pause " + "x<" * 3000)
        assert len(long) < 300  # the echo of the input is cut: one short message
        assert long.startswith("⚠️ 'x<x<")
        for _ in range(800):  # candles to backtest on
            await chat.trading.driver.step()
        before = len(chat.emulator.to(TRADER))
        chat.emulator.say(TRADER, "/backtest BTC/USDT ema_cross 1h 30")
        progress = await chat.reply(TRADER, after=before)
        chat.emulator.delete(progress)  # the user deletes the progress message
        for _ in range(300):
            if any(m.photo for m in chat.emulator.to(TRADER)):
                break
            await chat.emulator.quiet(0.1)
        assert any(m.photo for m in chat.emulator.to(TRADER))  # the backtest went on
        chat.emulator.say(ADMIN, "/sweep BTC/USDT ema_cross 1h 90 fast=5:20:1 slow=30:60:2")
        assert (await chat.reply(ADMIN)).text.startswith("Sweep BTC/USDT")  # running
        started = time.perf_counter()
        await chat.frontend.stop()  # the sweep is cancelled, not waited for
        assert time.perf_counter() - started < 3


# --- 12: from a phone -----------------------------------------------------------------------


async def test_replies_fit_a_phone_with_units_and_zones(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        for _ in range(300):
            await chat.trading.driver.step()
        for text in (
            "/help",
            "/help sweep",
            "/help startpair",
            "/strategies",
            "/risk",
            "/status",
            "/pairs",
            "/trades",
            "/orders",
            "/alerts",
            "/audit",
        ):
            reply = await chat.ask(ADMIN, text)
            longest = max(reply.splitlines(), key=len)
            assert len(longest) <= 100, (text, longest)
        risk = await chat.ask(VIEWER, "/risk")
        assert "max_drawdown = 0.15 (15%)" in risk
        assert "min_order_value = 10 (10 USDT)" in risk
        assert "times UTC" in await chat.ask(VIEWER, "/trades")


async def test_a_confirm_lasts_30_real_seconds_however_fast_a_replay_runs(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        assert "Trading halted" in await chat.ask(ADMIN, "/halt")
        question = await chat.sent_back(ADMIN, "/resume_trading")
        chat.trading.clock.advance(timedelta(hours=2))  # a replay at 3,600x: 2 s of real time
        chat.emulator.press(ADMIN, question, _confirm(question))
        await chat.emulator.quiet(0.5)
        assert not await chat.trading.engine.guard.halted()
        assert question.text.startswith("Confirmed")


async def test_halt_never_waits_behind_a_command_stuck_on_a_slow_tick(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        lock = chat.trading.service.tick_lock
        await lock.acquire()  # a tick stuck in a slow exchange call
        try:
            chat.emulator.say(ADMIN, "/stoppair BTCUSDT")
            await asyncio.sleep(0.2)
            chat.emulator.say(ADMIN, "/halt")
            # the /halt's reply, not the stop's (whose first message, if any, waits)
            for _ in range(500):
                if any("Trading halted" in m.text for m in chat.emulator.to(ADMIN)):
                    break
                await asyncio.sleep(0.01)
            assert any("Trading halted" in m.text for m in chat.emulator.to(ADMIN))
            assert await chat.trading.engine.guard.halted()
        finally:
            lock.release()


async def test_a_confirm_press_runs_after_the_commands_its_chat_sent_before_it(
    tmp_path: Path,
) -> None:
    """Review (round 2 rerun): the admin typed /pause ETHUSDT while a tick held the lock,
    then confirmed an earlier /resume ETHUSDT prompt; the press jumped the chat's line, so
    the resume ran first and the queued pause after it: the admin's last word lost. The
    button is still answered at once."""
    async with chat_stack(tmp_path) as chat:
        assert "Started" in await chat.ask(ADMIN, "/startpair ETHUSDT share=0.2")
        assert "Paused" in await chat.ask(ADMIN, "/pause ETHUSDT")
        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/resume ETHUSDT", ago=120)  # sent while the bot restarted
        question = await chat.reply(ADMIN, after=before)
        assert question.reply_markup, question.text
        lock = chat.trading.service.tick_lock
        await lock.acquire()  # a tick stuck in a slow exchange call
        try:
            chat.emulator.say(ADMIN, "/stoppair BTCUSDT")  # waits for the tick
            chat.emulator.say(ADMIN, "/pause ETHUSDT")  # typed next: waits its turn
            await asyncio.sleep(0.5)
            answered = len(chat.emulator.answered_callbacks)
            chat.emulator.press(ADMIN, question, _confirm(question))  # the last word
            for _ in range(200):
                if len(chat.emulator.answered_callbacks) > answered:
                    break
                await asyncio.sleep(0.01)
            assert len(chat.emulator.answered_callbacks) > answered  # answered at once
        finally:
            lock.release()
        for _ in range(300):
            if any("Resumed ETH/USDT" in m.text for m in chat.emulator.to(ADMIN)):
                break
            await asyncio.sleep(0.02)
        texts = [m.text for m in chat.emulator.to(ADMIN)]
        assert texts[-3].startswith("Stopped BTC/USDT"), texts
        assert "ETH/USDT is paused" in texts[-2], texts  # the /pause, in its place
        assert texts[-1] == "Resumed ETH/USDT.", texts
        states = {run.pair: run.state.name for run in chat.trading.service.runs()}
        assert states["ETH/USDT"] == "RUNNING"


async def test_a_refused_button_press_never_lets_a_later_command_overtake(tmp_path: Path) -> None:
    """Review round 5 F1: the admin types /resume ETHUSDT (its "⏳" send is slow), taps a
    dead button (refused at once), then types /pause ETHUSDT. The refused press must not
    end the line's place of the /resume still running: the /pause runs after it."""
    async with chat_stack(tmp_path) as chat:
        assert "Started" in await chat.ask(ADMIN, "/startpair ETHUSDT share=0.2")
        old = await chat.sent_back(ADMIN, "/pause ETHUSDT")
        assert "Paused" in old.text, old.text
        chat.wall.advance(timedelta(seconds=601))  # no recent reading: /resume sends a ⏳
        chat.emulator.slow_texts["⏳ /resume"] = 2.0
        chat.emulator.say(ADMIN, "/resume ETHUSDT")
        await asyncio.sleep(0.4)
        chat.emulator.press(ADMIN, old, "ok:0123456789ab")  # a dead button: refused
        await asyncio.sleep(0.3)
        chat.emulator.say(ADMIN, "/pause ETHUSDT")
        await chat.emulator.quiet(4)
        texts = [m.text for m in chat.emulator.shown(ADMIN)]
        assert texts[-2] == "Resumed ETH/USDT.", texts
        states = {run.pair: run.state.name for run in chat.trading.service.runs()}
        assert states["ETH/USDT"] == "PAUSED", texts


async def test_a_halt_sent_after_confirming_a_resume_ends_halted(tmp_path: Path) -> None:
    """Review F11: the confirmed resume must not run after a /halt typed later, even when
    the "Confirmed" edit is slow (Telegram slow, or the group's rate limit)."""
    async with chat_stack(tmp_path) as chat:
        guard = chat.trading.engine.guard
        assert "halted" in (await chat.ask(ADMIN, "/halt"))
        question = await chat.sent_back(ADMIN, "/resume_trading")
        chat.emulator.call_delay["editMessageText"] = 1.0
        chat.emulator.press(ADMIN, question, _confirm(question))
        await asyncio.sleep(0.3)
        chat.emulator.say(ADMIN, "/halt")
        await asyncio.sleep(2.5)
        assert await guard.halted()
        assert "already halted" not in chat.emulator.to(ADMIN)[-1].text


async def _confirmed_ran(chat: Chat, command: str) -> str:
    """The audited result of a confirmed ``command`` (its result goes through the outbox)."""
    for _ in range(300):
        for entry in await chat.audit.latest(50):
            if entry.command == command and entry.arguments[:1] == ["confirmed"]:
                return entry.result
        await asyncio.sleep(0.05)
    raise AssertionError(f"/{command} was not run")


async def test_a_resume_prompt_asked_before_a_flatten_cannot_lift_its_halt(tmp_path: Path) -> None:
    """Review round 5 F2: /resume_trading asked, then /flatten asked and confirmed; the older
    resume prompt pressed after it is refused, as after a /halt: the kill switch wins."""
    async with chat_stack(tmp_path) as chat:
        guard = chat.trading.engine.guard
        assert "halted" in (await chat.ask(ADMIN, "/halt")).lower()
        resume = await chat.sent_back(ADMIN, "/resume_trading")
        flatten = await chat.sent_back(ADMIN, "/flatten")
        chat.emulator.press(ADMIN, flatten, _confirm(flatten))
        await _confirmed_ran(chat, "flatten")
        chat.emulator.press(ADMIN, resume, _confirm(resume))
        assert await _confirmed_ran(chat, "resume_trading") == "refused: a later halt"
        assert await guard.halted() is not None


async def test_a_resume_prompt_asked_before_the_risk_limits_halt_cannot_lift_it(
    tmp_path: Path,
) -> None:
    """Review round 6 F3: only chat halts voided a resume prompt. Asked while trading ran,
    then a tick trips the max drawdown (the guard halts by itself), then the older Confirm
    is pressed: refused, trading stays halted (it lifted the drawdown halt)."""
    async with chat_stack(tmp_path) as chat:
        guard = chat.trading.engine.guard
        resume = await chat.sent_back(ADMIN, "/resume_trading")
        now = chat.wall.now()
        await guard.mark(10_000.0, now)
        await guard.mark(1_000.0, now)  # a 90% drawdown: the guard halts
        assert await guard.halted() is not None
        chat.emulator.press(ADMIN, resume, _confirm(resume))
        assert await _confirmed_ran(chat, "resume_trading") == "refused: a later halt"
        assert await guard.halted() is not None


async def test_a_flatten_pressed_after_a_resume_press_ends_halted(tmp_path: Path) -> None:
    """Review round 5 F2: halted; a /stoppair stuck on a tick; the admin confirms
    /resume_trading (it waits its turn), then /flatten (it jumps the line). The kill switch
    pressed last wins: trading ends halted."""
    async with chat_stack(tmp_path) as chat:
        guard = chat.trading.engine.guard
        assert "halted" in (await chat.ask(ADMIN, "/halt")).lower()
        resume = await chat.sent_back(ADMIN, "/resume_trading")
        flatten = await chat.sent_back(ADMIN, "/flatten")
        lock = chat.trading.service.tick_lock
        await lock.acquire()
        try:
            chat.emulator.say(ADMIN, "/stoppair BTCUSDT")
            await asyncio.sleep(0.3)
            chat.emulator.press(ADMIN, resume, _confirm(resume))
            await asyncio.sleep(0.3)
            chat.emulator.press(ADMIN, flatten, _confirm(flatten))
            await asyncio.sleep(0.5)
        finally:
            lock.release()
        assert await _confirmed_ran(chat, "resume_trading") == "refused: a later halt"
        assert await guard.halted() is not None


async def test_a_401_on_get_updates_is_reported_at_once_and_polling_comes_back(
    tmp_path: Path,
) -> None:
    """Review F10: PTB's polling loop gives up at the first InvalidToken; it is reported at
    once, and polling is started again (with backoff) so the bot hears once the token works."""
    async with chat_stack(tmp_path) as chat:
        real = chat.emulator.token
        chat.emulator.token = "revoked"  # every call now 401 Unauthorized
        await asyncio.sleep(6)
        assert chat.frontend.problem is not None
        chat.emulator.token = real
        chat.emulator.say(ADMIN, "/status")
        await asyncio.sleep(4)
        assert chat.frontend.problem is None
        assert any("BTC/USDT" in sent.text for sent in chat.emulator.to(ADMIN))


async def test_shutdown_does_not_wait_for_known_users_replies_stuck_in_a_group(
    tmp_path: Path,
) -> None:
    """Review F5: replies waiting minutes for a group's rate-limit slot (20 a minute) are
    dropped after a bound at shutdown, well within systemd's TimeoutStopSec=20."""
    async with chat_stack(tmp_path) as chat:
        for _ in range(30):
            chat.emulator.say(VIEWER, "/pairs", chat_id=-500)
        await chat.emulator.quiet(1.0)
        started = time.perf_counter()
        await asyncio.wait_for(chat.frontend.stop(), 20)
        assert time.perf_counter() - started < 12


async def test_a_viewers_flood_in_a_group_does_not_delay_the_admins_halt(tmp_path: Path) -> None:
    """Review F5: 25 replies waiting for the group's rate limit do not hold up a /halt."""
    async with chat_stack(tmp_path) as chat:
        for _ in range(25):
            chat.emulator.say(VIEWER, "/status", chat_id=-500)
        await chat.emulator.quiet(0.3)
        chat.emulator.say(ADMIN, "/halt", chat_id=-500)
        await asyncio.sleep(3)  # behind the flood it would wait ~60 s for the 21st+ replies
        assert await chat.trading.engine.guard.halted()

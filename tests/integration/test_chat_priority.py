"""Admins first, ages judged at arrival and against Telegram's clock, Confirms that expire,
a deaf webhook noticed (issue 20, review F5-F9). Real PTB client, Bot API emulator."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from telegram import Update

from bot.config import WebhookSettings
from handlers.ordering import STRANGERS_AT_ONCE, STRANGERS_PER_WINDOW
from tests.chat_rig import ADMIN, STRANGER, VIEWER, chat_stack
from tests.telegram_emulator import Sent, TelegramEmulator

GROUP = -500


async def _first(sent: list[Sent], within: float, has: str = "") -> Sent | None:
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        found = next((m for m in sent if has in m.text), None)
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    return None


async def test_an_admins_commands_in_a_group_go_before_a_viewers_flood(tmp_path: Path) -> None:
    """Review F5: 25 /status from a viewer fill the group's minute (20 messages); the
    admin's /status and /flatten there are answered at once, not a minute later."""
    async with chat_stack(tmp_path) as chat:
        for _ in range(25):
            chat.emulator.say(VIEWER, "/status", chat_id=GROUP)
        await chat.emulator.quiet(0.5)
        chat.emulator.say(ADMIN, "/flatten", chat_id=GROUP)
        prompt = await _first(chat.emulator.sent, 3, "Confirm within")
        assert prompt is not None
        assert prompt.chat_id == GROUP
        before = len(chat.emulator.to(GROUP))
        chat.emulator.say(ADMIN, "/pairs", chat_id=GROUP)
        reply = await chat.emulator.reply(GROUP, after=before, within=3)
        assert "BTC/USDT running" in reply.text, reply.text
        assert chat.emulator.throttled == 0  # within Telegram's limit all the same


async def test_a_commands_age_is_judged_when_it_arrived_not_when_its_turn_came(
    tmp_path: Path,
) -> None:
    """Review F5: a command waiting its turn behind a slow one is not "old" for that."""
    async with chat_stack(tmp_path) as chat:
        lock = chat.trading.service.tick_lock
        await lock.acquire()  # a tick stuck in a slow exchange call
        try:
            chat.emulator.say(ADMIN, "/stoppair BTCUSDT")
            chat.emulator.say(ADMIN, "/startpair ETHUSDT share=0.2")
            await chat.emulator.quiet(0.5)
            chat.wall.advance(timedelta(seconds=120))  # two minutes in the slow tick
        finally:
            lock.release()
        await chat.emulator.quiet(1.0)
        texts = [m.text for m in chat.emulator.to(ADMIN)]
        assert not any("it was not run then" in text for text in texts), texts
        assert [run.pair for run in chat.trading.service.runs()] == ["ETH/USDT"]


def _host_off(seconds: float) -> Callable[[TelegramEmulator], object]:
    def skew(emulator: TelegramEmulator) -> None:
        emulator.clock_ahead = -seconds  # the host's clock is ``seconds`` ahead of Telegram's

    return skew


async def test_a_fresh_halt_runs_on_a_host_whose_clock_is_fast(tmp_path: Path) -> None:
    """Review F8: the host's clock 90 s ahead of Telegram's; a /halt typed now is fresh by
    Telegram's clock: it runs, and the admins hear of the skew."""
    async with chat_stack(tmp_path, before_start=_host_off(90)) as chat:
        assert "Trading halted" in await chat.ask(ADMIN, "/halt")
        assert await chat.trading.engine.guard.halted()
        (skew,) = [a for a in await chat.alerts.pending() if a.kind == "clock_skew"]
        assert "90 s ahead of Telegram's" in skew.text


async def test_an_old_command_is_held_on_a_host_whose_clock_is_slow(tmp_path: Path) -> None:
    """Review F8: the host's clock 90 s behind; a /halt sent 100 s ago looked 10 s old."""

    def late(emulator: TelegramEmulator) -> None:
        _host_off(-90)(emulator)
        emulator.say(ADMIN, "/halt", ago=100)

    async with chat_stack(tmp_path, before_start=late) as chat:
        question = await chat.emulator.reply(ADMIN)
        assert question.text.startswith("You sent /halt 1 min ago; it was not run then.")
        assert not await chat.trading.engine.guard.halted()
        (skew,) = [a for a in await chat.alerts.pending() if a.kind == "clock_skew"]
        assert "90 s behind Telegram's" in skew.text


async def test_an_unanswered_confirm_expires_and_its_prompt_says_so(tmp_path: Path) -> None:
    """Review F9: a Confirm nobody pressed is forgotten at its expiry; the prompt says it
    expired and loses its buttons; the old button does nothing."""
    async with chat_stack(tmp_path, confirm_seconds=0.5) as chat:
        question = await chat.sent_back(ADMIN, "/flatten")
        button = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        assert "Confirm within 0.5 s" in question.text
        await asyncio.sleep(1.5)
        assert question.text == "Expired: send /flatten again."
        assert question.reply_markup is None
        chat.emulator.press(ADMIN, question, button)
        await chat.emulator.quiet(0.5)
        assert chat.emulator.answered_callbacks[-1] == (
            "This button is not yours or no longer valid.")  # fmt: skip
        assert not await chat.trading.engine.guard.halted()


async def test_a_confirmed_flatten_in_a_flooded_group_runs_at_once(tmp_path: Path) -> None:
    """Review F7: the group's minute used up by a viewer's flood; the admin's confirmed
    /flatten there sells at once, whatever its "Confirmed" edit waits for."""
    async with chat_stack(tmp_path) as chat:
        for _ in range(500):
            await chat.trading.driver.step()
            if chat.trading.engine.portfolio.positions():
                break
        assert chat.trading.engine.portfolio.positions()
        chat.emulator.say(ADMIN, "/flatten", chat_id=GROUP)
        question = await _first(chat.emulator.sent, 3, "Confirm within")
        assert question is not None
        for _ in range(25):
            chat.emulator.say(VIEWER, "/status", chat_id=GROUP)
        for _ in range(20):  # the admin's own places in the minute go too
            chat.emulator.say(ADMIN, "/pairs", chat_id=GROUP)
        await chat.emulator.reply(GROUP, after=19, within=10)  # the group's minute is used up
        chat.emulator.press(ADMIN, question, question.reply_markup["inline_keyboard"][0][0][
            "callback_data"])  # fmt: skip
        for _ in range(60):  # 3 s
            if not chat.trading.engine.portfolio.positions():
                break
            await asyncio.sleep(0.05)
        assert not chat.trading.engine.portfolio.positions()
        assert await chat.trading.engine.guard.halted()


def _hook() -> WebhookSettings:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return WebhookSettings(url=f"http://127.0.0.1:{port}/hook", port=port)


async def test_a_webhook_telegram_cannot_reach_is_noticed_and_so_is_its_return(
    tmp_path: Path,
) -> None:
    """Review F6: the proxy in front of the webhook goes down: Telegram keeps the updates
    and says why in getWebhookInfo; the admins hear commands cannot be received, and that
    clears once the updates get through again."""
    hook = _hook()
    async with chat_stack(tmp_path, webhook=hook, webhook_secret="s3cret",
                          webhook_check=0.3) as chat:  # fmt: skip
        assert "Equity" in await chat.ask(ADMIN, "/status")
        chat.wall.advance(timedelta(seconds=5))
        chat.emulator.webhook_unreachable = True
        chat.emulator.say(ADMIN, "/halt")
        await asyncio.sleep(1.5)
        assert chat.frontend.problem is not None
        assert "Connection refused" in chat.frontend.problem
        assert "1 update(s) wait" in chat.frontend.problem
        (down,) = [a for a in await chat.alerts.pending() if a.kind == "chat_down"]
        assert "Commands cannot be received" in down.text
        assert not await chat.trading.engine.guard.halted()
        chat.emulator.webhook_unreachable = False
        chat.wall.advance(timedelta(seconds=5))
        chat.emulator.say(ADMIN, "/pairs")  # Telegram tries again: both get through
        await asyncio.sleep(1.5)
        assert chat.frontend.problem is None
        assert await chat.trading.engine.guard.halted()
        assert "received again" in (await chat.alerts.pending())[-1].text


async def test_strangers_posted_to_the_webhook_are_dropped_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review F6: in webhook mode, as in polling, a stranger's flood is triaged on the raw
    JSON: only the few within their budget are parsed; the admin is answered all the same."""
    parsed: list[int] = []
    read = Update.de_json

    def counted(data: dict[str, object], bot: object) -> Update:
        parsed.append(int(str(data["update_id"])))
        return read(data, bot)  # type: ignore[arg-type]

    monkeypatch.setattr(Update, "de_json", counted)
    async with chat_stack(tmp_path, webhook=_hook(), webhook_secret="s3cret") as chat:
        for index in range(100):
            chat.emulator.say(STRANGER + index, "/whoami", chat_id=GROUP - index)
        assert "Equity" in await chat.ask(ADMIN, "/status")
        await chat.emulator.delivered()
        assert len(parsed) <= 1 + STRANGERS_AT_ONCE + STRANGERS_PER_WINDOW
        assert len(chat.emulator.webhook_pending) == 0  # every post was taken (200)

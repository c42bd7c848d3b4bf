"""Admins first, ages judged at arrival and against Telegram's clock, Confirms that expire,
a deaf webhook noticed (issue 20, review F5-F9). Real PTB client, Bot API emulator."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from telegram import Update

from bot.app.config import WebhookSettings
from handlers.ordering import STRANGERS_AT_ONCE, STRANGERS_PER_WINDOW
from tests.doubles.telegram_emulator import Sent, TelegramEmulator, post_update
from tests.rigs.chat_rig import ADMIN, STRANGER, VIEWER, chat_stack

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
        chat.emulator.say(ADMIN, "/pairs", chat_id=GROUP)
        # the admin's own reply (review F20: viewers' allowed replies may still be going out)
        assert await _first(chat.emulator.sent, 3, "BTC/USDT running") is not None
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


async def _skew_alert(chat: Any) -> Any:
    """The one clock_skew alert, once the reply's answer (a /halt waits for no reading of
    Telegram's clock: its reply is the first) has been read."""
    for _ in range(40):
        skews = [a for a in await chat.alerts.pending() if a.kind == "clock_skew"]
        if skews:
            break
        await asyncio.sleep(0.05)
    (skew,) = skews
    return skew


@pytest.mark.parametrize("fast", [90, 300])
async def test_a_fresh_halt_runs_on_a_host_whose_clock_is_fast(tmp_path: Path, fast: int) -> None:
    """Review F8: the host's clock 90 s ahead of Telegram's; a /halt typed now is fresh by
    Telegram's clock: it runs, and the admins hear of the skew. Round 3 F5: 300 s too (it
    was "5 min old" when a large offset was not trusted)."""
    async with chat_stack(tmp_path, before_start=_host_off(fast)) as chat:
        assert "Trading halted" in await chat.ask(ADMIN, "/halt")
        assert await chat.trading.engine.guard.halted()
        skew = await _skew_alert(chat)
        assert f"{fast} s ahead of Telegram's" in skew.text


async def test_an_old_command_is_held_on_a_host_whose_clock_is_slow(tmp_path: Path) -> None:
    """Review F8: the host's clock 90 s behind; a /halt sent 100 s ago looked 10 s old (a
    /stoppair now: a /halt with no reading of Telegram's clock runs, halting is safe)."""

    def late(emulator: TelegramEmulator) -> None:
        _host_off(-90)(emulator)
        emulator.say(ADMIN, "/stoppair BTCUSDT", ago=100)

    async with chat_stack(tmp_path, before_start=late) as chat:
        question = await chat.reply(ADMIN)
        assert question.text.startswith("You sent /stoppair BTCUSDT 1 min ago; it was not run")
        assert [run.pair for run in chat.trading.service.runs()] == ["BTC/USDT"]
        skew = await _skew_alert(chat)
        assert "90 s behind Telegram's" in skew.text


def _dated(header: Callable[[float], str]) -> Callable[[TelegramEmulator], object]:
    def lie(emulator: TelegramEmulator) -> None:
        emulator.date_header = header  # a proxy or self-hosted Bot API server writes the Date

    return lie


async def test_an_out_of_range_date_header_is_ignored_and_a_halt_runs(tmp_path: Path) -> None:
    """Review F17: ``Date: ... 9999`` made every command raise OverflowError, /halt unrun."""
    async with chat_stack(
        tmp_path, before_start=_dated(lambda now: "Fri, 31 Dec 9999 23:59:59 GMT")
    ) as chat:
        assert "Trading halted" in await chat.ask(ADMIN, "/halt")
        assert await chat.trading.engine.guard.halted()
        assert abs(chat.frontend.telegram_clock.offset) < 2  # read from the reply's date


async def test_a_date_header_minutes_off_is_told_and_does_not_refuse_a_fresh_halt(
    tmp_path: Path,
) -> None:
    """Review F17, round 3 F4: a Date 5 min ahead turned a fresh /halt into "sent 5 min ago".
    Telegram's own date of the bot's first message contradicts it: it is told to the admins
    as the Date's fault (not the host's clock), and ignored."""
    async with chat_stack(
        tmp_path, before_start=_dated(lambda now: formatdate(now + 300, usegmt=True))
    ) as chat:
        assert "Trading halted" in await chat.ask(ADMIN, "/halt")
        assert await chat.trading.engine.guard.halted()
        skew = await _skew_alert(chat)
        assert "Date header disagrees with Telegram's message dates" in skew.text


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
            "This button is not yours or no longer valid."
        )
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
        await chat.reply(GROUP, after=19, within=10)  # the group's minute is used up
        chat.emulator.press(
            ADMIN, question, question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        )
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
    async with chat_stack(
        tmp_path, webhook=hook, webhook_secret="s3cret", webhook_check=0.3
    ) as chat:
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


def _command(update_id: int, text: str, date: float) -> dict[str, object]:
    """A raw update as Telegram posts it: the admin's command in their private chat."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(date),
            "text": text,
            "chat": {"id": ADMIN, "type": "private"},
            "from": {"id": ADMIN, "is_bot": False, "first_name": "a"},
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
        },
    }


async def test_the_webhook_drops_repeated_updates_and_restores_their_order(
    tmp_path: Path,
) -> None:
    """Review F13: Telegram's webhook re-posts an update whose 200 it missed and may post
    over parallel connections: a repeated update_id ran again, a later one ran first."""
    hook = _hook()
    async with chat_stack(tmp_path, webhook=hook, webhook_secret="s3cret") as chat:
        now = chat.emulator.now()
        start = _command(9001, "/startpair ETHUSDT share=0.2", now)
        stop = _command(9002, "/stoppair ETHUSDT", now)
        assert await post_update(hook.url, "s3cret", start) == 200
        await chat.answers(ADMIN, 1)
        assert await post_update(hook.url, "s3cret", stop) == 200
        await chat.answers(ADMIN, 2)
        assert await post_update(hook.url, "s3cret", start) == 200  # Telegram's retry
        await chat.emulator.quiet(1.0)
        assert "ETH/USDT" not in [run.pair for run in chat.trading.service.runs()]
        assert len(chat.emulator.shown(ADMIN)) == 2
        again = _command(9004, "/startpair ETHUSDT share=0.2", now)
        last = _command(9005, "/stoppair ETHUSDT", now)
        assert await post_update(hook.url, "s3cret", last) == 200  # 9005 lands first
        assert await post_update(hook.url, "s3cret", again) == 200
        await chat.emulator.quiet(2.0)  # 9003 never comes: given up on after a second
        texts = [m.text for m in chat.emulator.shown(ADMIN)][2:]
        assert texts[0].startswith("Started ETH/USDT"), texts
        assert texts[1].startswith("Stopped"), texts
        assert "ETH/USDT" not in [run.pair for run in chat.trading.service.runs()]
        assert chat.emulator.webhook_settings["max_connections"] == 1


async def test_a_group_s_429_after_a_restart_does_not_hold_up_an_admin_s_private_reply(
    tmp_path: Path,
) -> None:
    """Review F14: after a restart Telegram still counts the group's minute, ours is empty:
    the first group send met 429 and PTB's limiter paused every request, admins' included."""

    def previous_life(emulator: TelegramEmulator) -> None:
        # the previous process sent the group's 20 messages 25 s before the restart
        emulator.group_sent_before(GROUP, 20, seconds_ago=25)

    async with chat_stack(tmp_path, before_start=previous_life) as chat:
        chat.emulator.say(VIEWER, "/status", chat_id=GROUP)
        for _ in range(100):  # until the viewer's reply meets Telegram's 429
            if chat.emulator.throttled:
                break
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        assert "Equity" in await chat.ask(ADMIN, "/status")
        assert time.perf_counter() - started < 3.0
        assert chat.emulator.throttled == 1  # the group's send waits its retry_after out


async def test_a_confirm_s_window_counts_from_when_its_prompt_was_delivered(
    tmp_path: Path,
) -> None:
    """Review F15: the 30 s started before the prompt's send; a prompt held back by a 429
    arrived saying "Confirm within 30 s" and any press was answered "Expired"."""
    async with chat_stack(tmp_path) as chat:
        chat.emulator.limit("sendMessage", 1, 1)  # Telegram: retry after 1 s
        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/flatten")
        for _ in range(100):  # the prompt's first send is refused
            if "sendMessage" in chat.emulator.calls:
                break
            await asyncio.sleep(0.02)
        chat.wall.advance(timedelta(seconds=40))  # the wait, as long as a retry_after of 40 s
        question = await chat.reply(ADMIN, after=before)
        assert "Confirm within 30 s" in question.text
        chat.emulator.press(
            ADMIN, question, question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        )
        for _ in range(100):
            if await chat.trading.engine.guard.halted():
                break
            await asyncio.sleep(0.05)
        assert question.text.startswith("Confirmed"), question.text
        assert await chat.trading.engine.guard.halted()


async def test_a_slow_answer_to_a_confirm_s_prompt_does_not_stretch_its_window(
    tmp_path: Path,
) -> None:
    """The prompt was in the chat, its send's answer was slow: the window counted from the
    answer, so a press 31 s after the prompt showed was confirmed."""
    async with chat_stack(tmp_path) as chat:
        chat.emulator.answer_delay = 0.5  # the message is in the chat; the answer lags
        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/flatten")
        question = await chat.reply(ADMIN, after=before)
        chat.wall.advance(timedelta(seconds=31))  # before the send's answer is back
        chat.emulator.answer_delay = 0.0
        await asyncio.sleep(0.8)  # the answer is back: the expiry was set
        chat.emulator.press(
            ADMIN, question, question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        )
        await chat.emulator.quiet(0.5)
        assert question.text == "Expired: send /flatten again."
        assert not await chat.trading.engine.guard.halted()


# Review round 3 (F2, F4, F5): ages by bounds on Telegram's clock, never by a guess.


def _no_date(emulator: TelegramEmulator) -> None:
    emulator.date_header = lambda now: ""  # a self-hosted Bot API server sends none


def _setup(*steps: Callable[[TelegramEmulator], object]) -> Callable[[TelegramEmulator], None]:
    def both(emulator: TelegramEmulator) -> None:
        for step in steps:
            step(emulator)

    return both


async def _held(chat: Any, ago: float, after: int = 0) -> None:
    """A /stoppair sent ``ago`` seconds ago is asked to confirm, not run (its answer beyond
    the admin's first ``after`` messages)."""
    reply = await chat.reply(ADMIN, after=after)
    assert f"You sent /stoppair BTCUSDT {ago // 60:.0f} min ago; it was not run then" in (
        reply.text
    )
    assert [run.pair for run in chat.trading.service.runs()] == ["BTC/USDT"]


async def test_a_backlog_page_past_100_updates_is_no_reading_of_now(tmp_path: Path) -> None:
    """Review F2: 100 strangers' commands queued, then an admin's /stoppair (150 s old) alone
    on getUpdates' second page, asked at once: it was taken as made just now and ran."""

    def queued(emulator: TelegramEmulator) -> None:
        for _ in range(100):
            emulator.say(STRANGER, "/whoami", chat_id=GROUP, ago=151)
        emulator.say(ADMIN, "/stoppair BTCUSDT", ago=150)

    async with chat_stack(tmp_path, before_start=_setup(_no_date, queued)) as chat:
        await _held(chat, 150)


async def test_a_late_delivery_in_a_poll_that_waited_is_no_reading_of_now(tmp_path: Path) -> None:
    """Review F2: Telegram delivered a /stoppair 150 s late, in a poll that waited: it ran."""
    async with chat_stack(tmp_path, before_start=_no_date) as chat:
        await asyncio.sleep(0.8)
        chat.emulator.say(ADMIN, "/stoppair BTCUSDT", ago=150)
        await _held(chat, 150)


async def test_late_deliveries_never_outvote_the_bot_s_own_sent_dates(tmp_path: Path) -> None:
    """Review F2: late polls between good readings made the next late /stoppair (170 s) run."""
    async with chat_stack(tmp_path, before_start=_no_date) as chat:
        await chat.ask(ADMIN, "/pairs")
        for _ in range(3):
            chat.emulator.say(VIEWER, "/pairs", ago=170)
            await chat.reply(VIEWER, after=len(chat.emulator.to(VIEWER)))
            await asyncio.sleep(0.6)
        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/stoppair BTCUSDT", ago=170)
        reply = await chat.reply(ADMIN, after=before)
        assert "2 min ago; it was not run then" in reply.text
        assert [run.pair for run in chat.trading.service.runs()] == ["BTC/USDT"]


async def test_without_a_date_header_a_halt_right_after_a_start_runs_on_a_fast_host(
    tmp_path: Path,
) -> None:
    """Review F18 residual: no Date, nothing sent yet, the host 90 s fast: the /halt's own
    first message reads Telegram's clock, and the /halt is judged fresh by it."""
    async with chat_stack(tmp_path, before_start=_setup(_no_date, _host_off(90))) as chat:
        first = await chat.sent_back(ADMIN, "/halt")
        assert "Trading halted" in first.text
        assert first.edits == 0  # a /halt sends no "⏳" first: it waits for no reading
        assert await chat.trading.engine.guard.halted()


@pytest.mark.parametrize("date_off", [120, -170])
async def test_a_date_header_that_disagrees_with_telegram_s_dates_judges_nothing(
    tmp_path: Path, date_off: float
) -> None:
    """Review F4: a Date 120 s ahead refused a fresh /halt; one 170 s behind let a 200 s old
    /stoppair run."""
    async with chat_stack(
        tmp_path, before_start=_dated(lambda now: formatdate(now + date_off, usegmt=True))
    ) as chat:
        assert "Trading halted" in await chat.ask(ADMIN, "/halt")
        chat.emulator.say(ADMIN, "/stoppair BTCUSDT", ago=200)
        reply = await chat.reply(ADMIN, after=1)
        assert "3 min ago; it was not run then" in reply.text
        assert [run.pair for run in chat.trading.service.runs()] == ["BTC/USDT"]
        texts = [a.text for a in await chat.alerts.pending() if a.kind == "clock_skew"]
        assert any("Date header disagrees with Telegram's message dates" in t for t in texts)


async def test_a_host_5_min_slow_holds_an_old_stoppair(tmp_path: Path) -> None:
    """Review F5: the host 300 s slow: a /stoppair sent 330 s ago ran by itself."""

    def late(emulator: TelegramEmulator) -> None:
        _host_off(-300)(emulator)
        emulator.say(ADMIN, "/stoppair BTCUSDT", ago=330)

    async with chat_stack(tmp_path, before_start=late) as chat:
        await _held(chat, 330)


def _step_host(chat: Any, seconds: float) -> None:
    """NTP steps the host's wall clock by ``seconds`` during a run; Telegram's clock (and the
    host's monotonic one) go on as they were."""
    chat.wall.set(chat.wall.now() + timedelta(seconds=seconds))
    chat.emulator.clock_ahead -= seconds


async def test_a_host_clock_stepped_back_during_a_run_never_lets_an_old_stoppair_run(
    tmp_path: Path,
) -> None:
    """Review round 4 F3: after a reading, NTP set the host back 100 s; a /stoppair sent
    150 s ago (Telegram late) was judged 50 s old and ran by itself."""
    async with chat_stack(tmp_path) as chat:
        await chat.ask(ADMIN, "/pairs")
        _step_host(chat, -100)
        chat.emulator.say(ADMIN, "/stoppair BTCUSDT", ago=150)
        await _held(chat, 150, after=1)


async def test_a_host_clock_stepped_forward_during_a_run_makes_no_fresh_command_old(
    tmp_path: Path,
) -> None:
    """Review round 4 F4: after a reading, NTP set the host 120 s forward: a fresh /halt was
    refused as 2 min old, and a fresh /flatten's prompt said it was not run then."""
    async with chat_stack(tmp_path) as chat:
        await chat.ask(ADMIN, "/pairs")
        _step_host(chat, 120)
        assert "Trading halted" in await chat.ask(ADMIN, "/halt")
        prompt = await chat.ask(ADMIN, "/flatten")
        assert prompt.startswith("/flatten: "), prompt
        assert "not run then" not in prompt


def _suspend_host(chat: Any, seconds: float) -> None:
    """The host sleeps ``seconds`` (a laptop lid, a paused VM) and wakes with its wall clock
    right: the wall, Telegram's clock and the monotonic clock the bot reads (CLOCK_BOOTTIME,
    which counts a suspend) all moved on."""
    chat.wall.advance(timedelta(seconds=seconds))


async def test_a_stoppair_sent_just_before_a_host_suspend_does_not_run_after_it(
    tmp_path: Path,
) -> None:
    """Review round 5 F3: after a reading, the admin's /stoppair was sent just before a 10 min
    suspend and fetched after the resume: it is 10 min old, not fresh."""
    async with chat_stack(tmp_path) as chat:
        await chat.ask(ADMIN, "/pairs")
        _suspend_host(chat, 600)
        chat.emulator.say(ADMIN, "/stoppair BTCUSDT", ago=600)
        await _held(chat, 600, after=1)


async def test_a_confirm_prompt_shown_before_a_host_suspend_has_expired_after_it(
    tmp_path: Path,
) -> None:
    """Review round 5 F3: a Confirm prompt ("within 30 s") shown before a 10 min suspend and
    pressed after the resume is expired."""
    async with chat_stack(tmp_path) as chat:
        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/stoppair BTCUSDT", ago=120)
        question = await chat.reply(ADMIN, after=before)
        assert question.reply_markup, question.text
        _suspend_host(chat, 600)
        chat.emulator.press(
            ADMIN, question, question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        )
        await chat.emulator.quiet(1.0)
        assert question.text.startswith("Expired"), question.text
        assert [run.pair for run in chat.trading.service.runs()] == ["BTC/USDT"]

"""The live gate's paths to real money (issue 18, from a hostile review): "in live mode a
strategy may start only when its check passed for the current source hash ... an admin may
override from chat with an explicit confirmation". Each test takes a path around the gate
(/resume, /startpair meeting a /reload, a stale /allow Confirm, /allow of an edited file not
reloaded) and asserts the promise.

The live stack (ccxt on the Binance fake, real SQLite) with the chat on the Telegram emulator
(the real PTB client), strategies loaded from a folder as a user's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd

from bot.app.strategy_loading import load_strategies
from bot.core.domain import RunState
from bot.research.loaded_code import loaded_hash
from tests.review_live_fixtures import HOSTILE, counting, load_folder, strategy_class
from tests.rigs.chat_rig import ADMIN, TRADER, Chat
from tests.rigs.checked import record_check
from tests.rigs.gated import START, held, live_chat
from tests.rigs.live_rig import HOUR, Market

ETH = "ETH/USDT"
FIRST_CLOSE = START.replace(minute=0, second=5) + HOUR


async def prompt(chat: Chat, text: str) -> tuple[str, str]:
    """The admin's Confirm prompt for ``text``: its text and its Confirm button's data."""
    question = await chat.sent_back(ADMIN, text)
    return question.text, question.reply_markup["inline_keyboard"][0][0]["callback_data"]


async def press(chat: Chat, text: str, button: str) -> str:
    """The admin presses ``button`` of the prompt whose text was ``text``; the answer."""
    (question,) = [m for m in chat.emulator.to(ADMIN) if m.text == text]
    before = len(chat.emulator.to(ADMIN))
    chat.emulator.press(ADMIN, question, button)
    return (await chat.emulator.reply(ADMIN, after=before)).text


async def hours(market: Market, chat: Chat, count: int) -> None:
    moment = FIRST_CLOSE
    for _ in range(count):
        market.at(moment)
        await chat.trading.service.tick("1h")
        moment += HOUR


async def test_resume_of_a_pair_faulted_at_start_up_trades_no_unchecked_code(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """A persisted run whose strategy file is missing (or broken) at start-up cannot be built:
    hold_refused skips it (no object: "left to its fault"), so it is faulted, not held. The
    user writes the file again (never checked), an admin /reloads (held runs only are
    rebuilt and re-gated), and a TRADER sends /resume: clear_fault builds the new code from
    the registry with no gate, and it trades real money. No check, no /allow."""
    folder = tmp_path / "user_strategies"
    load_folder(folder, {"hostile.py": HOSTILE})  # "mine" is not there at start-up
    async with live_chat(tmp_path, btc_candles, {ETH: "mine"}) as (chat, market):
        service = chat.trading.service
        run = service.run_for(ETH)
        assert run is not None
        assert run.state is RunState.PAUSED  # faulted at start-up
        assert held(service) == {}
        (folder / "mine.py").write_text(counting("never checked"), encoding="utf-8")
        assert "1 new" in await chat.ask(ADMIN, "/reload")
        resumed = await chat.ask(TRADER, f"/resume {ETH}")
        await hours(market, chat, 3)
        mine = strategy_class("mine")
        run = service.run_for(ETH)
        assert run is not None
        assert mine.calls == 0, (
            f"/resume put unchecked code on real money: {resumed!r}; mine was asked "
            f"{mine.calls} times, held: {held(service)}"
        )
        assert run.id in service.held or "refused" in resumed.lower(), resumed


async def test_startpair_meeting_a_reload_trades_the_code_the_gate_judged(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """/startpair gates ``type(built)`` (the registry's class then), then waits for the tick
    lock, and the service builds the strategy AGAIN from the registry (put_run -> _build). A
    /reload never takes the tick lock: landing while a tick runs, it swaps the registry in
    between, and the pair starts on the new, unchecked code."""
    folder = tmp_path / "user_strategies"
    load_folder(folder, {"mine.py": counting("v1")})
    v1 = strategy_class("mine")
    async with live_chat(tmp_path, btc_candles, {}) as (chat, _):
        await record_check(chat.db, "mine", ETH)  # v1 passed its check
        service, cockpit = chat.trading.service, chat.frontend_cockpit
        assert cockpit.reload is not None
        async with service.tick_lock:  # a tick in progress (a slow venue, say)
            start = asyncio.create_task(chat.trading.control.start_pair(ETH, "mine", "1h", {}, 0.2))
            while not service.tick_lock._waiters:  # noqa: ASYNC110 -- gated, now waits
                await asyncio.sleep(0.01)
            (folder / "mine.py").write_text(counting("v2, unchecked"), encoding="utf-8")
            reload = asyncio.create_task(cockpit.reload.reload())  # an admin's /reload
            while strategy_class("mine") is v1:  # noqa: ASYNC110 -- installed (its held-run hook waits on
                await asyncio.sleep(0.01)  # the tick lock, after the /startpair)
        run = await start
        assert (await reload).changed == ("mine",)
        running = service.strategy_of(run)
        assert running is not None
        assert type(running) is v1 or run.id in service.held, (
            f"{ETH} started on code never checked: {loaded_hash(type(running))[:8]} "
            f"(the gate judged {loaded_hash(v1)[:8]})"
        )


async def test_a_confirm_pressed_after_the_code_changed_allows_nothing_unseen(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """The admin asks /allow mine when its check has passed since start-up: the prompt says
    "start mine's held pairs (ETH/USDT): its check passed" (nothing overridden). Before the
    press (30 s), the file changes (a colleague's edit and /reload). The press runs /allow
    on the code of NOW: it stores an override for code nobody checked or saw, and the pair
    trades it. Promise: the override is explicit (its Confirm names what it overrides)."""
    folder = tmp_path / "user_strategies"
    load_folder(folder, {"mine.py": counting("v1")})
    async with live_chat(tmp_path, btc_candles, {ETH: "mine"}) as (chat, _):
        service = chat.trading.service
        assert ETH in held(service)  # not checked at start-up
        await record_check(chat.db, "mine", ETH)  # checked since
        text, button = await prompt(chat, "/allow mine")
        assert "start mine's held pairs (ETH/USDT): its check passed" in text
        (folder / "mine.py").write_text(counting("v2: peeks, unchecked"), encoding="utf-8")
        assert "1 changed" in await chat.ask(ADMIN, "/reload")
        assert ETH in held(service)  # the reload re-gated it: held on v2
        answer = await press(chat, text, button)
        rows = await chat.db.fetch_all("SELECT overrode FROM strategy_overrides")
        granted = [row["overrode"] for row in rows]
        assert ETH in held(service), f"released: {answer!r}; overrides {granted}"
        assert not rows, (
            f"the Confirm of 'its check passed' granted an override over "
            f"{[row['overrode'] for row in rows]}; answer: {answer!r}; held: {held(service)}"
        )


async def test_allow_after_a_check_of_the_edited_file_does_not_release_the_old_code(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """The held run's object is v1 (never checked). The user edits the file to v2 and runs
    `pairpilot strategy check` (it loads the file from disk: v2 passes). No /reload. The
    gate hashes the FILE (source_hash reads it now), not the code loaded, so /allow mine
    sees "passed" and releases the held run with its v1 object. (The hash fixers' change,
    naming the loaded code, should make this pass; kept as the gate's regression.)"""
    folder = tmp_path / "user_strategies"
    load_folder(folder, {"mine.py": counting("v1, never checked")})
    v1 = strategy_class("mine")
    async with live_chat(tmp_path, btc_candles, {ETH: "mine"}) as (chat, _):
        service = chat.trading.service
        assert ETH in held(service)
        (folder / "mine.py").write_text(counting("v2"), encoding="utf-8")
        v2 = load_strategies(folder, explicit=True).registry["mine"]  # as the CLI loads it
        await record_check(chat.db, "mine", ETH, source=loaded_hash(v2))
        text, button = await prompt(chat, "/allow mine")
        answer = await press(chat, text, button)
        run = service.run_for(ETH)
        assert run is not None
        running = service.strategy_of(run)
        assert run.id in service.held or type(running) is not v1, (
            f"v1 (never checked) trades after the check of v2: {answer!r}"
        )

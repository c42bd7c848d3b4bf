"""/allow from the chat (issue 18): an admin lets a held strategy whose check has not passed trade
real money after a Confirm that says so; it is audited and alerted, the held run ticks from the
next candle close, and loading an edit of the file voids it. The real PTB client on the Telegram
emulator, the live stack on the fake exchange, real SQLite."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bot.app.strategy_loading import load_strategies
from bot.core.errors import UserInputError
from bot.research.receipts import source_hash
from tests.rigs.chat_rig import ADMIN, TRADER, VIEWER, Chat, chat_stack
from tests.rigs.checked import record_check
from tests.rigs.gated import (
    START,
    counted,
    held,
    live_chat,
    user_strategies,
)
from tests.rigs.live_rig import HOUR

MINE = {"ETH/USDT": "mine"}  # left running on the unchecked ``mine``
HELD_WHY = (
    "mine may not trade real money: not checked; run "
    "`pairpilot strategy check mine --pair ETH/USDT --timeframe 1h`"
)


async def confirmed(chat: Chat, text: str) -> tuple[str, str]:
    """The Confirm prompt ``text`` gets from the admin, and the answer once pressed."""
    question = await chat.sent_back(ADMIN, text)
    asked = question.text  # the press edits it
    before = len(chat.emulator.to(ADMIN))
    button = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
    chat.emulator.press(ADMIN, question, button)
    return asked, (await chat.emulator.reply(ADMIN, after=before)).text


async def overrides(chat: Chat) -> list[tuple[str, str, str]]:
    rows = await chat.db.fetch_all("SELECT strategy, actor, overrode FROM strategy_overrides")
    return [(row["strategy"], row["actor"], row["overrode"]) for row in rows]


async def test_allow_lets_a_held_strategy_trade_audited_and_alerted_until_its_file_changes(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    with user_strategies(tmp_path / "user_strategies"):
        await allow_and_revoke(tmp_path, btc_candles)


async def allow_and_revoke(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    async with live_chat(tmp_path, btc_candles, MINE) as (chat, market):
        service = chat.trading.service
        pairs = await chat.ask(VIEWER, "/pairs")
        assert f"ETH/USDT running: mine 1h, 10% of capital\n  held: {HELD_WHY}" in pairs
        # bad input changes nothing: a trader, an unknown strategy
        assert "needs the admin role" in await chat.ask(TRADER, "/allow mine")
        question, answer = await confirmed(chat, "/allow nosuch")
        assert "nothing: unknown strategy 'nosuch'; /strategies lists them" in question
        assert "unknown strategy 'nosuch'" in answer
        assert await chat.ask(ADMIN, "/allow") == (
            "No standing /allow: only strategies whose check passed trade live."
        )
        assert await overrides(chat) == []
        assert held(service) == {"ETH/USDT": HELD_WHY}

        question, answer = await confirmed(chat, "/allow mine")
        assert (
            "let mine trade REAL MONEY although its code has not passed its check (not "
            "checked): code that has not passed its check will trade real money; its held "
            "pairs (ETH/USDT) start trading. Only its current source: loading an edit of the "
            "file voids this"
        ) in question
        assert answer.startswith("mine may trade real money though its check is: not checked.")
        assert answer.endswith("ETH/USDT trade(s) from the next candle close.")
        assert await overrides(chat) == [("mine", str(ADMIN), "not checked")]
        audited = [(e.actor, e.command, e.arguments) for e in await chat.audit.latest(20)]
        assert (str(ADMIN), "allow", ["mine"]) in audited
        alerts = await chat.db.fetch_all("SELECT text FROM alerts WHERE kind = 'strategy_gate'")
        assert any(
            row["text"] == f"mine may trade real money by /allow of {ADMIN}, though its check "
            "is: not checked"
            for row in alerts
        )
        assert held(service) == {}
        moment = START.replace(minute=0, second=5) + HOUR
        market.at(moment)
        await service.tick("1h")
        assert "ETH/USDT" in service.last_ticks  # ticks from the next candle close
        listed = await chat.ask(ADMIN, "/allow")
        assert listed.startswith(f"mine: allowed by {ADMIN} ")
        assert "over not checked" in listed

        mine = tmp_path / "user_strategies" / "mine.py"
        mine.write_text(mine.read_text() + "\n# edited after the /allow\n")
        assert "(void: its source changed since)" not in await chat.ask(ADMIN, "/allow")
        assert "changed: mine" in (await chat.ask(ADMIN, "/reload")).splitlines()  # loaded
        assert "(void: its source changed since)" in await chat.ask(ADMIN, "/allow")
        with pytest.raises(UserInputError, match="^mine may not trade real money: not checked"):
            await chat.trading.control.start_pair("SOL/USDT", "mine", "1h", {}, 0.1)
        _, answer = await confirmed(chat, "/allow mine off")
        assert answer == (
            "/allow of mine revoked: it trades live only once its check passes. "
            "Held again: ETH/USDT."
        )
        assert "ETH/USDT" in held(service)
        audited = [(e.command, e.arguments) for e in await chat.audit.latest(20)]
        assert ("allow", ["mine", "off"]) in audited

        # checked since: /allow starts its held pairs, overriding nothing
        await record_check(chat.db, "mine", "ETH/USDT")
        question, answer = await confirmed(chat, "/allow mine")
        assert "start mine's held pairs (ETH/USDT): its check passed" in question
        assert answer == (
            "mine passed its check: nothing overridden. ETH/USDT trade(s) from the next "
            "candle close."
        )
        assert held(service) == {}
        assert len(await overrides(chat)) == 1  # the revoked one only
        assert (
            "nothing: mine passed its check: it needs no /allow"
            in (await confirmed(chat, "/allow mine"))[0]
        )


async def test_paper_startpair_warns_and_allow_is_not_needed(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        started = await chat.ask(TRADER, "/startpair ETHUSDT rsi share=0.2")
        assert started.startswith("Started ETH/USDT: rsi 1h, 20% of capital.")
        assert started.endswith(
            "\nwarning: rsi has not passed its check (not checked); live mode would refuse it"
        )
        question, answer = await confirmed(chat, "/allow rsi")
        assert "nothing: not needed in paper mode" in question
        assert "not needed in paper mode" in answer
        assert await overrides(chat) == []


async def test_a_held_strategy_fixed_checked_and_reloaded_trades_without_a_restart(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """/reload gives a held run the new code (it never traded on the old) and gates it again:
    checked at the new source, it ticks; a check of the old source would not have let it."""
    folder = tmp_path / "user_strategies"
    with user_strategies(folder):
        async with live_chat(tmp_path, btc_candles, MINE) as (chat, market):
            service = chat.trading.service
            assert held(service) == {"ETH/USDT": HELD_WHY}
            mine = folder / "mine.py"
            mine.write_text(mine.read_text() + "\n# fixed\n", encoding="utf-8")
            fixed = load_strategies(folder, explicit=True).registry["mine"]
            await record_check(chat.db, "mine", "ETH/USDT", source=source_hash(fixed))
            started = type(service.strategy_of(service.runs()[0]))
            assert "1 changed" in await chat.ask(ADMIN, "/reload")
            assert held(service) == {}
            assert type(service.strategy_of(service.runs()[0])) is not started
            market.at(START.replace(minute=0, second=5) + HOUR)
            await service.tick("1h")
            assert "ETH/USDT" in service.last_ticks


async def test_a_reload_without_a_check_of_the_new_code_keeps_the_run_held(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    folder = tmp_path / "user_strategies"
    with user_strategies(folder):
        async with live_chat(tmp_path, btc_candles, MINE) as (chat, market):
            service = chat.trading.service
            await record_check(chat.db, "mine", "ETH/USDT")  # the code it was held on
            mine = folder / "mine.py"
            mine.write_text(mine.read_text() + "\n# edited, not checked\n", encoding="utf-8")
            await chat.ask(ADMIN, "/reload")
            assert "ETH/USDT" in held(service)
            (run,) = [run for run in service.runs() if run.pair == "ETH/USDT"]
            asked = counted(service, run)
            market.at(START.replace(minute=0, second=5) + HOUR)
            await service.tick("1h")
            assert "ETH/USDT" in service.last_ticks  # its stops checked
            assert asked == []  # its strategy never asked

"""Review of the tick restructure (session 24, s24-review-tick): a /resume landing while a
tick asks, i.e. between the moment the asking pass decides how many candles a pair's strategy
gets (bot/trading/asking.py ``_wanted``: 0 for a faulted pair, whose strategy is not asked)
and the moment it asks the strategies (``_answer``, which reads ``silenced`` again).

The run resumed meanwhile is no longer silenced at ``_answer``, so its strategy IS asked, but
on the candles fetched for a faulted pair: ``engine.history(0)``, one candle with the default
risk limits, instead of its ``history``. On one candle every built-in strategy is still in its
warm-up (HOLD), so the signal of that close is lost: an ENTER the backtest takes is not taken
(an EXIT a crossing strategy gives once is missed, its position kept); a user strategy that
indexes back (``close.iloc[-20]``) raises and is faulted again, right after the /resume.

The window is the candle fetches of the tick (one request per pair, one after the other, on
a venue: a second or more with a few pairs). The replay stack (real SQLite, the strategies
loaded from a user folder), the chat on the Telegram emulator (real PTB); ETH's candle fetch
is made as slow as a venue's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd

from bot.core.domain import RunState
from tests.rigs.chat_rig import TRADER, Chat, chat_stack
from tests.slow_strategy_fixtures import BTC, ETH, probe, run_of, settings


def slow_fetch_of(chat: Chat, pair: str, seconds: float) -> asyncio.Event:
    """``pair``'s candles come ``seconds`` late (a venue's round trip); the event is set
    when the fetch began."""
    source: Any = chat.trading.service._source  # the replay's candle files, as the tick reads
    fetch = source.closed_candles
    began = asyncio.Event()

    async def slow(name: str, now: Any, limit: int, timeframe: str | None = None) -> pd.DataFrame:
        if name == pair:
            began.set()
            await asyncio.sleep(seconds)
        return await fetch(name, now, limit, timeframe)

    source.closed_candles = slow
    return began


def counting(cls: Any) -> list[int]:
    """How many candles each call of ``cls``'s strategy was handed."""
    lengths: list[int] = []
    compute = cls.compute_signals

    def recorded(self: Any, candles: pd.DataFrame) -> pd.Series:
        lengths.append(len(candles))
        return compute(self, candles)

    cls.compute_signals = recorded
    return lengths


async def faulted_btc(chat: Chat) -> Any:
    """BTC's probe fails once (its pair faulted, paused), then would ENTER on every close."""
    driver = chat.trading.driver
    assert driver is not None
    await driver.step()
    slow = probe(chat, BTC)
    slow.mode, slow.error = "raise", ValueError
    await driver.step()
    assert chat.trading.service.faults.of(run_of(chat, BTC).id) is not None
    slow.mode, slow.seconds, slow.enter = "sleep", 0.0, True
    return slow


async def test_resume_before_the_tick_enters_on_the_full_history(tmp_path: Path) -> None:
    """The control: /resume answered before the tick begins, the next close ENTERs (the
    strategy handed its whole history)."""
    async with chat_stack(tmp_path, settings(tmp_path, {BTC: "probe", ETH: "steady"})) as chat:
        driver = chat.trading.driver
        assert driver is not None
        slow = await faulted_btc(chat)
        lengths = counting(slow)
        reply = await chat.ask(TRADER, "/resume BTC/USDT")
        assert "Resumed" in reply or "resumed" in reply, reply
        await driver.step()
        assert chat.trading.engine.portfolio.position(BTC) is not None
        assert lengths, lengths
        assert min(lengths) > 1, lengths


async def test_resume_while_the_tick_fetches_candles_asks_the_strategy_on_its_history(
    tmp_path: Path,
) -> None:
    """/resume BTC answered while the tick fetches ETH's candles (BTC's were fetched as a
    faulted pair's: one candle). Asked on that one candle, the strategy would decide in its
    warm-up (HOLD, or a user strategy reading ``iloc[-20]`` raising and faulting the pair
    again). It is not asked on them: a pair fetched as faulted is answered as faulted at that
    close, and its strategy is asked on its whole history from the next one, which enters."""
    async with chat_stack(tmp_path, settings(tmp_path, {BTC: "probe", ETH: "steady"})) as chat:
        driver = chat.trading.driver
        assert driver is not None
        slow = await faulted_btc(chat)
        lengths = counting(slow)
        began = slow_fetch_of(chat, ETH, 1.5)
        step = asyncio.create_task(driver.step())
        await asyncio.wait_for(began.wait(), 10)
        reply = await chat.ask(TRADER, "/resume BTC/USDT")
        await step
        assert "Resumed" in reply or "resumed" in reply, reply
        assert run_of(chat, BTC).state is RunState.RUNNING
        bought = chat.trading.engine.portfolio.position(BTC)
        assert all(n > 1 for n in lengths), (
            f"BTC's strategy, resumed during the tick, was handed {lengths} candle(s) (its "
            f"history is {chat.trading.service.strategy_of(run_of(chat, BTC)).history}): "  # type: ignore[union-attr]
            f"decided in its warm-up; bought: {bought}"
        )
        await driver.step()  # the next close: asked on its whole history
        assert lengths, lengths
        assert all(n > 1 for n in lengths), lengths
        assert chat.trading.engine.portfolio.position(BTC) is not None, (
            "the ENTER of the next close after the /resume was not taken"
        )

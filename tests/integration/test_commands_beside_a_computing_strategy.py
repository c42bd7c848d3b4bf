"""Review finding 11 of issue 18 (session 24): the trader's commands while a strategy
computes. The tick holds ``tick_lock`` across its wait for the strategy's thread, so every
command that takes the lock (/pause, /stoppair, /flatten's sales, /startpair, /resume, /order)
waits for the computation (up to ``strategy_timeout``, 30 s by default, per stuck pair), and the
decision returned after the command was sent is acted on first.

Real replay stack (real SQLite, the strategies loaded from a user folder), the chat on the
Telegram emulator (real PTB)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.rigs.chat_rig import TRADER, Chat, chat_stack
from tests.slow_strategy_fixtures import BTC, ETH, SOL, probe, run_of, settings, started


async def btc_fills(chat: object) -> int:
    rows = await chat.db.fetch_all(  # type: ignore[attr-defined]
        "SELECT count(*) AS n FROM fills WHERE pair = ?", (BTC,)
    )
    return int(rows[0]["n"])


async def sent_while_computing_an_entry(chat: Chat, command: str) -> tuple[str, float]:
    """``command``'s answer, sent while BTC's strategy computes for 3 s an ENTER, and how long
    it took; the tick done."""
    driver = chat.trading.driver
    assert driver is not None
    await driver.step()
    slow = probe(chat, BTC)
    slow.mode, slow.seconds, slow.enter = "sleep", 3.0, True
    step = asyncio.create_task(driver.step())
    await started(slow)
    began = time.perf_counter()
    reply = await chat.ask(TRADER, command)
    waited = time.perf_counter() - began
    await step
    return reply, waited


async def test_pause_sent_while_the_strategy_computes_answers_at_once_and_stops_its_entry(
    tmp_path: Path,
) -> None:
    """/pause is sent 0 s into a 3 s computation that then returns ENTER: the trader waits
    the whole computation for the answer, and the pair buys anyway (the tick acts on the run
    as it was before the /pause)."""
    async with chat_stack(tmp_path, settings(tmp_path, {BTC: "probe", ETH: "steady"})) as chat:
        reply, waited = await sent_while_computing_an_entry(chat, "/pause BTC/USDT")
        bought = chat.trading.engine.portfolio.position(BTC)
        assert "Paused" in reply, reply
        assert bought is None, (
            f"/pause answered after {waited:.2f} s, then the pair bought {bought.amount:g} BTC "
            "on the entry its strategy returned after the /pause"
        )
        assert waited < 1.0, f"/pause answered after {waited:.2f} s"


async def test_stoppair_sent_while_the_strategy_computes_does_not_buy_then_sell(
    tmp_path: Path,
) -> None:
    """/stoppair sent while the strategy computes an ENTER: the stop waits for the tick, the
    tick buys, then the stop sells at market: a round trip (two fees, the spread) the trader
    asked not to make."""
    async with chat_stack(tmp_path, settings(tmp_path, {BTC: "probe", ETH: "steady"})) as chat:
        reply, waited = await sent_while_computing_an_entry(chat, "/stoppair BTC/USDT")
        fills = await btc_fills(chat)
        assert "Stopped" in reply, reply
        assert fills == 0, (
            f"/stoppair answered after {waited:.2f} s; {fills} fills of {BTC}: bought on the "
            "ENTER returned after the /stoppair, then sold by it"
        )
        assert waited < 1.0, f"/stoppair answered after {waited:.2f} s"


async def test_flatten_does_not_wait_for_a_strategy_computing(tmp_path: Path) -> None:
    """The kill switch while BTC's strategy computes for 3 s (a legitimate, not even stuck,
    strategy): it halts at once, but its sales wait for the tick lock, i.e. for the whole
    computation (30 s with a strategy stuck at the default timeout, more with more pairs)."""
    async with chat_stack(tmp_path, settings(tmp_path, {BTC: "probe", ETH: "steady"})) as chat:
        trading = chat.trading
        driver = trading.driver
        assert driver is not None
        await driver.step()
        slow = probe(chat, BTC)
        slow.mode, slow.seconds, slow.enter = "sleep", 0.0, True
        await driver.step()
        assert trading.engine.portfolio.position(BTC) is not None
        slow.mode, slow.seconds, slow.enter = "sleep", 3.0, False
        step = asyncio.create_task(driver.step())
        await started(slow)
        began = time.perf_counter()
        report = await trading.control.flatten()
        waited = time.perf_counter() - began
        await step
        assert report.closed.get(BTC), report
        assert waited < 1.0, f"/flatten sold after {waited:.2f} s (the strategy computed 3 s)"


async def test_a_tick_asks_its_slow_strategies_at_once(tmp_path: Path) -> None:
    """Two strategies blocked 5 s (not holding the GIL) with a 1 s timeout, before a third
    pair: the tick waits one timeout, not two, then faults both and ticks the third."""
    pairs = {BTC: "probe", SOL: "other", ETH: "steady"}
    async with chat_stack(tmp_path, settings(tmp_path, pairs, timeout=1.0)) as chat:
        service, driver = chat.trading.service, chat.trading.driver
        assert driver is not None
        await driver.step()
        first, second = probe(chat, BTC), probe(chat, SOL)
        for slow in (first, second):
            slow.mode, slow.seconds = "sleep", 5.0
        eth_before = service.last_ticks[ETH]
        began = time.perf_counter()
        await driver.step()
        took = time.perf_counter() - began
        assert service.faults.of(run_of(chat, BTC).id) is not None
        assert service.faults.of(run_of(chat, SOL).id) is not None
        assert service.last_ticks[ETH] > eth_before
        assert took < 1.6, f"the tick took {took:.2f} s for two strategies of a 1 s timeout"

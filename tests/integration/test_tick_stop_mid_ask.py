"""Review of the tick restructure (session 24, s24-review-tick): /stoppair landing while a
tick fetches candles (bot/trading/asking.py, before the tick lock).

The stop takes the tick lock (free while the tick asks) and ``put_run`` drops the stopped
run's strategy and exit policy (bot/trading/service.py). The asking pass still holds the
stopped run in its list, with its candles fetched, and ``_answer`` then reads
``strategies.built[run.id]`` (the service's own dict, by reference): KeyError. The gather
raises it out of ``tick``: no pair is acted on at that close (the other pairs' ENTER / EXIT
lost, their candle never acted on: the next close fetches the next one), and a replay's step
(a live scheduler's job) ends in an exception. A quiet pair's (faulted, held) reads
``strategies.policies[run.id]`` the same way.

The window is the candle fetches of the tick (one request per pair, one after the other, on
a venue: a second or more with a few pairs). The replay stack (real SQLite, the strategies
loaded from a user folder), the chat on the Telegram emulator (real PTB); ETH's candle fetch
is made as slow as a venue's."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.test_tick_resume_mid_ask import slow_fetch_of
from tests.rigs.chat_rig import TRADER, chat_stack
from tests.slow_strategy_fixtures import BTC, ETH, probe, settings


async def test_stoppair_while_the_tick_fetches_candles_leaves_the_other_pairs_ticked(
    tmp_path: Path,
) -> None:
    """/stoppair BTC answered while the tick fetches ETH's candles: BTC's answer is dropped
    (it is stopped), ETH is ticked at that close all the same and the step ends cleanly."""
    async with chat_stack(tmp_path, settings(tmp_path, {BTC: "probe", ETH: "steady"})) as chat:
        service, driver = chat.trading.service, chat.trading.driver
        assert driver is not None
        await driver.step()
        probe(chat, BTC)
        eth_before = service.last_ticks.get(ETH)
        began = slow_fetch_of(chat, ETH, 1.5)
        step = asyncio.create_task(driver.step())
        await asyncio.wait_for(began.wait(), 10)
        reply = await chat.ask(TRADER, "/stoppair BTC/USDT")
        assert "Stopped" in reply, reply
        failure = (await asyncio.gather(step, return_exceptions=True))[0]
        assert failure is None, f"the tick raised {failure!r}: no pair acted on at that close"
        assert service.last_ticks.get(ETH) != eth_before, "ETH not ticked at that close"


async def test_stoppair_while_the_tick_fetches_candles_keeps_the_other_pairs_exit(
    tmp_path: Path,
) -> None:
    """The money of it: ETH ("steady": ENTER on candles opening at hours 0, 6, 12, 18 UTC,
    EXIT at 3, 9, 15, 21) holds a position and its EXIT close comes; /stoppair BTC during that
    tick's candle fetches. ETH's exit must be taken at that close; the tick's KeyError skips
    it and ETH is held until its next EXIT close, six hours on."""
    async with chat_stack(tmp_path, settings(tmp_path, {BTC: "probe", ETH: "steady"})) as chat:
        trading = chat.trading
        driver, clock, portfolio = trading.driver, trading.clock, trading.engine.portfolio
        assert driver is not None
        await driver.step()
        probe(chat, BTC)
        for _ in range(48):  # into an ETH position
            if portfolio.position(ETH) is not None:
                break
            await driver.step()
        held = portfolio.position(ETH)
        assert held is not None, "ETH never entered"
        while clock.now().hour % 6 != 3:  # the next step acts on the candle opening at now
            await driver.step()
            assert portfolio.position(ETH) is not None
        skipped_open = clock.now()
        began = slow_fetch_of(chat, ETH, 1.5)
        step = asyncio.create_task(driver.step())
        await asyncio.wait_for(began.wait(), 10)
        reply = await chat.ask(TRADER, "/stoppair BTC/USDT")
        assert "Stopped" in reply, reply
        failure = (await asyncio.gather(step, return_exceptions=True))[0]
        still = portfolio.position(ETH)
        source = trading.service._source  # the candle the exit was due on, as the tick saw it
        due = await source.closed_candles(ETH, clock.now(), 1)  # type: ignore[attr-defined]
        exit_close = float(due["close"].iloc[-1])
        assert int(due["timestamp"].iloc[-1]) == int(skipped_open.timestamp() * 1000)
        if still is not None:  # how long and at what price it was held instead
            for _ in range(12):
                await driver.step()
                if portfolio.position(ETH) is None:
                    break
        if still is not None:
            sold_at = trading.service.prices[ETH]
            lost = still.amount * (exit_close - sold_at)
            raise AssertionError(
                f"ETH's EXIT close skipped (the tick raised {failure!r}): {still.amount:g} ETH "
                f"held on, sold at the {clock.now():%H:%M} tick's close {sold_at:.2f} instead "
                f"of at {exit_close:.2f}: {lost:.2f} USDT lost"
            )

"""What crosses the strategy thread back to the event loop (issue 18, finding 11): never the
strategy's own exception objects (a ``StrategyFailed`` subclass of its own included, whose
``reason`` or ``__str__`` is user code), only a fresh ``StrategyFailed`` of plain strings; an
exception whose message cannot be printed still fails the strategy at once, not at the
timeout.

Real replay stack (real SQLite, the strategies loaded from a user folder), the chat on the
Telegram emulator (real PTB)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.rigs.chat_rig import chat_stack
from tests.slow_strategy_fixtures import BTC, ETH, probe, run_of, settings, stalled, user_module


async def test_an_unprintable_exception_fails_the_strategy_at_once_not_at_the_timeout(
    tmp_path: Path,
) -> None:
    """The strategy raises a BaseException whose ``__str__`` raises it again: ``last_line``
    catches only Exception, so ``_compute`` raises out of the worker thread, which dies without
    answering. The tick then waits the whole ``strategy_timeout`` (the lock held: every command
    waits), and the pair is paused for being "slow"."""
    pairs = {BTC: "probe", ETH: "steady"}
    async with chat_stack(tmp_path, settings(tmp_path, pairs, timeout=4.0)) as chat:
        service, driver = chat.trading.service, chat.trading.driver
        assert driver is not None
        await driver.step()
        hostile = probe(chat, BTC)
        hostile.mode, hostile.error = "raise", user_module(hostile).Unprintable
        began = time.perf_counter()
        await driver.step()
        took = time.perf_counter() - began
        fault = service.faults.of(run_of(chat, BTC).id)
        assert fault is not None
        assert not fault.reason.startswith("took longer"), (
            f"the tick waited {took:.2f} s (the whole timeout) and paused the pair as slow: "
            f"{fault.reason!r}; the strategy raised at once"
        )
        assert took < 1.0, f"the tick took {took:.2f} s"


async def test_a_strategy_failed_raised_by_the_strategy_is_not_printed_on_the_loop(
    tmp_path: Path,
) -> None:
    """The user's code raises its own subclass of StrategyFailed (importable from
    bot.core.errors) whose ``__str__`` takes 3 s: handed back as is, it is printed by the
    fault's log line on the event loop, which is held 3 s (/halt with it)."""
    pairs = {BTC: "probe", ETH: "steady"}
    async with chat_stack(tmp_path, settings(tmp_path, pairs)) as chat:
        service, driver = chat.trading.service, chat.trading.driver
        assert driver is not None
        await driver.step()
        hostile = probe(chat, BTC)
        slow = user_module(hostile).SlowFailure
        slow.seconds = 3.0
        hostile.mode, hostile.error = "raise", lambda: slow("probe", BTC, "mine")
        _, held = await stalled(driver.step())
        assert service.faults.of(run_of(chat, BTC).id) is not None
        assert held < 0.5, f"the event loop was held {held:.2f} s by the strategy's exception"


async def test_a_strategy_failed_whose_reason_raises_costs_no_other_pair_its_tick(
    tmp_path: Path,
) -> None:
    """The user's code raises a StrategyFailed subclass whose ``reason`` raises: the loop
    reads it in ``faults.fault`` outside any guard, the ValueError leaves the tick, and the
    pairs after it are not ticked at all (their stops not checked), at every close; the pair
    itself is never paused."""
    pairs = {BTC: "probe", ETH: "steady"}
    async with chat_stack(tmp_path, settings(tmp_path, pairs)) as chat:
        service, driver = chat.trading.service, chat.trading.driver
        assert driver is not None
        await driver.step()
        hostile = probe(chat, BTC)
        broken = user_module(hostile).BrokenFailure
        hostile.mode, hostile.error = "raise", lambda: broken("steady", ETH, "")
        eth_ticked = service.last_ticks[ETH]
        escaped: BaseException | None = None
        for _ in range(3):
            try:
                await driver.step()
            except Exception as error:  # what the replay driver's job would log and skip
                escaped = error
        assert service.last_ticks[ETH] > eth_ticked, (
            f"ETH was not ticked in 3 closes; the tick raised {escaped!r}"
        )
        assert escaped is None, f"the tick raised {escaped!r}"
        assert service.faults.of(run_of(chat, BTC).id) is not None

"""A faulted pair's exit policy (its stops still checked at every close) is never read from
the strategy's own objects on the event loop: the strategy may have replaced its ``params``
with an object whose look-ups are slow (review finding 11 of issue 18).

Real replay stack (real SQLite, the strategies loaded from a user folder), the chat on the
Telegram emulator (real PTB)."""

from __future__ import annotations

from pathlib import Path

from tests.rigs.chat_rig import chat_stack
from tests.slow_strategy_fixtures import BTC, ETH, probe, run_of, settings, stalled, user_module


async def test_a_faulted_pairs_exit_policy_is_not_read_from_the_strategys_own_objects_on_the_loop(
    tmp_path: Path,
) -> None:
    """The strategy replaces its ``params`` with its own dict (``params`` is not one of the
    interface's FINAL names) whose look-ups take 0.5 s, then raises: its pair is faulted, and
    from then on its exit policy is read ON THE LOOP (``_ask(decide=False)``: "no user code")
    from that dict, six look-ups at every close: the loop held 3 s a candle."""
    pairs = {BTC: "probe", ETH: "steady"}
    async with chat_stack(tmp_path, settings(tmp_path, pairs)) as chat:
        service, driver = chat.trading.service, chat.trading.driver
        assert driver is not None
        await driver.step()
        hostile = probe(chat, BTC)
        user_module(hostile).SlowDict.seconds = 0.5
        hostile.mode = "params"
        _, held = await stalled(driver.step())
        assert service.faults.of(run_of(chat, BTC).id) is not None
        _, held_after = await stalled(driver.step())
        assert max(held, held_after) < 0.5, (
            f"the event loop was held {held:.2f} s at the failing close and {held_after:.2f} s "
            "at the next, reading the faulted strategy's exit policy"
        )

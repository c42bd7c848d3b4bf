"""Review of the tick restructure (session 24, s24-review-tick): /resume of a pair whose
strategy could not be built, landing while a tick fetches candles.

The asking pass keeps the run's build failure in ``Asked.failure`` when it starts
(bot/trading/asking.py ``_wanted``). /resume then builds the strategy (it builds now) and
clears the fault (bot/trading/control.py ``_gated_rebuild``, ``clear_fault``). The acting
pass still holds the failure read before, finds no fault recorded any more (the /resume
cleared it), and faults the run again (bot/trading/service.py ``_apply`` -> ``_fault``): the
pair the trader just resumed, whose strategy builds, is paused again with a fresh
"strategy_failed" alert naming a failure that is gone, and makes no entry until a second
/resume.

The replay stack (real SQLite, the strategies loaded from a user folder), restarted once with
the strategy's constructor failing; the chat on the Telegram emulator (real PTB)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.core.domain import RunState
from tests.integration.test_tick_resume_mid_ask import slow_fetch_of
from tests.rigs.chat_rig import TRADER, chat_stack
from tests.slow_strategy_fixtures import BTC, ETH, run_of, settings

FRAGILE = """
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from strategies.base import ParamSpec, Strategy

MARKER = Path({marker!r})


class Fragile(Strategy):
    name = "fragile"
    description = "cannot be built while its marker file exists"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    def check_params(self):
        if MARKER.exists():
            raise RuntimeError("its data file is missing")

    @property
    def warmup(self):
        return 2

    def compute_signals(self, candles):
        return pd.Series(np.zeros(len(candles), dtype=np.int8), index=candles.index)
"""


async def test_resume_while_the_tick_fetches_candles_is_not_undone(tmp_path: Path) -> None:
    marker = tmp_path / "broken"
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "fragile.py").write_text(FRAGILE.replace("{marker!r}", repr(str(marker))))
    config = settings(tmp_path, {BTC: "fragile", ETH: "steady"})
    async with chat_stack(tmp_path, config) as chat:
        assert chat.trading.driver is not None
        await chat.trading.driver.step()
    marker.touch()
    async with chat_stack(tmp_path, config) as chat:
        service, driver = chat.trading.service, chat.trading.driver
        assert driver is not None
        await driver.step()
        run = run_of(chat, BTC)
        assert service.unbuilt(run)
        assert service.faults.of(run.id) is not None, "not faulted at its first close"
        marker.unlink()
        began = slow_fetch_of(chat, ETH, 1.5)
        step = asyncio.create_task(driver.step())
        await asyncio.wait_for(began.wait(), 10)
        reply = await chat.ask(TRADER, "/resume BTC/USDT")
        await step
        assert "esumed" in reply, reply
        assert not service.unbuilt(run_of(chat, BTC)), "the /resume built it"
        fault = service.faults.of(run.id)
        assert fault is None, (
            f"resumed and built, then faulted again by the tick that began before the /resume: "
            f"{fault}; the pair is {run_of(chat, BTC).state.value}"
        )
        assert run_of(chat, BTC).state is RunState.RUNNING

"""A running pair whose strategy is held and then cannot be built again, both while a tick
asks it (review s24-review-tick, left untested in session 24): ``/allow mine off`` holds the
pair, and a ``/reload`` of an edit whose constructor raises drops its strategy object. The
acting pass found the pair silenced and looked up the object it no longer has: a KeyError
under the tick lock, and the close lost for every pair.

The live stack on the fake exchange, the chat on the Telegram emulator (real PTB), real SQLite,
the strategies loaded from a user folder."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pandas as pd

from tests.integration.test_chat_allow import MINE, confirmed
from tests.rigs.chat_rig import ADMIN
from tests.rigs.gated import START, held, live_chat, user_strategies
from tests.rigs.live_rig import HOUR

UNBUILDABLE = """
from strategies.ema_cross import EmaCross


class Mine(EmaCross):
    name = "mine"

    def check_params(self):
        raise RuntimeError("its data file is missing")
"""


async def test_a_pair_held_and_unbuilt_while_its_strategy_computes_is_faulted_not_crashed(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    folder = tmp_path / "user_strategies"
    with user_strategies(folder):
        async with live_chat(tmp_path, btc_candles, MINE) as (chat, market):
            service = chat.trading.service
            await confirmed(chat, "/allow mine")
            assert held(service) == {}
            (run,) = [run for run in service.runs() if run.pair == "ETH/USDT"]
            strategy = service.strategy_of(run)
            assert strategy is not None
            computing, release = threading.Event(), threading.Event()
            real = strategy.compute_signals

            def slow(candles: pd.DataFrame) -> pd.Series:
                computing.set()
                release.wait(10)
                return real(candles)

            strategy.compute_signals = slow  # type: ignore[method-assign]
            market.at(START.replace(minute=0, second=5) + HOUR)
            tick = asyncio.create_task(service.tick("1h"))
            try:
                assert await asyncio.to_thread(computing.wait, 10), "never asked"
                _, revoked = await confirmed(chat, "/allow mine off")
                assert "Held again: ETH/USDT." in revoked, revoked
                (folder / "mine.py").write_text(UNBUILDABLE, encoding="utf-8")
                reloaded = await chat.ask(ADMIN, "/reload")
                assert "removed: mine" in reloaded.splitlines(), reloaded  # not loaded: unbuilt
                assert service.strategy_of(run) is None, "the reload's rebuild built it"
            finally:
                release.set()
            await asyncio.wait_for(tick, 30)  # raised KeyError before
            fault = service.faults.of(run.id)
            assert fault is not None, "held and unbuilt, not faulted"
            assert "unknown strategy 'mine'" in fault.reason, fault  # its file loads no more
            failed = "SELECT count(*) AS n FROM alerts WHERE kind = 'strategy_failed'"
            assert (await chat.db.fetch_one(failed))["n"] == 1  # type: ignore[index]
            assert chat.trading.engine.portfolio.position("ETH/USDT") is None

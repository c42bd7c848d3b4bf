"""Review finding 11 of issue 18 (session 24): the start-up of a live service. Its prime
(``TradingService.prime``, in ``assemble_on_exchange``, before the chat and the jobs start)
asks each run's strategy in turn for its ``history``, each wait up to ``strategy_timeout``
(30 s by default): a strategy stuck there (its ``warmup``) holds the start-up 30 s per pair on
it, with no chat (not even /halt) and a SIGTERM not acted on until it ends; ten pairs on it:
five minutes after every restart.

The live stack (ccxt on the Binance fake, real SQLite), the strategy loaded from a user
folder; its ``warmup`` stuck only in the service's strategy threads (the start-up's check of
the strategy runs it elsewhere)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bot.app.strategy_loading import load_strategies
from strategies.registry import install
from tests.review_live_fixtures import strategy_class
from tests.rigs.live_rig import funded_fake, live_stack

START = datetime(2025, 6, 27, 0, 30, tzinfo=UTC)

STUCK_WARMUP = """
import threading
import time
from typing import ClassVar

import numpy as np
import pandas as pd

from strategies.base import ParamSpec, Strategy


class StuckWarmup(Strategy):
    name = "stuckwarmup"
    description = "its warmup never returns in the service's strategy threads once armed"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()
    armed = False
    release = threading.Event()

    @property
    def warmup(self):
        cls = type(self)
        if cls.armed and threading.current_thread().name == "strategy":
            while not cls.release.is_set():
                time.sleep(0.01)
        return 2

    def compute_signals(self, candles):
        return pd.Series(np.zeros(len(candles), dtype=np.int8), index=candles.index)
"""


async def test_a_strategy_stuck_at_start_up_does_not_hold_the_start_for_its_timeout(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "stuckwarmup.py").write_text(STUCK_WARMUP, encoding="utf-8")
    install(load_strategies(folder, explicit=True).registry)
    stuck = strategy_class("stuckwarmup")
    stuck.armed = True
    stuck.release.clear()
    try:
        began = time.perf_counter()
        async with live_stack(tmp_path, funded_fake(btc_candles), START, strategy="stuckwarmup"):
            took = time.perf_counter() - began
            assert took < 5.0, (
                f"the live service took {took:.1f} s to start (no chat meanwhile): its one "
                "pair's strategy was waited for the whole strategy_timeout at the prime"
            )
    finally:
        stuck.release.set()

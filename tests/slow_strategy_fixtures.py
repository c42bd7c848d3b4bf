"""Hostile and slow user strategies for the review of the strategy threads (session 24,
s24-review-slow): a replay of the samples with each pair on a strategy whose behaviour the
test sets through its class attributes, loaded from a user folder as a user's would be."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from bot.app.config import Settings, load_settings
from tests.rigs.builders import SAMPLES
from tests.rigs.chat_rig import Chat

BTC, ETH, SOL = "BTC/USDT", "ETH/USDT", "SOL/USDT"
FILES = {BTC: "BTC_USDT", ETH: "ETH_USDT", SOL: "BTC_USDT"}  # SOL replays BTC's candles

# Every class: HOLD while ``mode`` is "", else computes as told then ENTERs on the last
# candle (``enter``) or HOLDs. ``mode``: "sleep" (a blocking call of ``seconds``), "spin"
# (pure Python for ``seconds`` of wall time), "work" (``units`` of pure-Python work: a fixed
# amount of CPU), "stuck" (an endless loop until ``release``), "raise" (raises ``error()``).
# ``init_seconds``: check_params (called by the constructor) sleeps that long;
# ``indicator_seconds``: indicators() sleeps that long.
SOURCE = """
import threading
import time
from typing import ClassVar

import numpy as np
import pandas as pd

from bot.core.errors import StrategyFailed
from strategies.base import ParamSpec, Strategy


class Unprintable(BaseException):
    def __str__(self):
        raise Unprintable()


class SlowFailure(StrategyFailed):
    def __str__(self):
        time.sleep(type(self).seconds)
        return "slow to print"


class BrokenFailure(StrategyFailed):
    @property
    def reason(self):
        raise ValueError("no reason")

    @reason.setter
    def reason(self, value):
        pass


class SlowDict(dict):
    seconds = 0.0

    def __getitem__(self, key):
        time.sleep(type(self).seconds)
        return super().__getitem__(key)


def work(units):
    total = 0
    for _ in range(units):
        total += sum(range(1000))
    return total


class Probe(Strategy):
    name = "{name}"
    description = "computes as the test tells it"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()
    mode = ""
    enter = True
    seconds = 0.0
    units = 0
    init_seconds = 0.0
    indicator_seconds = 0.0
    error = None
    started = threading.Event()
    release = threading.Event()
    calls = 0
    computing = 0
    took: list = []

    def check_params(self):
        time.sleep(type(self).init_seconds)

    @property
    def warmup(self):
        return 2

    def indicators(self, candles):
        time.sleep(type(self).indicator_seconds)
        return {"close": candles["close"]}

    def compute_signals(self, candles):
        cls = type(self)
        cls.calls += 1
        codes = np.zeros(len(candles), dtype=np.int8)
        if not cls.mode:
            return pd.Series(codes, index=candles.index)
        cls.computing += 1
        began = time.perf_counter()
        try:
            cls.started.set()
            if cls.mode == "sleep":
                time.sleep(cls.seconds)
            elif cls.mode == "spin":
                end = time.perf_counter() + cls.seconds
                while time.perf_counter() < end:
                    sum(range(100))
            elif cls.mode == "work":
                work(cls.units)
            elif cls.mode == "stuck":
                while not cls.release.is_set():
                    sum(range(100))
            elif cls.mode == "raise":
                raise cls.error()
            elif cls.mode == "params":  # the user's own dict of parameters, then a failure
                slow = SlowDict(self.params)
                self.params = slow
                raise ValueError("params swapped")
            if cls.enter:
                codes[-1] = 1
            return pd.Series(codes, index=candles.index)
        finally:
            cls.computing -= 1
            cls.took.append(time.perf_counter() - began)
"""

STEADY = """
from typing import ClassVar

import numpy as np
import pandas as pd

from strategies.base import ParamSpec, Strategy


class Steady(Strategy):
    name = "steady"
    description = "every six hours"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self):
        return 2

    def compute_signals(self, candles):
        hour = (candles["timestamp"] // 3_600_000) % 6
        codes = np.where(hour == 0, 1, np.where(hour == 3, -1, 0)).astype(np.int8)
        return pd.Series(codes, index=candles.index)
"""


def write_config(
    tmp_path: Path,
    pairs: dict[str, str],
    *,
    timeout: float = 30.0,
    extra: str = "",
    names: tuple[str, ...] = ("probe", "other"),
) -> Path:
    """A replay config trading ``pairs`` (pair: strategy name, from "probe", "other" and
    "steady"); each share equal."""
    folder = tmp_path / "user_strategies"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / f"{name}.py").write_text(SOURCE.replace("{name}", name), encoding="utf-8")
    (folder / "steady.py").write_text(STEADY, encoding="utf-8")
    share = round(1 / len(pairs), 6)
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "data"\nstrategy_timeout = {timeout}\n{extra}'
        '[market_data]\nsource = "replay"\n[market_data.replay_files]\n'
        + "".join(f'"{p}" = "{SAMPLES / (FILES[p] + "-1h.csv.gz")}"\n' for p in pairs)
        + "".join(
            f'[[pairs]]\npair = "{p}"\nstrategy = "{s}"\ncapital_share = {share}\n'
            for p, s in pairs.items()
        ),
        encoding="utf-8",
    )
    return config


def settings(tmp_path: Path, pairs: dict[str, str], timeout: float = 30.0) -> Settings:
    return load_settings(write_config(tmp_path, pairs, timeout=timeout), None)


def probe(chat: Chat, pair: str) -> Any:
    """The class of the strategy ``pair`` trades with, its knobs reset (Any: tests set them)."""
    run = chat.trading.service.run_for(pair)
    assert run is not None
    strategy = chat.trading.service.strategy_of(run)
    assert strategy is not None
    cls: Any = type(strategy)
    cls.started.clear()
    cls.release.clear()
    cls.took = []
    return cls


def run_of(chat: Chat, pair: str) -> Any:
    run = chat.trading.service.run_for(pair)
    assert run is not None
    return run


async def started(cls: Any) -> None:
    """Until ``cls`` computes (waited for in a thread: the loop goes on meanwhile)."""
    assert await asyncio.to_thread(cls.started.wait, 10), "the strategy never computed"


async def stalled[T](work: Awaitable[T]) -> tuple[T, float]:
    """``work``'s result, and the longest the event loop was held while it ran (a 10 ms
    heartbeat's longest gap): how long /halt would have waited."""
    longest = 0.0
    done = False

    async def beat() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    heart = asyncio.create_task(beat())
    try:
        result = await work
    finally:
        done = True
        await heart
    return result, longest


def user_module(cls: Any) -> Any:
    """The user-folder module ``cls`` (a loaded strategy class) was defined in."""
    return sys.modules[cls.__module__]

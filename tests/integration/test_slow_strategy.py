"""A slow strategy never holds the service (review finding 11 of issue 18): its code runs in a
worker thread, the chat answers meanwhile, /halt wins over the entry it then returns, and one
computing past ``strategy_timeout`` pauses only its pair, without a second thread on it.

The replay service (real SQLite, the strategy loaded as a user's from its folder), the chat on
the Telegram emulator (real PTB); the stop of a process running the service by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot.app.config import Settings, load_settings
from bot.core.domain import RunState
from bot.core.errors import ConfigError
from tests.rigs.builders import SAMPLES
from tests.rigs.chat_rig import ADMIN, Chat, chat_stack
from tests.slow_strategy_fixtures import run_of, started

BTC, ETH = "BTC/USDT", "ETH/USDT"

# "slow": HOLD, but ENTER on the last candle while ``mode`` is set, computing as told:
# "sleep" (a blocking call), "spin" (pure Python holding the GIL), "stuck" (an endless loop,
# until the test releases it), "forever" (an endless loop); counts threads computing at once.
SLOW = """
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from strategies.base import ParamSpec, Strategy


class Slow(Strategy):
    name = "slow"
    description = "enters when told, computing as long as told"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()
    mode = "{mode}"
    seconds = 0.0
    started = threading.Event()
    release = threading.Event()
    idle = threading.Event()
    marker = "{marker}"
    computing = 0
    most_at_once = 0
    lock = threading.Lock()

    @property
    def warmup(self) -> int:
        return 2

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        cls = type(self)
        with cls.lock:
            cls.computing += 1
            cls.most_at_once = max(cls.most_at_once, cls.computing)
        try:
            codes = np.zeros(len(candles), dtype=np.int8)
            if not cls.mode:
                return pd.Series(codes, index=candles.index)
            cls.started.set()
            if cls.marker:
                Path(cls.marker).touch()
            if cls.mode == "sleep":
                time.sleep(cls.seconds)
            elif cls.mode == "spin":
                end = time.perf_counter() + cls.seconds
                while time.perf_counter() < end:
                    sum(range(100))
            elif cls.mode == "stuck":
                while not cls.release.is_set():
                    pass
            elif cls.mode == "forever":
                while True:
                    pass
            codes[-1] = 1
            return pd.Series(codes, index=candles.index)
        finally:
            with cls.lock:
                cls.computing -= 1
                if not cls.computing:
                    cls.idle.set()


class Steady(Strategy):
    name = "steady"
    description = "every six hours"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self) -> int:
        return 2

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        hour = (candles["timestamp"] // 3_600_000) % 6
        codes = np.where(hour == 0, 1, np.where(hour == 3, -1, 0)).astype(np.int8)
        return pd.Series(codes, index=candles.index)
"""


def write_config(
    tmp_path: Path, *, timeout: float = 30.0, mode: str = "", marker: str = "", speed: int = 3600
) -> Path:
    """BTC/USDT on "slow", ETH/USDT on "steady", replaying the samples."""
    folder = tmp_path / "user_strategies"
    folder.mkdir(exist_ok=True)
    source = SLOW.replace("{mode}", mode).replace("{marker}", marker)
    (folder / "slow.py").write_text(source, encoding="utf-8")
    files = {pair: SAMPLES / f"{pair.replace('/', '_')}-1h.csv.gz" for pair in (BTC, ETH)}
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "data"\nstrategy_timeout = {timeout}\n'
        f'[market_data]\nsource = "replay"\nreplay_speed = {speed}\n'
        "[market_data.replay_files]\n"
        + "".join(f'"{pair}" = "{path}"\n' for pair, path in files.items())
        + '[[pairs]]\npair = "BTC/USDT"\nstrategy = "slow"\ncapital_share = 0.5\n'
        '[[pairs]]\npair = "ETH/USDT"\nstrategy = "steady"\ncapital_share = 0.5\n',
        encoding="utf-8",
    )
    return config


def slow_settings(tmp_path: Path, timeout: float = 30.0) -> Settings:
    return load_settings(write_config(tmp_path, timeout=timeout), None)


def slow_class(chat: Chat) -> Any:
    """The installed "slow" class (Any: the tests set its own attributes)."""
    strategy = chat.trading.service.strategy_of(run_of(chat, BTC))
    assert strategy is not None
    cls: Any = type(strategy)
    cls.started.clear()
    return cls


async def failed_alerts(chat: Chat) -> int:
    """strategy_failed alerts written, delivered or not."""
    async with chat.db.connection.execute(
        "SELECT count(*) FROM alerts WHERE kind = 'strategy_failed'"
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def returned(chat: Chat) -> None:
    """Until BTC's strategy call has returned in its thread: the fixture's ``idle`` is set in
    its ``signals``, before the thread's output checks end (a /resume and a close right after
    ``idle`` still found it computing, under load)."""
    strategy = chat.trading.service.strategy_of(run_of(chat, BTC))
    assert strategy is not None
    for _ in range(1000):
        if not chat.trading.service._threads.computing(strategy):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("BTC's strategy call never returned")


async def halt_while_computing(chat: Chat, mode: str, seconds: float) -> float:
    """Seconds /halt took to be answered, sent while the strategy computes ``seconds``."""
    driver = chat.trading.driver
    assert driver is not None
    await driver.step()
    slow = slow_class(chat)
    slow.mode, slow.seconds = mode, seconds
    step = asyncio.create_task(driver.step())
    await started(slow)  # the strategy computes from here
    began = time.perf_counter()
    reply = await chat.ask(ADMIN, "/halt")
    waited = time.perf_counter() - began
    assert slow.computing == 1, "/halt was answered only once the strategy had returned"
    assert not step.done(), "the strategy computed less long than the test needs"
    await step
    assert "halt" in reply.lower(), reply
    return waited


async def test_halt_answers_at_once_and_wins_over_the_entry_returned_after_it(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path, slow_settings(tmp_path)) as chat:
        waited = await halt_while_computing(chat, "sleep", 3.0)
        assert waited < 1.0, f"/halt answered after {waited:.2f} s"
        assert chat.trading.engine.portfolio.position(BTC) is None  # ENTER came after the halt
        assert not await chat.trading.engine.executor.journal.not_final()
        assert chat.trading.service.faults.of(run_of(chat, BTC).id) is None


async def test_halt_answers_while_a_pure_python_strategy_holds_the_gil(tmp_path: Path) -> None:
    async with chat_stack(tmp_path, slow_settings(tmp_path)) as chat:
        waited = await halt_while_computing(chat, "spin", 3.0)
        assert waited < 1.0, f"/halt answered after {waited:.2f} s"
        assert chat.trading.engine.portfolio.position(BTC) is None


async def test_an_entry_decided_in_the_thread_is_placed(tmp_path: Path) -> None:
    """The control of the halt tests: without /halt, the same ENTER opens the position."""
    async with chat_stack(tmp_path, slow_settings(tmp_path)) as chat:
        driver = chat.trading.driver
        assert driver is not None
        await driver.step()
        slow = slow_class(chat)
        slow.mode, slow.seconds = "sleep", 0.2
        await driver.step()
        assert chat.trading.engine.portfolio.position(BTC) is not None


async def test_a_strategy_past_its_timeout_pauses_only_its_pair_and_is_never_run_twice(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path, slow_settings(tmp_path, timeout=0.5)) as chat:
        trading = chat.trading
        service, driver = trading.service, trading.driver
        assert driver is not None
        await driver.step()
        slow = slow_class(chat)
        slow.release.clear()
        slow.idle.clear()
        slow.mode = "stuck"
        try:
            eth_ticked = service.last_ticks[ETH]
            began = time.perf_counter()
            await driver.step()
            assert time.perf_counter() - began < 5.0
            btc = run_of(chat, BTC)
            fault = service.faults.of(btc.id)
            assert fault is not None
            assert btc.state is RunState.PAUSED
            assert fault.reason.startswith("took longer than 0.5 s on the candle of 20"), fault
            assert fault.reason.endswith(" UTC"), fault
            assert service.last_ticks[ETH] > eth_ticked  # the other pair traded on
            assert service.faults.of(run_of(chat, ETH).id) is None
            assert await failed_alerts(chat) == 1
            # still computing: /resume, and the next close fails it again, no second thread
            await trading.control.resume(BTC)
            btc_ticked = service.last_ticks[BTC]
            await driver.step()
            fault = service.faults.of(run_of(chat, BTC).id)
            assert fault is not None
            assert fault.reason.startswith("still computing the candle of 20"), fault
            assert service.last_ticks[BTC] > btc_ticked  # its stops were still checked
            assert slow.most_at_once == 1
        finally:
            slow.release.set()
        assert await asyncio.to_thread(slow.idle.wait, 10)
        await returned(chat)
        slow.mode = ""
        await trading.control.resume(BTC)
        await driver.step()  # returned since: asked again, decides
        assert service.faults.of(run_of(chat, BTC).id) is None
        assert slow.most_at_once == 1
        assert await failed_alerts(chat) == 2


async def test_a_stop_does_not_wait_for_a_strategy_stuck_computing(tmp_path: Path) -> None:
    async with chat_stack(tmp_path, slow_settings(tmp_path)) as chat:
        driver = chat.trading.driver
        assert driver is not None
        await driver.step()
        slow = slow_class(chat)
        slow.release.clear()
        slow.mode = "stuck"
        try:
            step = asyncio.create_task(driver.step())
            await started(slow)
            began = time.perf_counter()
            chat.trading.service.abandon_strategies(grace=0.0)
            await asyncio.wait_for(step, 2.0)
            assert time.perf_counter() - began < 1.0
            assert chat.trading.service.faults.of(run_of(chat, BTC).id) is None
            assert chat.trading.engine.portfolio.position(BTC) is None
        finally:
            slow.release.set()


async def test_a_cancelled_tick_is_cancelled_not_a_strategy_failure(tmp_path: Path) -> None:
    """The service cancelling its own tick (bot/trading/strategy_calls.py): CancelledError
    leaves the tick, the strategy computing is not failed for it."""
    async with chat_stack(tmp_path, slow_settings(tmp_path)) as chat:
        driver = chat.trading.driver
        assert driver is not None
        await driver.step()
        slow = slow_class(chat)
        slow.mode, slow.seconds = "sleep", 1.0
        slow.idle.clear()
        step = asyncio.create_task(driver.step())
        await started(slow)
        step.cancel()
        with pytest.raises(asyncio.CancelledError):
            await step
        assert chat.trading.service.faults.of(run_of(chat, BTC).id) is None
        assert await failed_alerts(chat) == 0
        assert await asyncio.to_thread(slow.idle.wait, 10)


def test_a_process_running_the_service_exits_with_a_strategy_in_an_endless_loop(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "computing"
    config = write_config(tmp_path, timeout=3600, mode="forever", marker=str(marker))
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "run", "--config", str(config)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SAMPLES.parents[1])},
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():  # the service is up, its strategy in its endless loop
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the strategy never ran"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        out, err = process.communicate(timeout=30)
        # The stop waits up to 2 s (STOP_GRACE) for a quick strategy's answer, then shuts
        # down beside a thread spinning pure Python, which takes half the GIL: 5.2-5.4 s on a
        # quiet 2-core machine (2026-11-27). What matters is that it ends, not in 300 s
        # (asyncio.run's executor wait) or never (the interpreter joining the thread).
        assert time.monotonic() - signalled < 10, "did not stop within 10 s"
        assert process.returncode == 0, err
        assert "pairpilot stopped" in out
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_the_timeout_setting_is_read_and_bad_values_are_refused(tmp_path: Path) -> None:
    assert load_settings(write_config(tmp_path, timeout=2.5), None).strategy_timeout == 2.5
    assert load_settings(None, None).strategy_timeout == 30.0
    for bad in ("0", "-1", "5000", '"soon"'):
        config = write_config(tmp_path)
        text = config.read_text(encoding="utf-8").replace("= 30.0", f"= {bad}", 1)
        config.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match="strategy_timeout"):
            load_settings(config, None)

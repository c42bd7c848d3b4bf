"""A service stop is not held by a chat /backtest of a strategy stuck in an endless loop
(issue 18, finding 11). On the loop's default executor (``asyncio.to_thread``) its thread
would be waited for by ``asyncio.run`` (up to 300 s) and joined by the interpreter at exit,
so `pairpilot run` would not stop on SIGTERM (docker stop's 10 s grace ends in SIGKILL).

`pairpilot run` in a child process (replay, real SQLite), its Telegram front end on the Bot API
emulator served by this test."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.doubles.telegram_emulator import TelegramEmulator, running
from tests.rigs.builders import SAMPLES
from tests.rigs.chat_rig import ADMIN

# HOLD on every candle; outside the service's strategy threads (a /backtest's worker), an
# endless loop once it has written its marker.
HANG = """
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from strategies.base import ParamSpec, Strategy


class Hang(Strategy):
    name = "hang"
    description = "hangs outside the strategy threads"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self):
        return 2

    def compute_signals(self, candles):
        if threading.current_thread().name != "strategy":
            Path("{marker}").touch()
            while True:
                sum(range(100))
        return pd.Series(np.zeros(len(candles), dtype=np.int8), index=candles.index)
"""


def write_config(tmp_path: Path, base: str, marker: Path) -> Path:
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "hang.py").write_text(HANG.replace("{marker}", str(marker)), encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        'data_dir = "data"\n[market_data]\nsource = "replay"\nreplay_speed = 3600\n'
        "[market_data.replay_files]\n"
        f'"BTC/USDT" = "{SAMPLES / "BTC_USDT-1h.csv.gz"}"\n'
        '[[pairs]]\npair = "BTC/USDT"\nstrategy = "hang"\ncapital_share = 1.0\n'
        f'[telegram]\napi_base_url = "{base}"\n'
        f'[[telegram.users]]\nid = {ADMIN}\nrole = "admin"\n',
        encoding="utf-8",
    )
    return config


async def until(
    check: object, seconds: float, what: object, process: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert process.poll() is None, f"the service ended: {process.communicate()}"
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            process.kill()
            out, err = process.communicate()
            raise AssertionError(f"{said} not within {seconds} s; {err[-3000:]}")
        await asyncio.sleep(0.1)


async def test_sigterm_stops_the_service_while_a_backtest_of_a_stuck_strategy_runs(
    tmp_path: Path,
) -> None:
    emulator = TelegramEmulator()
    marker = tmp_path / "backtesting"
    async with running(emulator) as base:
        config = write_config(tmp_path, base, marker)
        process = subprocess.Popen(  # noqa: ASYNC220  (waited for in threads below)
            [sys.executable, "-m", "bot.cli.main", "run", "--config", str(config)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "PYTHONPATH": str(SAMPLES.parents[1]),
                "PAIRPILOT_TELEGRAM_TOKEN": emulator.token,
            },
        )
        try:
            started = lambda: any("started" in m.text for m in emulator.to(ADMIN))  # noqa: E731
            await until(started, 90, "the start-up alert", process)
            await asyncio.sleep(5)  # a few candles of the replay closed: enough to backtest
            emulator.say(ADMIN, "/backtest BTC/USDT hang")
            await until(
                marker.exists,
                60,
                lambda: f"the backtest computing (chat: {[m.text for m in emulator.to(ADMIN)]})",
                process,
            )
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            try:
                _, err = await asyncio.to_thread(process.communicate, timeout=30)
            except subprocess.TimeoutExpired:
                err = ""
            stopped = time.monotonic() - signalled
            assert process.returncode is not None, (
                "`pairpilot run` still running 30 s after SIGTERM: the /backtest's executor "
                "thread, stuck in the strategy, is waited for (asyncio.run: up to 300 s, then "
                "the interpreter's join at exit: for ever)"
            )
            assert stopped < 5, f"stopped {stopped:.1f} s after SIGTERM"
            assert process.returncode == 0, err[-2000:]
            assert "pairpilot stopped" in err  # the log (stderr); stdout has no alerts here
            assert any(m.text == "pairpilot stopped" for m in emulator.to(ADMIN))
        finally:
            if process.poll() is None:
                process.kill()
                await asyncio.to_thread(process.communicate)

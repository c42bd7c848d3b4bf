"""Pair runs and the kill switch, through the real stack: replay, paper exchange, SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.app.bootstrap import Trading, assemble_replay
from bot.app.startup import load_replay
from bot.core.domain import RunState
from bot.core.errors import NotFound, UserInputError
from storage.db import open_database
from storage.fills import SqliteFillRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.vetoes import SqliteVetoRepository
from tests.rigs.builders import replay_settings


@asynccontextmanager
async def stack(tmp_path: Path) -> AsyncIterator[Trading]:
    config = replay_settings(tmp_path)
    replay = load_replay(config)
    replay.source.check_pair("ETH/USDT")
    async with open_database(config.database_path) as db:
        yield await assemble_replay(db, config, replay)


async def steps(trading: Trading, count: int) -> None:
    for _ in range(count):
        await trading.driver.step()


async def run_count(trading: Trading) -> int:
    return len(trading.service.runs())


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("SOL/USDT", "ema_cross", "1h", {}, 0.3), NotFound, "SOL/USDT has no replay data"),
        (("ETH/USDT", "ema_cross", "4h", {}, 0.3), UserInputError, "replays 1h candles, not 4h"),
        (("ETH/USDT", "ema_crossing", "1h", {}, 0.3), UserInputError, "did you mean ema_cross"),
        (("ETH/USDT", "ema_cross", "1h", {"fast": 900}, 0.3), UserInputError, "out of bounds"),
        (("ETH/USDT", "ema_cross", "1h", {}, 0.6), UserInputError, "would add up to 110%"),
        (("ETH/USDT", "ema_cross", "1h", {}, 0.0), UserInputError, "must be above 0"),
        (("BTC/USDT", "ema_cross", "1h", {}, 0.1), UserInputError, "already running"),
    ],
)
async def test_bad_start_requests_change_nothing(
    tmp_path: Path, args: tuple, error: type[Exception], message: str
) -> None:
    async with stack(tmp_path) as trading:
        with pytest.raises(error, match=message):
            await trading.control.start_pair(*args)
        assert [run.pair for run in trading.service.runs()] == ["BTC/USDT"]
        assert (
            await SqlitePairRunRepository(trading.engine.executor.transactions).active()
            == trading.service.runs()
        )


async def test_started_pair_trades_pause_keeps_exits_and_stop_closes(tmp_path: Path) -> None:
    async with stack(tmp_path) as trading:
        run = await trading.control.start_pair(
            "ETH/USDT", "ema_cross", "1h", {"fast": 5, "slow": 20}, 0.4
        )
        assert run.state is RunState.RUNNING
        while trading.engine.portfolio.position("ETH/USDT") is None:
            await steps(trading, 1)
        paused = await trading.control.pause("ETH/USDT")
        assert paused.state is RunState.PAUSED
        while trading.engine.portfolio.position("ETH/USDT") is not None:  # the exit still fires
            await steps(trading, 1)
        fills_before = await SqliteFillRepository(trading.engine.executor.transactions).all()
        await steps(trading, 200)  # paused: no new entries in ETH
        eth_buys = [
            f
            for f in await SqliteFillRepository(trading.engine.executor.transactions).all()
            if f.pair == "ETH/USDT" and f not in fills_before
        ]
        assert eth_buys == []
        with pytest.raises(UserInputError, match="is paused, not running"):
            await trading.control.pause("ETH/USDT")
        await trading.control.resume("ETH/USDT")
        while trading.engine.portfolio.position("ETH/USDT") is None:
            await steps(trading, 1)
        stopped = await trading.control.stop("ETH/USDT")
        assert stopped.state is RunState.STOPPED
        assert trading.engine.portfolio.position("ETH/USDT") is None
        assert trading.service.run_for("ETH/USDT") is None
        with pytest.raises(NotFound, match="ETH/USDT has no active run"):
            await trading.control.stop("ETH/USDT")


async def test_flatten_halts_closes_everything_verifies_and_is_idempotent(
    tmp_path: Path,
) -> None:
    async with stack(tmp_path) as trading:
        await trading.control.start_pair("ETH/USDT", "ema_cross", "1h", {}, 0.4)
        while len(trading.engine.portfolio.positions()) < 2:
            await steps(trading, 1)
        report, _ = await asyncio.gather(trading.control.flatten(), trading.driver.step())
        assert report.halted_now
        assert set(report.closed) == {"BTC/USDT", "ETH/USDT"}
        assert report.clean
        assert trading.engine.portfolio.positions() == []
        again = await trading.control.flatten()
        assert (again.halted_now, again.closed, again.left) == (False, {}, {})
        await steps(trading, 300)  # halted: no entry anywhere
        assert trading.engine.portfolio.positions() == []
        vetoes = await SqliteVetoRepository(trading.engine.executor.transactions).latest(1)
        assert "kill switch" in vetoes[0][3]


async def test_halt_and_run_states_survive_a_restart(tmp_path: Path) -> None:
    async with stack(tmp_path) as trading:
        await trading.control.start_pair("ETH/USDT", "ema_cross", "1h", {}, 0.4)
        await trading.control.pause("ETH/USDT")
        await steps(trading, 50)
        await trading.control.flatten()
        clock_before = trading.clock.now()
    async with stack(tmp_path) as trading:
        assert await trading.engine.guard.halted() is not None
        states = {run.pair: run.state for run in trading.service.runs()}
        assert states == {"BTC/USDT": RunState.RUNNING, "ETH/USDT": RunState.PAUSED}
        assert trading.clock.now() == clock_before
        assert await trading.engine.guard.resume(1000.0, trading.clock.now())
        assert await trading.engine.guard.halted() is None

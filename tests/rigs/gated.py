"""Live stacks with user strategies in a folder, for the live gate's tests
(bot/trading/strategy_gate.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bot.app.chat_root import chat_venue
from bot.app.strategy_loading import load_strategies
from bot.core.clock import FakeClock, SystemClock
from bot.core.domain import PairRun
from bot.market.history import ExchangeHistory
from bot.trading.service import TradingService
from storage.candles import SqliteCandleRepository
from storage.db import open_database
from storage.pair_runs import SqlitePairRunRepository
from strategies import install
from tests.doubles.fake_exchange import FakeBinance
from tests.doubles.telegram_emulator import TelegramEmulator
from tests.rigs.chat_rig import Chat, chat_on
from tests.rigs.live_rig import Market, funded_fake, live_settings, live_stack, venue_client

START = datetime(2025, 6, 23, 9, 30, tzinfo=UTC)
# A user strategy trading as ema_cross does: its own file, so its own source hash.
USER_EMA = """
from strategies.ema_cross import EmaCross


class UserEma(EmaCross):
    name = "{name}"
"""
OTHERS = ("ETHUSDT", "SOLUSDT", "XRPUSDT")


@contextmanager
def user_strategies(folder: Path) -> Iterator[Path]:
    """Three user strategies in ``folder``, ``mine``, ``edited`` and ``checked``, loaded and
    made the process's while in the block."""
    folder.mkdir()
    for name in ("mine", "edited", "checked"):
        (folder / f"{name}.py").write_text(USER_EMA.format(name=name), encoding="utf-8")
    loaded = load_strategies(folder, explicit=True)
    assert not loaded.problems
    previous = install(loaded.registry)
    try:
        yield folder
    finally:
        install(previous)


def edited(folder: Path, name: str, comment: str) -> None:
    """Append ``comment`` to the strategy file ``name``.py, then load the folder again and make
    it the process's, as the next start-up (or /reload) does: a class already loaded keeps the
    source hash of the code it was loaded from (bot/research/strategy_source.py)."""
    file = folder / f"{name}.py"
    file.write_text(file.read_text() + f"\n# {comment}\n")
    loaded = load_strategies(folder, explicit=True)
    assert not loaded.problems
    install(loaded.registry)


def fake_with_pairs(candles: pd.DataFrame) -> FakeBinance:
    fake = funded_fake(candles)
    for symbol in OTHERS:
        fake.add_candles(symbol, "1h", candles)
    return fake


async def persisted_runs(tmp_path: Path, runs: dict[str, str]) -> None:
    """Runs left active by an earlier start (pair: strategy), 10% of capital each."""
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        repository = SqlitePairRunRepository(db)
        for pair, strategy in runs.items():
            await repository.add(
                pair=pair,
                strategy=strategy,
                timeframe="1h",
                params={},
                capital_share=0.1,
                now=START,
            )


def held(service: TradingService) -> dict[str, str]:
    """Each held run's pair, and why the gate holds it."""
    return {run.pair: service.held[run.id] for run in service.runs() if run.id in service.held}


def counted(service: TradingService, run: PairRun) -> list[int]:
    """The calls of ``run``'s strategy object to compute_signals from now on."""
    strategy = service.strategy_of(run)
    assert strategy is not None
    calls: list[int] = []
    real = strategy.compute_signals

    def counting(candles: pd.DataFrame) -> pd.Series:
        calls.append(1)
        return real(candles)

    strategy.compute_signals = counting  # type: ignore[method-assign]
    return calls


@asynccontextmanager
async def live_chat(
    tmp_path: Path, candles: pd.DataFrame, runs: dict[str, str]
) -> AsyncIterator[tuple[Chat, Market]]:
    """The live stack with ``runs`` (pair: strategy) left from an earlier start, and the chat
    with /reload of tmp_path/user_strategies."""
    await persisted_runs(tmp_path, runs)
    fake = fake_with_pairs(candles)
    settings = live_settings(tmp_path, "http://127.0.0.1:1")
    wall = FakeClock(SystemClock().now())
    emulator = TelegramEmulator()
    emulator.clock = lambda: wall.now().timestamp()
    async with (
        live_stack(tmp_path, fake, START) as (trading, market, _),
        open_database(tmp_path / "pairpilot.sqlite") as db,
        venue_client("binance", fake) as (_, exchange),
    ):
        venue = chat_venue(settings, "binance", trading)
        history = ExchangeHistory(exchange, SqliteCandleRepository(db))
        on = settings.model_copy(update={"strategies_dir": tmp_path / "user_strategies"})
        async with chat_on(db, trading, venue, history, emulator, wall, settings=on) as chat:
            yield chat, market

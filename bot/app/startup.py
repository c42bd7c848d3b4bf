"""The start-up steps: the replay files read and checked, the pair runs as configured, and the
books settled against the exchange before the first tick."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.alerts.outbox import AlertOutbox
from bot.app.config import Settings
from bot.core.domain import PairRun
from bot.core.errors import ConfigError
from bot.core.ports import Clock
from bot.core.timeframes import timeframe_delta
from bot.execution.reconcile import reconcile
from bot.market.candle_files import (
    ReplaySource,
    read_candle_file,
    timeframe_of,
)
from bot.portfolio.outside import OutsideHoldings
from bot.research.strategy_gate import StrategyGate
from bot.trading.dust import DustDesk
from bot.trading.engine import Engine
from storage.db import Database
from storage.orders import SqliteOrderRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import SqliteStateRepository
from storage.strategy_checks import SqliteStrategyCheckRepository
from storage.strategy_overrides import SqliteStrategyOverrideRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Replay:
    source: ReplaySource
    start: datetime
    end: datetime
    step: timedelta


def load_replay(settings: Settings) -> Replay:
    """Every configured replay file, checked: pairs can be started later from any of them.

    A file's timeframe is its configured pair's, else its name's, else its candles' own step.
    The replay spans the time all the files share.
    """
    configured = {pair.pair: pair.timeframe for pair in settings.pairs}
    frames, timeframes = {}, {}
    for pair, path in settings.market_data.replay_files.items():
        frame = read_candle_file(path)
        timeframe = timeframe_of(path, configured.get(pair), frame)
        frames[pair], timeframes[pair] = frame, timeframe
    if not frames:
        raise ConfigError("market_data.source = 'replay' needs market_data.replay_files")
    source = ReplaySource(frames, timeframes)
    step = min(timeframe_delta(timeframe) for timeframe in timeframes.values())
    start = min(source.first_open(pair) for pair in frames) + step
    # The last candle is never acted on: there is no next open to fill at.
    end = min(source.last_close(pair) for pair in frames) - step
    return Replay(source, start, end, step)


async def sync_pair_runs(
    runs: SqlitePairRunRepository, settings: Settings, now: datetime
) -> list[PairRun]:
    """Runs as persisted, plus a new run for each configured pair that never had one. A
    configured pair stopped with /stoppair stays stopped (/startpair trades it again)."""
    active = await runs.active()
    known = {run.pair for run in active}
    for pair in settings.pairs:
        if pair.pair in known:
            continue
        if await _was_stopped(runs, pair.pair):
            log.info("%s is configured but was stopped with /stoppair; it stays stopped", pair.pair)
            continue
        active.append(
            await runs.add(
                pair=pair.pair,
                strategy=pair.strategy,
                timeframe=pair.timeframe,
                params=pair.params,
                capital_share=pair.capital_share,
                now=now,
            )
        )
    return active


def strategy_gate(db: Database, mode: str) -> StrategyGate:
    """The live gate on ``db``'s stored checks and /allow overrides."""
    return StrategyGate(
        mode, SqliteStrategyCheckRepository(db), SqliteStrategyOverrideRepository(db)
    )


async def _was_stopped(runs: SqlitePairRunRepository, pair: str) -> bool:
    try:
        await runs.latest_for(pair)
    except KeyError:
        return False
    return True  # its latest run is not active (``active`` has none): it was stopped


def dust_desk(
    db: Database,
    engine: Engine,
    clock: Clock,
    venue: str,
    prices: Callable[[], Mapping[str, float]] = dict,
    lock: asyncio.Lock | None = None,
) -> DustDesk:
    """The dust desk on ``db``'s books."""
    return DustDesk(
        db=db,
        state=SqliteStateRepository(db),
        orders=SqliteOrderRepository(db),
        runs=SqlitePairRunRepository(db),
        engine=engine,
        clock=clock,
        venue=venue,
        prices=prices,
        lock=lock,
    )


async def reconcile_at_start(
    db: Database, engine: Engine, outbox: AlertOutbox, clock: Clock, settings: Settings
) -> None:
    """Settle what a previous run left open and compare the books with the exchange (the
    orders of every configured pair and every pair a run was started on)."""
    repository = SqlitePairRunRepository(db)
    runs = await repository.active()
    # A dust conversion a crash left unsettled is booked from the venue's log (if it cannot be
    # read, an alert says so and /dust settles it later: trading starts all the same).
    await dust_desk(db, engine, clock, settings.exchange.name).settle_or_alert()
    result = await reconcile(
        orders=SqliteOrderRepository(db),
        exchange=engine.exchange,
        executor=engine.executor,
        portfolio=engine.portfolio,
        alerts=outbox,
        clock=clock,
        quote=settings.quote,
        pairs=[pair.pair for pair in settings.pairs] + [run.pair for run in runs],
        outside=OutsideHoldings(SqliteStateRepository(db), clock),
    )
    for order, trade in result.closed:  # a stop that fired while pairpilot was down
        await engine.count_trade(await repository.get(order.run_id), trade)
    if result.settled or result.never_sent or not result.clean:
        log.warning("start-up reconciliation: %s", result)

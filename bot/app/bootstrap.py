"""The composition root: the only place that builds things and wires them together."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.alerts.held import HeldAlerts
from bot.alerts.outbox import AlertOutbox
from bot.alerts.preferences import AlertPreferences
from bot.app.config import Settings
from bot.app.notifications import ChatFactory, notifications
from bot.charts.worker import ChartWorker
from bot.chat.cockpit import Cockpit, Venue, unknown_precision
from bot.chat.sweep_desk import SweepDesk
from bot.core.clock import FakeClock, SystemClock
from bot.core.domain import AlertPriority, PairRun, RiskLimits
from bot.core.errors import ConfigError
from bot.core.ports import CandleHistory, Clock, Exchange, PriceFeed
from bot.core.timeframes import timeframe_delta
from bot.exchange.paper import PaperExchange
from bot.execution.executor import Executor
from bot.execution.reconcile import OutsideHoldings, reconcile
from bot.market.candle_files import (
    ReplaySource,
    read_candle_file,
    timeframe_of,
)
from bot.market.history import ReplayHistory
from bot.ops.health import HEARTBEAT_SECONDS
from bot.ops.scheduler import Jobs
from bot.portfolio.books import CASH_KEY, Portfolio
from bot.research.account_terms import account_terms, rests_stops
from bot.risk.guard import LIMITS_KEY, RiskGuard
from bot.trading.control import Control
from bot.trading.dust import DustDesk
from bot.trading.engine import Engine, EngineCosts
from bot.trading.replay import ReplayDriver
from bot.trading.service import TradingService
from bot.trading.watch import ServiceWatch, goodbye, restore_gauges
from storage.alerts import SqliteAlertRepository
from storage.audit import SqliteAuditRepository
from storage.db import Database, open_database
from storage.equity import SqliteEquityRepository
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.positions import SqlitePositionRepository
from storage.state import SqliteStateRepository
from storage.sweeps import SqliteSweepRepository
from storage.vetoes import SqliteVetoRepository

log = logging.getLogger(__name__)

ALERT_DRAIN_SECONDS = 0.2
CANDLE_DELAY_SECONDS = 5.0  # after a candle closes, so the exchange has it final


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


async def _was_stopped(runs: SqlitePairRunRepository, pair: str) -> bool:
    try:
        await runs.latest_for(pair)
    except KeyError:
        return False
    return True  # its latest run is not active (``active`` has none): it was stopped


@dataclass(frozen=True, slots=True)
class PaperAccount:
    """How the paper exchange is funded and what its fills cost."""

    balance: float
    quote: str
    fee_rate: float
    slippage: float
    volume_share: float = 0.0  # the most of a candle's volume one order fills (0: no limit)
    rests_stops: bool = False  # stop-losses rest on the account, as on the venue it stands for


async def build_paper_engine(
    db: Database,
    *,
    clock: Clock,
    feed: PriceFeed,
    account: PaperAccount,
    limits: RiskLimits,
    timezone: str = "UTC",
) -> Engine:
    """The engine on a paper exchange, with books and balances as the database last had them."""
    exchange = await PaperExchange.restore(
        feed=feed,
        clock=clock,
        state=SqliteStateRepository(db),
        initial={account.quote: account.balance},
        fee_rate=account.fee_rate,
        slippage=account.slippage,
        volume_share=account.volume_share,
        rests_stops=account.rests_stops,
    )
    return await build_engine(
        db,
        clock=clock,
        exchange=exchange,
        first_cash=account.balance,
        costs=EngineCosts(account.fee_rate, account.slippage),
        limits=limits,
        timezone=timezone,
    )


async def build_engine(
    db: Database,
    *,
    clock: Clock,
    exchange: Exchange,
    first_cash: float,
    costs: EngineCosts,
    limits: RiskLimits,
    timezone: str = "UTC",
) -> Engine:
    """The engine on ``exchange`` with the books as the database last had them; ``first_cash``
    is the quote balance the books start from on the very first start."""
    state = SqliteStateRepository(db)
    positions = SqlitePositionRepository(db)
    alerts = AlertOutbox(SqliteAlertRepository(db), clock)
    cash = await state.get(CASH_KEY)
    if cash is None:  # the very first start: kept now, before any order can be placed, so a
        cash = first_cash  # crash before the first booking cannot re-read a balance net of it
        await state.set(CASH_KEY, cash, clock.now())
    portfolio = Portfolio(cash, await positions.all())
    executor = Executor(
        transactions=db,
        exchange=exchange,
        portfolio=portfolio,
        orders=SqliteOrderRepository(db),
        fills=SqliteFillRepository(db),
        positions=positions,
        state=state,
        alerts=alerts,
        clock=clock,
    )
    changed = await state.get(LIMITS_KEY)
    if changed and changed != dataclasses.asdict(limits):
        log.warning("risk limits set from chat override the config's: %s", changed)
        limits = RiskLimits(**{**dataclasses.asdict(limits), **changed})
    guard = RiskGuard(
        state=state,
        vetoes=SqliteVetoRepository(db),
        alerts=alerts,
        limits=limits,
        timezone=ZoneInfo(timezone),
    )
    return Engine(
        executor=executor, portfolio=portfolio, guard=guard, state=state, clock=clock, costs=costs
    )


def paper_account(settings: Settings) -> PaperAccount:
    paper = settings.paper
    return PaperAccount(
        paper.balance,
        settings.quote,
        paper.fee,
        paper.slippage,
        paper.max_volume_share,
        rests_stops(settings),
    )


def chat_venue(
    settings: Settings,
    exchange: str,
    engine: Engine,
    price_decimals: Callable[[str], int | None] = unknown_precision,
) -> Venue:
    """What chat says it trades on; /backtest and /sweep simulate that account, with the
    costs its engine sizes orders with (live: the venue's taker fee). ``price_decimals``:
    the exchange's price precision per pair, where its markets are loaded."""
    terms = dataclasses.replace(
        account_terms(settings), fee_rate=engine.costs.fee_rate, slippage=engine.costs.slippage
    )
    return Venue(settings.mode, exchange, settings.quote, terms, price_decimals)


def risk_limits(settings: Settings) -> RiskLimits:
    return RiskLimits(**settings.risk.model_dump())


async def reconcile_at_start(
    db: Database, engine: Engine, outbox: AlertOutbox, clock: Clock, settings: Settings
) -> None:
    """Settle what a previous run left open and compare the books with the exchange (the
    orders of every configured pair and every pair a run was started on)."""
    repository = SqlitePairRunRepository(db)
    runs = await repository.active()
    # A dust conversion a crash left unsettled is booked from the venue's log (if it cannot be
    # read, an alert says so and /dust settles it later: trading starts all the same).
    await DustDesk(
        db=db,
        state=SqliteStateRepository(db),
        orders=SqliteOrderRepository(db),
        runs=repository,
        engine=engine,
        clock=clock,
        venue=settings.exchange.name,
    ).settle_or_alert()
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


async def serve_replay(
    settings: Settings,
    stop: asyncio.Event,
    write: Callable[[str], object],
    chat: ChatFactory | None,
) -> None:
    """Paper trading on the configured replay files until ``stop`` is set or the replay ends."""
    replay = load_replay(settings)
    async with open_database(settings.database_path, service=True) as db:
        await _serve(settings, db, replay, stop, write, chat)


@dataclass(frozen=True, slots=True)
class Trading:
    """The assembled trading stack on one database: what `run` drives and tests inspect."""

    clock: FakeClock
    engine: Engine
    service: TradingService
    control: Control
    driver: ReplayDriver
    outbox: AlertOutbox


async def assemble_replay(db: Database, settings: Settings, replay: Replay) -> Trading:
    """Paper trading on replayed candles, carrying on from where the database left off."""
    state = SqliteStateRepository(db)
    clock = FakeClock(await ReplayDriver.resume_point(state, replay.start))
    engine = await build_paper_engine(
        db,
        clock=clock,
        feed=replay.source,
        account=paper_account(settings),
        limits=risk_limits(settings),
        timezone=settings.timezone,
    )
    outbox = AlertOutbox(SqliteAlertRepository(db), clock)
    await reconcile_at_start(db, engine, outbox, clock, settings)
    runs_repo = SqlitePairRunRepository(db)
    runs = await sync_pair_runs(runs_repo, settings, clock.now())
    service = TradingService(
        engine=engine,
        source=replay.source,
        equity=SqliteEquityRepository(db),
        clock=clock,
        runs=runs,
    )
    control = Control(
        runs=runs_repo,
        service=service,
        engine=engine,
        exchange=engine.exchange,
        markets=replay.source,
        clock=clock,
        quote=settings.quote,
        outside=OutsideHoldings(state, clock),
    )
    driver = ReplayDriver(
        clock=clock,
        service=service,
        state=state,
        step=replay.step,
        end=replay.end,
        source=replay.source,
    )
    return Trading(clock, engine, service, control, driver, outbox)


async def _serve(
    settings: Settings,
    db: Database,
    replay: Replay,
    stop: asyncio.Event,
    write: Callable[[str], object],
    chat: ChatFactory | None,
) -> None:
    trading = await assemble_replay(db, settings, replay)
    venue = chat_venue(settings, "replay", trading.engine)
    jobs = Jobs(SystemClock())
    cockpit = build_cockpit(
        db,
        venue,
        trading.service,
        trading.engine,
        trading.control,
        ReplayHistory(replay.source),
        jobs,
        trading.clock,
        settings.research.dask_scheduler,
    )
    watch = await start_watch(
        db, settings, trading.service, trading.engine, trading.outbox, "replay"
    )
    async with notifications(
        SqliteAlertRepository(db),
        cockpit,
        trading.outbox,
        trading.clock,
        chat,
        write,
        simulated=True,
        held=watch.held,
    ) as dispatcher:
        pairs = ", ".join(run.pair for run in trading.service.runs()) or "no pairs"
        started = f"pairpilot started: {settings.mode} mode, replay, {pairs}"
        await trading.outbox.push("startup", AlertPriority.INFO, started)
        speed = settings.market_data.replay_speed
        jobs.every(
            replay.step.total_seconds() / speed, watch.guarded(trading.driver.step), "replay-step"
        )
        jobs.every(ALERT_DRAIN_SECONDS, watch.guarded(dispatcher.drain), "alert-drain")
        jobs.every(ALERT_DRAIN_SECONDS, watch.held.send, "held-alerts")
        jobs.every(HEARTBEAT_SECONDS, watch.beat, "watch")
        jobs.start()
        try:
            await _until_first(stop, trading.driver.finished)
        finally:
            await jobs.stop()  # the tick in progress finishes first
            await goodbye(dispatcher, watch)


async def start_watch(
    db: Database,
    settings: Settings,
    service: TradingService,
    engine: Engine,
    outbox: AlertOutbox,
    source: str,
) -> ServiceWatch:
    """The heartbeat and data-directory watch (its job is scheduled by the caller), with the
    gauges restored from the database."""
    await restore_gauges(SqliteEquityRepository(db), engine.guard)
    wall = SystemClock()
    return ServiceWatch(
        path=settings.data_dir,
        state=SqliteStateRepository(db),
        service=service,
        outbox=outbox,
        held=HeldAlerts(SqliteAlertRepository(db), wall),
        source=source,
        wall=wall,
    )


def build_cockpit(
    db: Database,
    venue: Venue,
    service: TradingService,
    engine: Engine,
    control: Control,
    history: CandleHistory,
    jobs: Jobs,
    clock: Clock,
    scheduler: str | None = None,
) -> Cockpit:
    """``scheduler``: the Dask cluster /sweep runs on (None: a LocalCluster per sweep)."""
    charts = ChartWorker()
    sweeps = SweepDesk(
        history=history,
        store=SqliteSweepRepository(db),
        clock=clock,
        quote=venue.quote,
        charts=charts,
        terms=venue.terms,
        limits=lambda: engine.guard.limits,
        scheduler=scheduler,
    )
    dust = DustDesk(
        db=db,
        state=SqliteStateRepository(db),
        orders=SqliteOrderRepository(db),
        runs=SqlitePairRunRepository(db),
        engine=engine,
        clock=clock,
        venue=venue.exchange if venue.mode == "live" else "the paper exchange",
        prices=lambda: service.prices,
        lock=service.tick_lock,
    )
    return Cockpit(
        venue=venue,
        service=service,
        engine=engine,
        control=control,
        fills=SqliteFillRepository(db),
        orders=SqliteOrderRepository(db),
        audit=SqliteAuditRepository(db),
        equity=SqliteEquityRepository(db),
        history=history,
        clock=clock,
        jobs=jobs,
        alerts=SqliteAlertRepository(db),
        preferences=AlertPreferences(SqliteStateRepository(db), clock),
        charts=charts,
        sweeps=sweeps,
        state=SqliteStateRepository(db),
        dust=dust,
    )


async def _until_first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()

"""The composition root: the only place that builds things and wires them together.

Every builder of the trading is here, for a replay, paper trading on an exchange's candles and
live trading alike (the start-up steps they run are in bot.app.startup, the chat's services are
built in bot.app.chat_root); bot.app.run serves what they build.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.alerts.outbox import AlertOutbox, OnceAlerts
from bot.app.config import Settings
from bot.app.secret_values import Secrets
from bot.app.startup import Replay, reconcile_at_start, strategy_gate, sync_pair_runs
from bot.core.clock import FakeClock
from bot.core.domain import PairRun, RiskLimits
from bot.core.ports import Clock, Exchange, PriceFeed, StateStore
from bot.core.timeframes import timeframe_seconds
from bot.exchange.paper import PaperExchange
from bot.execution.executor import Executor
from bot.market.live_source import ExchangeCandleSource
from bot.ops.scheduler import Jobs
from bot.portfolio.books import CASH_KEY, Portfolio
from bot.portfolio.outside import OutsideHoldings
from bot.research.account_terms import rests_stops
from bot.risk.guard import LIMITS_KEY, RiskGuard
from bot.risk.settings import effective_limits
from bot.trading.control import Control
from bot.trading.engine import Engine, EngineCosts
from bot.trading.faults import StrategyFaults
from bot.trading.held_runs import hold_refused
from bot.trading.replay import ReplayDriver
from bot.trading.service import TradingService
from storage.alerts import SqliteAlertRepository
from storage.db import Database
from storage.equity import SqliteEquityRepository
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.positions import SqlitePositionRepository
from storage.state import SqliteStateRepository
from storage.vetoes import SqliteVetoRepository

if TYPE_CHECKING:
    from bot.exchange.ccxt_exchange import CcxtExchange
    from bot.market.streaming import StreamingFeed

log = logging.getLogger(__name__)

CANDLE_DELAY_SECONDS = 5.0  # after a candle closes, so the exchange has it final


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
    state: StateStore | None = None,
) -> Engine:
    """The engine on a paper exchange, with books and balances as the database last had them;
    ``state``: the database's state store to use (the paper twin's reads from memory)."""
    state = state or SqliteStateRepository(db)
    exchange = await PaperExchange.restore(
        feed=feed,
        clock=clock,
        state=state,
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
        state=state,
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
    state: StateStore | None = None,
) -> Engine:
    """The engine on ``exchange`` with the books as the database last had them; ``first_cash``
    is the quote balance the books start from on the very first start."""
    state = state or SqliteStateRepository(db)
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
        limits = effective_limits(limits, changed)
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


def strategy_faults(db: Database, clock: Clock) -> StrategyFaults:
    """The runs of ``db`` whose strategy failed (bot/trading/faults.py)."""
    return StrategyFaults(
        transactions=db,
        runs=SqlitePairRunRepository(db),
        state=SqliteStateRepository(db),
        alerts=AlertOutbox(SqliteAlertRepository(db), clock),
        clock=clock,
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


def risk_limits(settings: Settings) -> RiskLimits:
    return RiskLimits(**settings.risk.model_dump())


@dataclass(frozen=True, slots=True)
class Trading:
    """The assembled trading stack on one database, on replayed candles or on an exchange's:
    what the serve loop drives and tests inspect."""

    clock: Clock
    engine: Engine
    service: TradingService
    control: Control
    outbox: AlertOutbox
    driver: ReplayDriver | None = None  # a replay's: each step moves its clock one candle on
    source: PriceFeed | None = None  # on an exchange: its candles and prices (the paper twin's)


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
        faults=strategy_faults(db, clock),
        strategy_timeout=settings.strategy_timeout,
    )
    gate = strategy_gate(db, settings.mode)
    await hold_refused(service, gate, outbox)
    await service.faults.load()  # the chat shows why a pair is paused before the first step
    control = Control(
        runs=runs_repo,
        service=service,
        engine=engine,
        exchange=engine.exchange,
        markets=replay.source,
        clock=clock,
        quote=settings.quote,
        outside=OutsideHoldings(state, clock),
        gate=gate,
    )
    driver = ReplayDriver(
        clock=clock,
        service=service,
        state=state,
        step=replay.step,
        end=replay.end,
        source=replay.source,
    )
    return Trading(clock, engine, service, control, outbox, driver)


def credentials(settings: Settings, secrets: Secrets) -> dict[str, str]:
    """The account's keys for live mode (from the environment only); none for paper."""
    if settings.mode != "live":
        return {}
    keys = {
        "apiKey": secrets.exchange_key,
        "secret": secrets.exchange_secret,
        "password": secrets.exchange_password,
    }
    return {name: value for name, value in keys.items() if value}


async def assemble_on_exchange(
    db: Database,
    settings: Settings,
    exchange: CcxtExchange,
    feed: StreamingFeed,
    clock: Clock,
    jobs: Jobs,
) -> Trading:
    """Engine, service and control on ``exchange`` (markets loaded), reconciled, primed, and
    with a tick job for every timeframe in use, including those of runs started later."""
    outbox = AlertOutbox(SqliteAlertRepository(db), clock)
    gaps = OnceAlerts(outbox, SqliteStateRepository(db), clock, "candle_gap")  # not per restart
    source = ExchangeCandleSource(feed, on_gap=lambda pair, text: gaps.push(text))
    quote = settings.quote
    limits = risk_limits(settings)
    if settings.mode == "live":
        balances = await exchange.fetch_balances()
        await exchange.load_account_fees([pair.pair for pair in settings.pairs])
        fee = max((exchange.taker_fee(pair.pair) for pair in settings.pairs), default=0.001)
        engine = await build_engine(
            db,
            clock=clock,
            exchange=exchange,
            first_cash=balances.get(quote, 0.0),
            costs=EngineCosts(fee, settings.paper.slippage),
            limits=limits,
            timezone=settings.timezone,
        )
    else:
        engine = await build_paper_engine(
            db,
            clock=clock,
            feed=source,
            account=paper_account(settings),
            limits=limits,
            timezone=settings.timezone,
        )
    await reconcile_at_start(db, engine, outbox, clock, settings)
    runs_repo = SqlitePairRunRepository(db)
    runs = await sync_pair_runs(runs_repo, settings, clock.now())
    service = TradingService(
        engine=engine,
        source=source,
        equity=SqliteEquityRepository(db),
        clock=clock,
        runs=runs,
        faults=strategy_faults(db, clock),
        strategy_timeout=settings.strategy_timeout,
    )
    gate = strategy_gate(db, settings.mode)
    await hold_refused(service, gate, outbox)  # live: a run whose check has not passed waits
    await service.prime()
    schedule = tick_scheduler(jobs, service)
    for run in runs:
        schedule(run)
    control = Control(
        runs=runs_repo,
        service=service,
        engine=engine,
        exchange=engine.exchange,
        markets=source,
        clock=clock,
        quote=quote,
        on_started=schedule,
        outside=OutsideHoldings(SqliteStateRepository(db), clock),
        gate=gate,
    )
    return Trading(clock, engine, service, control, outbox, source=source)


def tick_scheduler(jobs: Jobs, service: TradingService) -> Callable[[PairRun], None]:
    """A callable that makes sure ``run``'s timeframe has its candle-close tick job."""

    def schedule(run: PairRun) -> None:
        name = f"tick-{run.timeframe}"
        if not jobs.has(name):
            jobs.at_candle_close(
                timeframe_seconds(run.timeframe),
                CANDLE_DELAY_SECONDS,
                partial(service.tick, run.timeframe),
                name,
            )

    return schedule

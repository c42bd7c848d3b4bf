"""The service on a real exchange's candles and prices: paper orders, or live ones.

Built here and nowhere else: the ccxt adapter with its streams, the books on SQLite, the engine
on either the paper exchange or the real account, and the candle-close tick jobs. In live mode
the books start from the account's quote balance and every start reconciles them against it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from bot.alerts.outbox import AlertOutbox, OnceAlerts
from bot.app.bootstrap import (
    ALERT_DRAIN_SECONDS,
    CANDLE_DELAY_SECONDS,
    build_cockpit,
    build_engine,
    build_paper_engine,
    chat_venue,
    paper_account,
    reconcile_at_start,
    risk_limits,
    start_watch,
    sync_pair_runs,
)
from bot.app.config import Secrets, Settings
from bot.app.notifications import ChatFactory, notifications
from bot.chat.cockpit import Cockpit
from bot.core.clock import SystemClock
from bot.core.domain import AlertPriority, PairRun
from bot.core.errors import BotError, ConfigError
from bot.core.ports import Clock
from bot.core.timeframes import timeframe_seconds
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.execution.reconcile import OutsideHoldings
from bot.market.history import ExchangeHistory
from bot.market.live_source import ExchangeCandleSource
from bot.market.streaming import StreamingFeed
from bot.ops.health import HEARTBEAT_SECONDS
from bot.ops.scheduler import Jobs
from bot.trading.control import Control
from bot.trading.dust import DUST_SETTLE_SECONDS
from bot.trading.engine import Engine, EngineCosts
from bot.trading.service import TradingService
from bot.trading.watch import goodbye
from storage.alerts import SqliteAlertRepository
from storage.candles import SqliteCandleRepository
from storage.db import Database, open_database
from storage.equity import SqliteEquityRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import SqliteStateRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExchangeTrading:
    """The assembled stack on an exchange: what `run` drives and tests inspect."""

    engine: Engine
    service: TradingService
    control: Control
    outbox: AlertOutbox
    source: ExchangeCandleSource


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


async def serve_on_exchange(
    settings: Settings,
    secrets: Secrets,
    stop: asyncio.Event,
    write: Callable[[str], object],
    chat: ChatFactory | None = None,
) -> None:
    """Trade on the exchange's candles until ``stop`` is set; the tick in progress finishes."""
    exchange = CcxtExchange.create(
        settings.exchange.name,
        settings.exchange.ccxt_config,
        credentials=credentials(settings, secrets),
    )
    feed = StreamingFeed(exchange)
    try:
        await exchange.load_markets()
        for pair in settings.pairs:
            try:
                exchange.check_pair(pair.pair)
                exchange.check_timeframe(pair.timeframe)
            except BotError as error:
                raise ConfigError(f"pairs: {error}") from None
        async with open_database(settings.database_path, service=True) as db:
            clock = SystemClock()
            jobs = Jobs(clock)
            trading = await assemble_on_exchange(db, settings, exchange, feed, clock, jobs)
            venue = chat_venue(settings, exchange.name, trading.engine, exchange.price_decimals)
            history = ExchangeHistory(exchange, SqliteCandleRepository(db))
            cockpit = build_cockpit(
                db,
                venue,
                trading.service,
                trading.engine,
                trading.control,
                history,
                jobs,
                clock,
                settings.research.dask_scheduler,
            )
            watch = await start_watch(
                db, settings, trading.service, trading.engine, trading.outbox, "exchange"
            )
            async with notifications(
                SqliteAlertRepository(db),
                cockpit,
                trading.outbox,
                clock,
                chat,
                write,
                held=watch.held,
            ) as dispatcher:
                pairs = ", ".join(run.pair for run in trading.service.runs()) or "no pairs"
                await trading.outbox.push(
                    "startup",
                    AlertPriority.INFO,
                    f"pairpilot started: {settings.mode} mode on {exchange.name}, {pairs}",
                )
                jobs.every(ALERT_DRAIN_SECONDS, watch.guarded(dispatcher.drain), "alert-drain")
                jobs.every(ALERT_DRAIN_SECONDS, watch.held.send, "held-alerts")
                jobs.every(HEARTBEAT_SECONDS, watch.beat, "watch")
                if cockpit.dust is not None:  # a dust conversion whose outcome is unknown
                    jobs.every(
                        DUST_SETTLE_SECONDS,
                        watch.guarded(cockpit.dust.settle_pending),
                        "dust-settle",
                    )
                report = partial(push_daily_report, cockpit, trading.outbox)
                jobs.daily(
                    settings.telegram.daily_report, settings.timezone, report, "daily-report"
                )
                jobs.start()
                try:
                    await stop.wait()
                finally:
                    trading.service.request_stop()  # the tick ends at the next pair
                    exchange.stop_retrying()  # and its call in flight is the last attempt
                    await jobs.stop()
                    await goodbye(dispatcher, watch)
    finally:
        await feed.close()
        await exchange.close()


async def assemble_on_exchange(
    db: Database,
    settings: Settings,
    exchange: CcxtExchange,
    feed: StreamingFeed,
    clock: Clock,
    jobs: Jobs,
) -> ExchangeTrading:
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
        engine=engine, source=source, equity=SqliteEquityRepository(db), clock=clock, runs=runs
    )
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
    )
    return ExchangeTrading(engine, service, control, outbox, source)


async def push_daily_report(cockpit: Cockpit, outbox: AlertOutbox) -> None:
    """Through the outbox like every push: it arrives even after a Telegram outage."""
    report = await cockpit.daily_report()
    await outbox.push("daily_report", AlertPriority.INFO, report.caption, report.png)


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

"""The one serve loop, for a replay, paper trading on an exchange's candles and live trading.

What differs between them is a fact of where the candles come from (``Market``: a replay's
driver steps its simulated clock; an exchange's ticks run at candle closes and its calls are
cut short on stop) or a visible setting (``ServeOptions``: the daily report, dust settling,
the heartbeat), never a second copy of the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from bot.alerts.held import HeldAlerts
from bot.alerts.outbox import AlertOutbox
from bot.app.bootstrap import Trading, assemble_on_exchange, assemble_replay, credentials
from bot.app.chat_root import build_cockpit, chat_venue, strategy_reload
from bot.app.config import Settings
from bot.app.notifications import ChatFactory, notifications
from bot.app.secret_values import Secrets
from bot.app.startup import load_replay
from bot.app.twin_root import open_twin
from bot.chat.cockpit import Cockpit
from bot.chat.venue import Venue
from bot.core.clock import SystemClock
from bot.core.domain import AlertPriority
from bot.core.errors import BotError, ConfigError
from bot.core.ports import CandleHistory
from bot.market.history import ExchangeHistory, ReplayHistory
from bot.market.streaming import StreamingFeed
from bot.ops.health import HEARTBEAT_SECONDS
from bot.ops.scheduler import Jobs
from bot.trading.dust import DUST_SETTLE_SECONDS
from bot.trading.engine import Engine
from bot.trading.service import TradingService
from bot.trading.watch import ServiceWatch, goodbye, restore_gauges
from storage.alerts import SqliteAlertRepository
from storage.candles import SqliteCandleRepository
from storage.db import Database, open_database
from storage.equity import SqliteEquityRepository
from storage.state import SqliteStateRepository

ALERT_DRAIN_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """The jobs a service runs besides trading, as settings rather than per-source code."""

    daily_report: str | None = None  # HH:MM in settings.timezone; None: no daily report
    dust_settle_seconds: float | None = None  # a conversion of unknown outcome looked up; None: not
    heartbeat_seconds: float = HEARTBEAT_SECONDS  # the data-directory check and heartbeat

    @classmethod
    def of(cls, settings: Settings) -> ServeOptions:
        """The configured service's: on an exchange, the daily report at the configured time and
        dust settling; a replay has neither (its days are simulated, and its paper exchange
        converts no dust, so no conversion is ever in doubt)."""
        if settings.market_data.source != "exchange":
            return cls()
        return cls(
            daily_report=settings.telegram.daily_report, dust_settle_seconds=DUST_SETTLE_SECONDS
        )


@dataclass(frozen=True, slots=True)
class Market:
    """Where the candles come from, as the loop needs to know it (facts, not settings)."""

    name: str  # the heartbeat's word for it: "replay" or "exchange"
    started: str  # the start-up alert's words for it: ", replay" or " on <exchange>"
    venue: Venue
    history: CandleHistory
    replay_step: timedelta | None = None  # a replay's candle step (its driver's pace)
    # on stop, makes the tick in progress end soon; None: it finishes whole (a replay's
    # resume point would skip the pairs it did not tick)
    interrupt: Callable[[], None] | None = None


async def serve_replay(
    settings: Settings,
    options: ServeOptions,
    stop: asyncio.Event,
    write: Callable[[str], object],
    chat: ChatFactory | None,
) -> None:
    """Paper trading on the configured replay files until ``stop`` is set or the replay ends."""
    replay = load_replay(settings)
    async with open_database(settings.database_path, service=True) as db:
        trading = await assemble_replay(db, settings, replay)
        venue = chat_venue(settings, "replay", trading)
        market = Market("replay", ", replay", venue, ReplayHistory(replay.source), replay.step)
        await serve(db, settings, trading, market, Jobs(SystemClock()), options, stop, write, chat)


async def serve_on_exchange(
    settings: Settings,
    secrets: Secrets,
    options: ServeOptions,
    stop: asyncio.Event,
    write: Callable[[str], object],
    chat: ChatFactory | None,
) -> None:
    """Trade on the exchange's candles until ``stop`` is set; the tick in progress finishes."""
    # imported here: ccxt takes seconds to import, and replay and the demo never use it
    from bot.exchange.ccxt_exchange import CcxtExchange

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
        async with AsyncExitStack() as stack:
            db = await stack.enter_async_context(
                open_database(settings.database_path, service=True)
            )
            clock = SystemClock()
            jobs = Jobs(clock)
            trading = await assemble_on_exchange(db, settings, exchange, feed, clock, jobs)
            await open_twin(stack, db, settings, trading)
            service = trading.service

            def interrupt() -> None:
                service.request_stop()  # the tick ends at the next pair
                exchange.stop_retrying()  # and its call in flight is the last attempt

            market = Market(
                "exchange",
                f" on {exchange.name}",
                chat_venue(settings, exchange.name, trading, exchange.price_decimals),
                ExchangeHistory(exchange, SqliteCandleRepository(db)),
                interrupt=interrupt,
            )
            await serve(db, settings, trading, market, jobs, options, stop, write, chat)
    finally:
        await feed.close()
        await exchange.close()


async def serve(
    db: Database,
    settings: Settings,
    trading: Trading,
    market: Market,
    jobs: Jobs,
    options: ServeOptions,
    stop: asyncio.Event,
    write: Callable[[str], object],
    chat: ChatFactory | None,
) -> None:
    """Run the jobs on ``trading`` until ``stop`` is set or its replay ends, then say goodbye."""
    cockpit = build_cockpit(
        db,
        market.venue,
        trading.service,
        trading.engine,
        trading.control,
        market.history,
        jobs,
        trading.clock,
        settings.research.dask_scheduler,
        strategy_reload(settings),
    )
    watch = await start_watch(
        db, settings, trading.service, trading.engine, trading.outbox, market.name
    )
    driver = trading.driver
    async with notifications(
        SqliteAlertRepository(db),
        cockpit,
        trading.outbox,
        trading.clock,
        chat,
        write,
        simulated=driver is not None,
        held=watch.held,
    ) as dispatcher:
        pairs = ", ".join(run.pair for run in trading.service.runs()) or "no pairs"
        started = f"pairpilot started: {settings.mode} mode{market.started}, {pairs}"
        if settings.strategies is not None and settings.strategies.problems:
            started += "\nstrategies not loaded (the rest are):\n" + "\n".join(
                str(problem) for problem in settings.strategies.problems
            )
        await trading.outbox.push("startup", AlertPriority.INFO, started)
        if driver is not None and market.replay_step is not None:
            every = market.replay_step.total_seconds() / settings.market_data.replay_speed
            jobs.every(every, watch.guarded(driver.step), "replay-step")
        jobs.every(ALERT_DRAIN_SECONDS, watch.guarded(dispatcher.drain), "alert-drain")
        jobs.every(ALERT_DRAIN_SECONDS, watch.held.send, "held-alerts")
        jobs.every(options.heartbeat_seconds, watch.beat, "watch")
        if options.dust_settle_seconds is not None and cockpit.dust is not None:
            settle = watch.guarded(cockpit.dust.settle_pending)
            jobs.every(options.dust_settle_seconds, settle, "dust-settle")
        if options.daily_report is not None:
            report = partial(push_daily_report, cockpit, trading.outbox)
            jobs.daily(options.daily_report, settings.timezone, report, "daily-report")
        jobs.start()
        try:
            await _until_first(stop, *([driver.finished] if driver is not None else []))
        finally:
            if market.interrupt is not None:
                market.interrupt()
            trading.service.abandon_strategies()  # waited for STOP_GRACE s, no more
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


async def push_daily_report(cockpit: Cockpit, outbox: AlertOutbox) -> None:
    """Through the outbox like every push: it arrives even after a Telegram outage."""
    report = await cockpit.research.daily_report()
    await outbox.push("daily_report", AlertPriority.INFO, report.caption, report.png)


async def _until_first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()

"""The composition root's paper twin: built for live trading, on its own database file.

The twin's books are a second SQLite file beside the live one (``twin.sqlite``, the same
schema and migrations): every repository the engine uses is then the live one's code on
another file, and nothing the twin does can reach the live books. Its paper account starts
with what the live books held when it first started (cash, positions at their cost), so its
orders are sized like the live ones; after that it keeps its own balance, as paper does.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import AsyncExitStack
from pathlib import Path

from bot.alerts.outbox import AlertOutbox
from bot.app.bootstrap import PaperAccount, Trading, build_paper_engine
from bot.app.config import Settings
from bot.core.domain import AlertPriority
from bot.core.ports import Clock, PriceFeed
from bot.research.account_terms import rests_stops
from bot.trading.drift import DriftMonitor
from bot.trading.engine import Engine
from bot.trading.twin import PaperTwin, TwinFeed
from storage.audit import SqliteAuditRepository
from storage.db import Database, UnusableDatabase, open_database
from storage.fills import SqliteFillRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import RememberedStateRepository, SqliteStateRepository
from storage.twin_mark import mark_twin

log = logging.getLogger(__name__)


def twin_path(settings: Settings) -> Path | None:
    """Where the paper twin keeps its books; None when there is no twin (paper mode, a
    replay, or ``[drift] enabled = false``)."""
    if settings.mode != "live" or not settings.drift.enabled:
        return None
    return settings.twin_database_path


async def open_twin(
    stack: AsyncExitStack, db: Database, settings: Settings, trading: Trading
) -> PaperTwin | None:
    """The paper twin on its own file, where the settings want one. A twin file that cannot be
    opened (corrupt, locked, unreadable) turns the drift monitor off with an alert, and live
    trading starts without it: the twin only watches, and the live positions and their stops
    must not wait on it."""
    path = twin_path(settings)
    if path is None:
        return None
    try:
        twin_db = await stack.enter_async_context(open_database(path, service=True))
        return await attach_twin(twin_db, db, settings, trading)
    except (UnusableDatabase, sqlite3.Error, OSError) as error:
        log.error("the paper twin could not start on %s: %s", path, error)
        await trading.outbox.push(
            "drift",
            AlertPriority.ERROR,
            f"The drift monitor is off: its paper twin's books ({path}) cannot be used "
            f"({error}). Live trading goes on without it; move the file aside and restart "
            "for a fresh twin.",
        )
        return None


async def attach_twin(
    twin_db: Database, db: Database, settings: Settings, trading: Trading
) -> PaperTwin:
    """The paper twin of ``trading``'s live pairs, handed their candles from now on."""
    if trading.source is None:
        raise ValueError("a paper twin follows trading on an exchange")
    twin = await build_twin(
        twin_db, db, settings, trading.engine, trading.source, trading.clock, trading.outbox
    )
    trading.service.twin = twin
    return twin


async def build_twin(
    twin_db: Database,
    db: Database,
    settings: Settings,
    live: Engine,
    source: PriceFeed,
    clock: Clock,
    outbox: AlertOutbox,
) -> PaperTwin:
    """The paper twin of the ``live`` engine on ``db``, its books on ``twin_db``."""
    await twin_db.connection.execute("PRAGMA synchronous = NORMAL")  # see bot/trading/twin.py
    await mark_twin(twin_db.connection)  # a twin file from before the mark gets it now
    # A lock someone else holds on the twin's file (a sqlite3 shell, a copy tool) must not hold
    # the live tick: the twin gives up at once (its candle is then one-sided, not measured).
    await twin_db.connection.execute("PRAGMA busy_timeout = 100")
    feed = TwinFeed(source)
    held = sum(p.amount * p.average_price for p in live.portfolio.positions())
    account = PaperAccount(
        live.portfolio.cash + held,
        settings.quote,
        live.costs.fee_rate,  # the live fee: the drift is what the venue's fills add
        settings.paper.slippage,
        settings.paper.max_volume_share,
        rests_stops(settings),
    )
    state = RememberedStateRepository(twin_db)  # nothing else writes it: read from memory
    engine = await build_paper_engine(
        twin_db,
        clock=clock,
        feed=feed,
        account=account,
        limits=live.guard.limits,
        timezone=settings.timezone,
        state=state,
    )
    monitor = DriftMonitor(
        settings=settings.drift,
        live_fills=SqliteFillRepository(db),
        twin_fills=SqliteFillRepository(twin_db),
        live_small=live.exchange.too_small,
        twin_small=engine.exchange.too_small,
        state=SqliteStateRepository(db),
        outbox=outbox,
        audit=SqliteAuditRepository(db),
        transactions=db,
        clock=clock,
    )
    await monitor.load()
    mirror = SqlitePairRunRepository(twin_db).mirror
    return PaperTwin(engine=engine, monitor=monitor, feed=feed, mirror=mirror, forget=state.forget)

"""Real parts wired for tests: an Executor on a SQLite database and any exchange."""

from __future__ import annotations

from bot.alerts import AlertOutbox
from bot.clock import FakeClock
from bot.execution import Executor
from bot.portfolio import Portfolio
from bot.ports import Exchange
from storage.alerts import SqliteAlertRepository
from storage.db import Database
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from storage.positions import SqlitePositionRepository
from storage.state import SqliteStateRepository


def executor_on(
    db: Database, exchange: Exchange, clock: FakeClock, portfolio: Portfolio | None = None
) -> Executor:
    return Executor(
        transactions=db, exchange=exchange, portfolio=portfolio or Portfolio(1000.0),
        orders=SqliteOrderRepository(db), fills=SqliteFillRepository(db),
        positions=SqlitePositionRepository(db), state=SqliteStateRepository(db),
        alerts=AlertOutbox(SqliteAlertRepository(db), clock), clock=clock,
    )  # fmt: skip

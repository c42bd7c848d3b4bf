"""The gauges from the books before the slow part of a start (markets, reconciliation), so
/metrics never shows equity 0 meanwhile; bot/trading/watch.py's ``restore_gauges`` confirms
them later."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.risk.guard_state import GuardStore
from bot.trading.watch import restore_gauges_from
from storage.db import UnusableDatabase, open_read_only
from storage.equity import SqliteEquityRepository
from storage.state import SqliteStateRepository


async def restore_gauges_early(database: Path) -> None:
    """The gauges as ``database`` has them, read-only; a database that cannot be read here (or
    none yet) is left for the start-up."""
    try:
        async with open_read_only(database) as db:
            latest = await SqliteEquityRepository(db).latest()
            risk = await GuardStore(SqliteStateRepository(db)).get()
    except (sqlite3.Error, UnusableDatabase):
        return
    restore_gauges_from(latest, risk)

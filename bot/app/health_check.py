"""`pairpilot health` on the database itself: opened read-only, its schema, heartbeat, alert
backlog and chat state read through the SQLite repositories; the checks and their wording are
bot/ops/health.py's."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from bot.ops.health import (
    HEARTBEAT_KEY,
    Check,
    Health,
    check_alerts,
    check_chat,
    check_data_dir,
    check_pairs,
    check_schema,
    check_service,
)
from storage.alerts import SqliteAlertRepository
from storage.db import Database, latest_schema, open_read_only, schema_version
from storage.state import SqliteStateRepository


def inspect(database_path: Path, *, now: datetime, max_alert_age: timedelta) -> Health:
    """Open the database read-only (if there is one) and check; a database that cannot be
    read (corrupt, locked, on a broken disk) is a failed check, never a traceback."""
    if not database_path.exists():
        return asyncio.run(
            check_health(None, database_path=database_path, now=now, max_alert_age=max_alert_age)
        )

    async def check() -> Health:
        try:
            async with open_read_only(database_path) as db:
                return await check_health(
                    db, database_path=database_path, now=now, max_alert_age=max_alert_age
                )
        except sqlite3.Error as error:
            unreadable = Check("database", False, f"{database_path} cannot be read: {error}")
        await asyncio.sleep(0.05)  # aiosqlite's thread reports its failed open to the loop
        return Health([check_data_dir(database_path.parent), unreadable])

    return asyncio.run(check())


async def check_health(
    db: Database | None,
    *,
    database_path: Path,
    now: datetime,
    max_alert_age: timedelta,
) -> Health:
    """Every check, in order; once the data directory or the database is unusable the later
    checks are not run (their answers would only echo it, and might advise a restart)."""
    checks = [check_data_dir(database_path.parent)]
    if db is None:
        checks.append(
            Check(
                "database",
                False,
                f"no database at {database_path}; the service has never started on this data_dir",
            )
        )
        return Health(checks)
    found, known = await schema_version(db.connection), latest_schema()
    checks.append(check_schema(found, known, database_path))
    if not all(check.ok for check in checks):
        return Health(checks)
    beat = await SqliteStateRepository(db).get(HEARTBEAT_KEY)
    checks.append(check_service(beat, now))
    if checks[-1].ok:
        checks.extend(check_pairs(beat, now))
    simulated = bool(beat) and beat.get("source") == "replay"
    checks.append(await check_alerts(SqliteAlertRepository(db), now, max_alert_age, simulated))
    checks.append(await check_chat(SqliteStateRepository(db)))
    return Health(checks)

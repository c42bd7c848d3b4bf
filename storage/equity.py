"""Equity snapshots: the account's value over time, for PnL, drawdown and charts."""

from __future__ import annotations

from datetime import datetime

from bot.core.domain import EquitySnapshot, from_ms, to_ms
from storage.db import Database


class SqliteEquityRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, snapshot: EquitySnapshot) -> None:
        """Record a snapshot; a second one at the same moment replaces the first."""
        await self._db.execute(
            "INSERT OR REPLACE INTO equity_snapshots (time, equity, cash) VALUES (?, ?, ?)",
            (to_ms(snapshot.time), snapshot.equity, snapshot.cash),
        )

    async def latest(self) -> EquitySnapshot | None:
        row = await self._db.fetch_one(
            "SELECT time, equity, cash FROM equity_snapshots ORDER BY time DESC LIMIT 1"
        )
        return None if row is None else EquitySnapshot(from_ms(row[0]), row[1], row[2])

    async def between(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[EquitySnapshot]:
        rows = await self._db.fetch_all(
            "SELECT time, equity, cash FROM equity_snapshots WHERE time >= ? AND time <= ?"
            " ORDER BY time",
            (to_ms(since) if since else 0, to_ms(until) if until else 2**62),
        )
        return [EquitySnapshot(from_ms(row["time"]), row["equity"], row["cash"]) for row in rows]

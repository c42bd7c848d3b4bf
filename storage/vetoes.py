"""Vetoes: the entries the risk rules refused, and why."""

from __future__ import annotations

from datetime import datetime

from bot.core.domain import from_ms, to_ms
from storage.db import Database


class SqliteVetoRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, *, run_id: int, pair: str, reason: str, now: datetime) -> None:
        await self._db.execute(
            "INSERT INTO vetoes (time, run_id, pair, reason) VALUES (?, ?, ?, ?)",
            (to_ms(now), run_id, pair, reason),
        )

    async def latest(self, limit: int) -> list[tuple[datetime, int, str, str]]:
        """(time, run id, pair, reason), newest first."""
        rows = await self._db.fetch_all(
            "SELECT time, run_id, pair, reason FROM vetoes ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [(from_ms(row[0]), row[1], row[2], row[3]) for row in rows]

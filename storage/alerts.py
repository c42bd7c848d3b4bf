"""The alerts outbox: every push is stored first and marked delivered once a sink took it."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.core.domain import Alert, AlertPriority, from_ms, to_ms
from storage.db import Database


class SqliteAlertRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        kind: str,
        priority: AlertPriority,
        text: str,
        now: datetime,
        photo: bytes | None = None,
    ) -> int:
        return await self._db.execute(
            "INSERT INTO alerts (kind, priority, text, created_at, photo) VALUES (?, ?, ?, ?, ?)",
            (kind, int(priority), text, to_ms(now), photo),
        )

    async def pending(self, limit: int = 100) -> list[Alert]:
        """Undelivered alerts, most urgent first, oldest first within a priority."""
        rows = await self._db.fetch_all(
            "SELECT * FROM alerts WHERE delivered_at IS NULL ORDER BY priority, id LIMIT ?",
            (limit,),
        )
        return [_alert(row) for row in rows]

    async def mark_delivered(self, alert_id: int, now: datetime) -> None:
        await self._db.execute(
            "UPDATE alerts SET delivered_at = ?, attempts = attempts + 1"
            " WHERE id = ? AND delivered_at IS NULL",
            (to_ms(now), alert_id),
        )

    async def mark_failed(self, alert_id: int) -> None:
        await self._db.execute(
            "UPDATE alerts SET attempts = attempts + 1 WHERE id = ?", (alert_id,)
        )

    async def delivered_chats(self, alert_id: int) -> set[int]:
        rows = await self._db.fetch_all(
            "SELECT chat_id FROM alert_deliveries WHERE alert_id = ?", (alert_id,)
        )
        return {int(row[0]) for row in rows}

    async def mark_delivered_to(self, alert_id: int, chat_id: int, now: datetime) -> None:
        """Delivered, so no longer in doubt: the attempt mark goes in the same transaction."""
        async with self._db.transaction():
            await self._db.execute(
                "INSERT OR IGNORE INTO alert_deliveries (alert_id, chat_id, delivered_at)"
                " VALUES (?, ?, ?)",
                (alert_id, chat_id, to_ms(now)),
            )
            await self.clear_attempt(alert_id, chat_id)

    async def attempted_chats(self, alert_id: int) -> set[int]:
        """Chats a send of ``alert_id`` went out to without an answer."""
        rows = await self._db.fetch_all(
            "SELECT chat_id FROM alert_attempts WHERE alert_id = ?", (alert_id,)
        )
        return {int(row[0]) for row in rows}

    async def mark_attempted(self, alert_id: int, chat_id: int) -> None:
        """Recorded before the send, so a crash during it leaves the mark."""
        await self._db.execute(
            "INSERT OR IGNORE INTO alert_attempts (alert_id, chat_id) VALUES (?, ?)",
            (alert_id, chat_id),
        )

    async def clear_attempt(self, alert_id: int, chat_id: int) -> None:
        """No doubt left: Telegram refused the send (it showed nothing), or it was delivered."""
        await self._db.execute(
            "DELETE FROM alert_attempts WHERE alert_id = ? AND chat_id = ?", (alert_id, chat_id)
        )

    async def oldest_pending(self) -> datetime | None:
        """When the oldest undelivered alert was pushed, or None."""
        row = await self._db.fetch_one(
            "SELECT min(created_at) FROM alerts WHERE delivered_at IS NULL"
        )
        return None if row is None or row[0] is None else from_ms(row[0])

    async def backlog(self) -> int:
        row = await self._db.fetch_one("SELECT COUNT(*) FROM alerts WHERE delivered_at IS NULL")
        return int(row[0]) if row else 0


def _alert(row: aiosqlite.Row) -> Alert:
    return Alert(
        id=row["id"],
        kind=row["kind"],
        priority=AlertPriority(row["priority"]),
        text=row["text"],
        created_at=from_ms(row["created_at"]),
        delivered_at=None if row["delivered_at"] is None else from_ms(row["delivered_at"]),
        attempts=row["attempts"],
        photo=row["photo"],
    )

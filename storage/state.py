"""Key-value bot state (JSON values): the persisted trading halt, paper balances, cash."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.core.domain import to_ms
from storage.db import Database


class SqliteStateRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str, default: Any = None) -> Any:
        row = await self._db.fetch_one("SELECT value FROM bot_state WHERE key = ?", (key,))
        return default if row is None else json.loads(row["value"])

    async def set(self, key: str, value: Any, now: datetime) -> None:
        await self._db.execute(
            "INSERT INTO bot_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (key, json.dumps(value, sort_keys=True), to_ms(now)),
        )

    async def delete(self, key: str) -> None:
        await self._db.execute("DELETE FROM bot_state WHERE key = ?", (key,))


class RememberedStateRepository(SqliteStateRepository):
    """The state store of a database only its one user writes (the paper twin's): each value
    is read once, then from memory as last written or read (kept as JSON text, so what a caller
    does to a value it got never reaches it). ``forget`` drops the memory: after a failure
    whose rollback it cannot see."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._known: dict[str, str | None] = {}

    async def get(self, key: str, default: Any = None) -> Any:
        if key not in self._known:
            row = await self._db.fetch_one("SELECT value FROM bot_state WHERE key = ?", (key,))
            self._known[key] = None if row is None else str(row["value"])
        text = self._known[key]
        return default if text is None else json.loads(text)

    async def set(self, key: str, value: Any, now: datetime) -> None:
        """Written unless it is the value already kept (its time is then not moved on)."""
        text = json.dumps(value, sort_keys=True)
        if self._known.get(key) != text:
            await super().set(key, value, now)
            self._known[key] = text

    async def delete(self, key: str) -> None:
        await super().delete(key)
        self._known[key] = None

    def forget(self) -> None:
        self._known.clear()

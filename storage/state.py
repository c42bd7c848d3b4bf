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

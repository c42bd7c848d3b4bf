"""Research receipts (bot/research/receipts.py), kept as JSON: one row per receipt."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from storage.db import Database


class SqliteReceiptRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, record: Mapping[str, Any]) -> None:
        """Store ``record`` (``Receipt.record()``); an id already taken raises, changing nothing."""
        await self._db.execute(
            "INSERT INTO receipts (id, created_at, kind, strategy, body) VALUES (?, ?, ?, ?, ?)",
            (
                record["id"],
                record["created_ms"],
                record["kind"],
                record["strategy"],
                json.dumps(record, sort_keys=True),
            ),
        )

    async def get(self, receipt_id: str) -> dict[str, Any] | None:
        row = await self._db.fetch_one("SELECT body FROM receipts WHERE id = ?", (receipt_id,))
        if row is None:
            return None
        body: dict[str, Any] = json.loads(row["body"])
        return body

"""The audit log: who ran which command with which arguments, and what came of it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from bot.core.domain import AuditEntry, from_ms, to_ms
from storage.db import Database


class SqliteAuditRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, *, actor: str, command: str, arguments: Sequence[str], result: str, now: datetime
    ) -> int:
        return await self._db.execute(
            "INSERT INTO audit_log (time, actor, command, arguments, result)"
            " VALUES (?, ?, ?, ?, ?)",
            (to_ms(now), actor, command, json.dumps(list(arguments)), result),
        )

    async def add_many(
        self, entries: Sequence[tuple[str, str, Sequence[str], str]], now: datetime
    ) -> None:
        """(actor, command, arguments, result) entries at ``now``, in one commit."""
        async with self._db.transaction() as connection:
            await connection.executemany(
                "INSERT INTO audit_log (time, actor, command, arguments, result)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (to_ms(now), actor, command, json.dumps(list(arguments)), result)
                    for actor, command, arguments, result in entries
                ],
            )

    async def latest(self, limit: int) -> list[AuditEntry]:
        """The most recent entries, newest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [
            AuditEntry(
                id=row["id"],
                time=from_ms(row["time"]),
                actor=row["actor"],
                command=row["command"],
                arguments=json.loads(row["arguments"]),
                result=row["result"],
            )
            for row in rows
        ]

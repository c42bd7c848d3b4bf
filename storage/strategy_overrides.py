"""Standing /allow overrides (bot/trading/strategy_gate.py): a strategy let trade real money
at one source hash though its check has not passed there."""

from __future__ import annotations

from typing import Any

from aiosqlite import Row

from storage.db import Database

_COLUMNS = ("id", "created_at", "strategy", "source_hash", "actor", "overrode")


class SqliteStrategyOverrideRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, created_ms: int, strategy: str, source_hash: str, actor: str, overrode: str
    ) -> int:
        """Store an override of ``strategy`` at ``source_hash``; the new row's id."""
        return await self._db.execute(
            "INSERT INTO strategy_overrides (created_at, strategy, source_hash, actor, overrode) "
            "VALUES (?, ?, ?, ?, ?)",
            (created_ms, strategy, source_hash, actor, overrode),
        )

    async def standing(self, strategy: str, source_hash: str) -> dict[str, Any] | None:
        """The newest unrevoked override of ``strategy`` at ``source_hash``, or None."""
        row = await self._db.fetch_one(
            "SELECT id, created_at, strategy, source_hash, actor, overrode FROM strategy_overrides "
            "WHERE strategy = ? AND source_hash = ? "
            "AND revoked_at IS NULL ORDER BY id DESC LIMIT 1",
            (strategy, source_hash),
        )
        return None if row is None else _override(row)

    async def all_standing(self) -> list[dict[str, Any]]:
        """Every unrevoked override (of any source hash), oldest first."""
        rows = await self._db.fetch_all(
            "SELECT id, created_at, strategy, source_hash, actor, overrode FROM strategy_overrides "
            "WHERE revoked_at IS NULL ORDER BY id"
        )
        return [_override(row) for row in rows]

    async def revoke(self, strategy: str, revoked_ms: int, actor: str) -> int:
        """Revoke every standing override of ``strategy``; how many there were."""
        async with self._db.transaction() as connection:
            cursor = await connection.execute(
                "UPDATE strategy_overrides SET revoked_at = ?, revoked_by = ? "
                "WHERE strategy = ? AND revoked_at IS NULL",
                (revoked_ms, actor, strategy),
            )
            return cursor.rowcount


def _override(row: Row) -> dict[str, Any]:
    return {key: row[key] for key in _COLUMNS}

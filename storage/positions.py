"""Positions: one row per pair, flat positions kept with their realised PnL."""

from __future__ import annotations

import aiosqlite

from bot.core.domain import Position, from_ms, to_ms
from storage.db import Database


class SqlitePositionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, position: Position) -> None:
        await self._db.execute(
            "INSERT INTO positions (pair, amount, average_price, realised_pnl, fees, opened_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pair) DO UPDATE SET"
            " amount = excluded.amount, average_price = excluded.average_price,"
            " realised_pnl = excluded.realised_pnl, fees = excluded.fees,"
            " opened_at = excluded.opened_at, updated_at = excluded.updated_at",
            (
                position.pair,
                position.amount,
                position.average_price,
                position.realised_pnl,
                position.fees,
                to_ms(position.opened_at) if position.opened_at else None,
                to_ms(position.updated_at),
            ),
        )

    async def get(self, pair: str) -> Position | None:
        row = await self._db.fetch_one("SELECT * FROM positions WHERE pair = ?", (pair,))
        return None if row is None else _position(row)

    async def all(self) -> list[Position]:
        rows = await self._db.fetch_all("SELECT * FROM positions ORDER BY pair")
        return [_position(row) for row in rows]


def _position(row: aiosqlite.Row) -> Position:
    return Position(
        pair=row["pair"],
        amount=row["amount"],
        average_price=row["average_price"],
        realised_pnl=row["realised_pnl"],
        fees=row["fees"],
        opened_at=None if row["opened_at"] is None else from_ms(row["opened_at"]),
        updated_at=from_ms(row["updated_at"]),
    )

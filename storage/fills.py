"""Fills: every execution an exchange reported, booked exactly once (trade id is the key)."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.core.domain import Fill, Side, from_ms, to_ms
from storage.db import Database


class SqliteFillRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, fill: Fill) -> bool:
        """Book a fill; False when this trade id was booked before (nothing changes then). Only
        that conflict is ignored: a fill the table refuses (amount 0) raises."""
        async with self._db.transaction() as connection:
            cursor = await connection.execute(
                "INSERT INTO fills (trade_id, client_order_id, pair, side, amount,"
                " price, fee, time, fee_outside, fee_asset, fee_amount)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (trade_id) DO NOTHING",
                (
                    fill.trade_id,
                    fill.client_order_id,
                    fill.pair,
                    fill.side.value,
                    fill.amount,
                    fill.price,
                    fill.fee,
                    to_ms(fill.time),
                    fill.fee_outside,
                    fill.fee_asset,
                    fill.fee_amount,
                ),
            )
            return cursor.rowcount == 1

    async def seen(self, trade_id: str) -> bool:
        """Whether this trade was booked, or recorded as sold beyond the books, before."""
        row = await self._db.fetch_one(
            "SELECT EXISTS (SELECT 1 FROM fills WHERE trade_id = ?)"
            " OR EXISTS (SELECT 1 FROM sales_beyond WHERE trade_id = ?) AS seen",
            (trade_id, trade_id),
        )
        return bool(row and row["seen"])

    async def add_beyond(self, fill: Fill, amount: float, users: float) -> None:
        """Record that ``fill``'s trade sold ``amount`` beyond the books' position, ``users`` of
        it the user's own coins (see bot/execution/executor.py)."""
        values = (fill.trade_id, fill.client_order_id, fill.pair, amount, fill.price, users)
        await self._db.execute(
            "INSERT INTO sales_beyond (trade_id, client_order_id, pair, amount, price, users,"
            " time) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*values, to_ms(fill.time)),
        )

    async def for_order(self, client_order_id: str) -> list[Fill]:
        rows = await self._db.fetch_all(
            "SELECT * FROM fills WHERE client_order_id = ? ORDER BY time, rowid",
            (client_order_id,),
        )
        return [_fill(row) for row in rows]

    async def all(self, since: datetime | None = None, pair: str | None = None) -> list[Fill]:
        start = to_ms(since) if since else 0
        rows = await self._db.fetch_all(
            "SELECT * FROM fills WHERE time >= ? ORDER BY time, rowid"
            if pair is None
            else "SELECT * FROM fills WHERE pair = ? AND time >= ? ORDER BY time, rowid",
            (start,) if pair is None else (pair, start),
        )
        return [_fill(row) for row in rows]


def _fill(row: aiosqlite.Row) -> Fill:
    return Fill(
        client_order_id=row["client_order_id"],
        pair=row["pair"],
        side=Side(row["side"]),
        amount=row["amount"],
        price=row["price"],
        fee=row["fee"],
        time=from_ms(row["time"]),
        trade_id=row["trade_id"],
        fee_outside=row["fee_outside"],
        fee_asset=row["fee_asset"],
        fee_amount=row["fee_amount"],
    )

"""Orders: the execution journal. An intent is written here before any exchange is called."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.core.domain import Order, OrderIntent, OrderStatus, Side, from_ms, to_ms
from storage.db import Database


class SqliteOrderRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, intent: OrderIntent) -> Order:
        """Journal a new intent; a client order id that exists already raises IntegrityError."""
        async with self._db.transaction() as connection:
            await connection.execute(
                "INSERT INTO orders (client_order_id, run_id, pair, side, amount, status, reason,"
                " created_at, updated_at, reference_price, kind, quote_amount)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    intent.client_order_id,
                    intent.run_id,
                    intent.pair,
                    intent.side.value,
                    intent.amount,
                    OrderStatus.NEW.value,
                    intent.reason,
                    to_ms(intent.created_at),
                    to_ms(intent.created_at),
                    intent.limit_price or intent.stop_price or intent.reference_price or None,
                    _kind(intent),
                    intent.quote_amount,
                ),
            )
            await _record(
                connection,
                intent.client_order_id,
                OrderStatus.NEW,
                intent.created_at,
                intent.reason,
            )
        return await self.require(intent.client_order_id)

    async def update(
        self,
        client_order_id: str,
        status: OrderStatus,
        now: datetime,
        *,
        filled: float | None = None,
        average_price: float | None = None,
        exchange_order_id: str | None = None,
        note: str = "",
    ) -> Order:
        """Move an order to ``status`` and append that step to its history; a read that
        changes nothing (a resting order seen again each tick) adds no step."""
        async with self._db.transaction() as connection:
            cursor = await connection.execute(
                "SELECT status, filled, (SELECT note FROM order_status_history h WHERE"
                " h.client_order_id = o.client_order_id ORDER BY h.id DESC LIMIT 1) AS note"
                " FROM orders o WHERE client_order_id = ?",
                (client_order_id,),
            )
            before = await cursor.fetchone()
            await connection.execute(
                "UPDATE orders SET status = ?, updated_at = ?, filled = COALESCE(?, filled),"
                " average_price = COALESCE(?, average_price),"
                " exchange_order_id = COALESCE(?, exchange_order_id) WHERE client_order_id = ?",
                (
                    status.value,
                    to_ms(now),
                    filled,
                    average_price,
                    exchange_order_id,
                    client_order_id,
                ),
            )
            if before is not None and (
                (before[0], before[2]) != (status.value, note)
                or (filled is not None and filled != before[1])
            ):
                await _record(connection, client_order_id, status, now, note)
        return await self.require(client_order_id)

    async def get(self, client_order_id: str) -> Order | None:
        row = await self._db.fetch_one(
            "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
        )
        return None if row is None else _order(row)

    async def require(self, client_order_id: str) -> Order:
        order = await self.get(client_order_id)
        if order is None:
            raise KeyError(client_order_id)
        return order

    async def not_final(self) -> list[Order]:
        """Orders whose outcome is not settled yet: what a restart must reconcile."""
        final = tuple(status.value for status in OrderStatus if status.is_final)
        rows = await self._db.fetch_all(
            f"SELECT * FROM orders WHERE status NOT IN ({','.join('?' * len(final))})"  # noqa: S608
            " ORDER BY created_at",
            final,
        )
        return [_order(row) for row in rows]

    async def recent(self, limit: int = 50) -> list[Order]:
        """The latest ``limit`` orders, newest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM orders ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
        )
        return [_order(row) for row in rows]

    async def history(self, client_order_id: str) -> list[tuple[OrderStatus, datetime, str]]:
        rows = await self._db.fetch_all(
            "SELECT status, time, note FROM order_status_history WHERE client_order_id = ?"
            " ORDER BY id",
            (client_order_id,),
        )
        return [(OrderStatus(row["status"]), from_ms(row["time"]), row["note"]) for row in rows]


async def _record(
    connection: aiosqlite.Connection,
    client_order_id: str,
    status: OrderStatus,
    now: datetime,
    note: str,
) -> None:
    await connection.execute(
        "INSERT INTO order_status_history (client_order_id, status, time, note)"
        " VALUES (?, ?, ?, ?)",
        (client_order_id, status.value, to_ms(now), note),
    )


def _order(row: aiosqlite.Row) -> Order:
    return Order(
        client_order_id=row["client_order_id"],
        run_id=row["run_id"],
        pair=row["pair"],
        side=Side(row["side"]),
        amount=row["amount"],
        status=OrderStatus(row["status"]),
        created_at=from_ms(row["created_at"]),
        updated_at=from_ms(row["updated_at"]),
        filled=row["filled"],
        average_price=row["average_price"],
        exchange_order_id=row["exchange_order_id"],
        reason=row["reason"],
        reference_price=row["reference_price"],
        kind=row["kind"],
        quote_amount=row["quote_amount"],
    )


def _kind(intent: OrderIntent) -> str:
    """How ``intent`` is sent (bot/execution/executor.py ``_send``): a stop, a limit or at
    market."""
    if intent.stop_price is not None:
        return "stop"
    return "limit" if intent.limit_price is not None else "market"

"""Stored candles, keyed by exchange, pair, timeframe and open time (duplicates ignored)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from bot.core.domain import to_ms
from storage.db import Database

_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


class SqliteCandleRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_frame(self, exchange: str, pair: str, timeframe: str, frame: pd.DataFrame) -> int:
        """Store candles from a frame with our columns; returns how many were new."""
        rows = [
            (exchange, pair, timeframe, int(row[0]), *map(float, row[1:]))
            for row in frame[list(_COLUMNS)].itertuples(index=False, name=None)
        ]
        async with self._db.transaction() as connection:
            before = connection.total_changes
            await connection.executemany(
                "INSERT OR IGNORE INTO candles (exchange, pair, timeframe, timestamp, open, high,"
                " low, close, volume) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return connection.total_changes - before

    async def frame(
        self,
        exchange: str,
        pair: str,
        timeframe: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """Candles opening in [since, until), oldest first, as a frame with our columns."""
        rows = await self._db.fetch_all(
            "SELECT timestamp, open, high, low, close, volume FROM candles WHERE exchange = ?"
            " AND pair = ? AND timeframe = ? AND timestamp >= ? AND timestamp < ?"
            " ORDER BY timestamp",
            (
                exchange,
                pair,
                timeframe,
                to_ms(since) if since else 0,
                to_ms(until) if until else 2**62,
            ),
        )
        frame = pd.DataFrame([tuple(row) for row in rows], columns=list(_COLUMNS))
        frame["timestamp"] = frame["timestamp"].astype(np.int64)
        return frame

    async def last_timestamp(self, exchange: str, pair: str, timeframe: str) -> int | None:
        row = await self._db.fetch_one(
            "SELECT max(timestamp) FROM candles WHERE exchange = ? AND pair = ? AND timeframe = ?",
            (exchange, pair, timeframe),
        )
        return None if row is None or row[0] is None else int(row[0])

    async def series(self) -> list[tuple[str, str, str]]:
        """Every (exchange, pair, timeframe) with stored candles."""
        rows = await self._db.fetch_all(
            "SELECT DISTINCT exchange, pair, timeframe FROM candles ORDER BY exchange, pair,"
            " timeframe"
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def timestamps(self, exchange: str, pair: str, timeframe: str) -> npt.NDArray[np.int64]:
        rows = await self._db.fetch_all(
            "SELECT timestamp FROM candles WHERE exchange = ? AND pair = ? AND timeframe = ?"
            " ORDER BY timestamp",
            (exchange, pair, timeframe),
        )
        return np.array([row[0] for row in rows], dtype=np.int64)

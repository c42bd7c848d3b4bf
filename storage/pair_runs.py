"""Pair runs: which pairs the service trades, with what strategy, and in which state."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aiosqlite

from bot.core.domain import DuplicateRun, PairRun, RunState, from_ms, to_ms
from storage.db import Database

__all__ = ["DuplicateRun", "SqlitePairRunRepository"]  # DuplicateRun: what add raises


class SqlitePairRunRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        *,
        pair: str,
        strategy: str,
        timeframe: str,
        params: Mapping[str, Any],
        capital_share: float,
        now: datetime,
        state: RunState = RunState.RUNNING,
    ) -> PairRun:
        try:
            run_id = await self._db.execute(
                "INSERT INTO pair_runs (pair, strategy, timeframe, params, capital_share, state,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pair,
                    strategy,
                    timeframe,
                    json.dumps(dict(params), sort_keys=True),
                    capital_share,
                    state.value,
                    to_ms(now),
                    to_ms(now),
                ),
            )
        except sqlite3.IntegrityError as error:
            raise DuplicateRun(f"{pair} already has an active run") from error
        return await self.get(run_id)

    async def get(self, run_id: int) -> PairRun:
        row = await self._db.fetch_one("SELECT * FROM pair_runs WHERE id = ?", (run_id,))
        if row is None:
            raise KeyError(run_id)
        return _run(row)

    async def active(self) -> list[PairRun]:
        """Running and paused runs, oldest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM pair_runs WHERE state != 'stopped' ORDER BY id"
        )
        return [_run(row) for row in rows]

    async def latest_for(self, pair: str) -> PairRun:
        """The most recent run of ``pair``, stopped or not."""
        row = await self._db.fetch_one(
            "SELECT * FROM pair_runs WHERE pair = ? ORDER BY id DESC LIMIT 1", (pair,)
        )
        if row is None:
            raise KeyError(pair)
        return _run(row)

    async def set_state(self, run_id: int, state: RunState, now: datetime) -> PairRun:
        await self._db.execute(
            "UPDATE pair_runs SET state = ?, updated_at = ? WHERE id = ?",
            (state.value, to_ms(now), run_id),
        )
        return await self.get(run_id)

    async def mirror(self, run: PairRun) -> None:
        """Keep ``run``, another database's, under its own id (the paper twin's copy of a live
        run: the twin's orders name it); an older active run of its pair is stopped."""
        async with self._db.transaction() as connection:
            await connection.execute(
                "UPDATE pair_runs SET state = 'stopped' WHERE pair = ? AND id != ?"
                " AND state != 'stopped'",
                (run.pair, run.id),
            )
            await connection.execute(
                "INSERT INTO pair_runs (id, pair, strategy, timeframe, params, capital_share,"
                " state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
                " updated_at = excluded.updated_at",
                (
                    run.id,
                    run.pair,
                    run.strategy,
                    run.timeframe,
                    json.dumps(dict(run.params), sort_keys=True),
                    run.capital_share,
                    run.state.value,
                    to_ms(run.created_at),
                    to_ms(run.updated_at),
                ),
            )


def _run(row: aiosqlite.Row) -> PairRun:
    return PairRun(
        id=row["id"],
        pair=row["pair"],
        strategy=row["strategy"],
        timeframe=row["timeframe"],
        params=json.loads(row["params"]),
        capital_share=row["capital_share"],
        state=RunState(row["state"]),
        created_at=from_ms(row["created_at"]),
        updated_at=from_ms(row["updated_at"]),
    )

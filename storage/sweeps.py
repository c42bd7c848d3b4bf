"""Sweeps and their results. A result's key is (sweep, series, segment, parameters): a task
that ran twice (its worker died and Dask ran it again) stores nothing twice."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.core.domain import SweepRow, to_ms
from storage.db import Database


class SqliteSweepRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, strategy: str, spec: dict[str, Any], tasks: int, now: datetime) -> int:
        return await self._db.execute(
            "INSERT INTO sweeps (created_at, strategy, spec, tasks) VALUES (?, ?, ?, ?)",
            (to_ms(now), strategy, json.dumps(spec, sort_keys=True), tasks),
        )

    async def add(self, sweep_id: int, rows: Sequence[SweepRow]) -> None:
        async with self._db.transaction() as connection:
            await connection.executemany(
                "INSERT OR IGNORE INTO sweep_results (sweep_id, pair, timeframe, segment, params,"
                " score, metrics) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        sweep_id,
                        row.pair,
                        row.timeframe,
                        row.segment,
                        json.dumps(dict(row.params), sort_keys=True),
                        row.score,
                        json.dumps(row.metrics),
                    )
                    for row in rows
                ],
            )

    async def finish(self, sweep_id: int, now: datetime) -> None:
        await self._db.execute(
            "UPDATE sweeps SET finished = ? WHERE id = ?", (to_ms(now), sweep_id)
        )

    async def rows(self, sweep_id: int) -> list[SweepRow]:
        found = await self._db.fetch_all(
            "SELECT pair, timeframe, segment, params, score, metrics FROM sweep_results "
            "WHERE sweep_id = ?",
            (sweep_id,),
        )
        return [
            SweepRow(
                r["pair"],
                r["timeframe"],
                r["segment"],
                tuple(sorted(json.loads(r["params"]).items())),
                r["score"],
                json.loads(r["metrics"]),
            )
            for r in found
        ]

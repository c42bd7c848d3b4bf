"""Stored strategy checks (bot/research/strategy_check.py), one row per `strategy check` run.

What a stored check clears is decided in bot/research/check_status.py from every check at a
source hash (``at_source``): by parameters, by the check's own version, failures first."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiosqlite import Row

from storage.db import Database


class SqliteStrategyCheckRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, created_ms: int, fingerprint: Mapping[str, Any], report: Mapping[str, Any]
    ) -> int:
        """Store ``report`` (``CheckReport.record()``) under ``fingerprint`` (source_hash,
        check_version, pair, timeframe, candle_hash: the body holds both); the new row's id."""
        return await self._db.execute(
            "INSERT INTO strategy_checks (created_at, strategy, source_hash, params, pair, "
            "timeframe, first_ms, last_ms, candles, candle_hash, passed, body, check_version, "
            "seed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                created_ms,
                report["strategy"],
                fingerprint["source_hash"],
                json.dumps(report["params"], sort_keys=True),
                fingerprint["pair"],
                fingerprint["timeframe"],
                report["first_ms"],
                report["last_ms"],
                report["candles"],
                fingerprint["candle_hash"],
                int(bool(report["passed"])),
                json.dumps({**report, **fingerprint}, sort_keys=True),
                str(fingerprint.get("check_version", "")),
                report.get("seed"),
            ),
        )

    async def at_source(self, strategy: str, source_hash: str) -> list[dict[str, Any]]:
        """Every check of ``strategy`` at ``source_hash``, oldest first (report, fingerprint,
        ``created_ms``, ``check_version``)."""
        rows = await self._db.fetch_all(
            "SELECT created_at, body, check_version FROM strategy_checks "
            "WHERE strategy = ? AND source_hash = ? ORDER BY id",
            (strategy, source_hash),
        )
        return [_check(row) for row in rows]

    async def latest(self, strategy: str, source_hash: str) -> dict[str, Any] | None:
        """The newest check of ``strategy`` at ``source_hash`` (report and fingerprint), or None:
        what a gate asks before the strategy may trade. ``created_ms``: when it ran."""
        row = await self._db.fetch_one(
            "SELECT created_at, body, check_version FROM strategy_checks WHERE strategy = ? "
            "AND source_hash = ? "
            "ORDER BY id DESC LIMIT 1",
            (strategy, source_hash),
        )
        return None if row is None else _check(row)

    async def newest(self, strategy: str) -> dict[str, Any] | None:
        """The newest check of ``strategy`` at any source hash, or None: whether the strategy
        was checked before its file last changed."""
        row = await self._db.fetch_one(
            "SELECT created_at, body, check_version FROM strategy_checks WHERE strategy = ? "
            "ORDER BY id DESC LIMIT 1",
            (strategy,),
        )
        return None if row is None else _check(row)


def _check(row: Row) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(row["body"])
    return {**body, "created_ms": int(row["created_at"]), "check_version": row["check_version"]}

"""The stored strategy checks as the CLI reads them: the config's database opened read only,
never created (bot/research/check_status.py words them)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.research.check_status import CheckStatus, StrategyChecks
    from strategies import Strategy


def stored_statuses(
    database: Path, registry: Mapping[str, type[Strategy]]
) -> dict[str, CheckStatus]:
    """Each strategy's check status from ``database``, opened read only (never created): with
    no database, or one from before strategy checks, none was checked."""
    from bot.research.check_status import NOT_CHECKED, check_statuses

    return _read(
        database,
        lambda checks: check_statuses(checks, registry),
        dict.fromkeys(registry, NOT_CHECKED),
    )


def _read[T](database: Path, reading: Callable[[StrategyChecks], Awaitable[T]], unchecked: T) -> T:
    """``reading`` of the checks stored in ``database`` (read only); ``unchecked`` when there
    are none."""
    from storage.db import open_read_only
    from storage.strategy_checks import SqliteStrategyCheckRepository

    async def read() -> T:
        async with open_read_only(database) as db:
            return await reading(SqliteStrategyCheckRepository(db))

    if database.is_file():
        try:
            return asyncio.run(read())
        except sqlite3.OperationalError as error:
            if "no such table" not in str(error):
                raise
    return unchecked


def print_check_note(
    config: Path | None, strategy: type[Strategy], params: Mapping[str, Any] | None = None
) -> None:
    """On stderr, the one line a research run of ``strategy`` (at ``params``; None: any, for a
    sweep) says when its check has not passed at its current source (read from ``config``'s
    database, never created). Without a config there is no account it could go live on, and
    nothing is said."""
    if config is None:
        return
    from bot.app.config import load_settings
    from bot.research.check_status import NOT_CHECKED, check_note, stored_status

    database = load_settings(config, None, strategies=False).database_path
    status = _read(database, lambda checks: stored_status(checks, strategy, params), NOT_CHECKED)
    note = check_note(strategy, status, params)
    if note:
        print(note, file=sys.stderr)

"""Stored strategy checks for tests, through the real storage: the live gate
(bot/trading/strategy_gate.py) lets only code whose check passed at its source trade live."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bot.app.config import Settings
from bot.research.check_version import check_version
from bot.research.receipts import source_hash
from storage.db import Database
from storage.strategy_checks import SqliteStrategyCheckRepository
from strategies import strategy_registry

CHECKED_MS = 1_795_000_000_000  # when a check recorded here ran
CHECKS = ("look-ahead", "warm-up", "determinism", "output", "cost")


async def record_check(
    db: Database,
    strategy: str,
    pair: str = "BTC/USDT",
    timeframe: str = "1h",
    *,
    failed: Iterable[str] = (),
    created_ms: int = CHECKED_MS,
    source: str | None = None,
    params: Mapping[str, object] | None = None,
) -> None:
    """A `pairpilot strategy check` of ``strategy`` at its source now (or at ``source``, a
    source hash) with ``params`` (the defaults when None), by the current version of the
    check, as the CLI stores it, failing the checks in ``failed`` (none: it passed)."""
    failing = set(failed)
    registry = strategy_registry()
    verdicts = [{"check": c, "passed": c not in failing, "detail": ""} for c in CHECKS]
    report = {
        "strategy": strategy,
        "params": registry.build(strategy, params or {}).params,
        "passed": not failing,
        "verdicts": verdicts,
        "candles": 500,
        "first_ms": 0,
        "last_ms": 0,
    }
    fingerprint = {
        "source_hash": source or source_hash(registry[strategy]),
        "check_version": check_version(),
        "pair": pair,
        "timeframe": timeframe,
        "candle_hash": "0" * 32,
    }
    await SqliteStrategyCheckRepository(db).add(created_ms, fingerprint, report)


async def check_configured(db: Database, settings: Settings) -> None:
    """A passed check of each configured pair's strategy: it stands for the user having run
    `pairpilot strategy check` on them before going live."""
    for pair in settings.pairs:
        await record_check(db, pair.strategy, pair.pair, pair.timeframe, params=pair.params)

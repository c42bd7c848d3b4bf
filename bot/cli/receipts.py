"""Research receipts on the command line: every backtest stores one in the --config's
database (the one `pairpilot run` would use); `load_receipt` reads one back by id and
`series_candles` its candles where it read them."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.domain import from_ms
from bot.core.errors import BotError, NotFound
from bot.research.receipts import Receipt, SeriesPrint, backtest_receipt, checked_id

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from bot.core.domain import SweepRow
    from bot.research.account_terms import ResearchTerms
    from bot.research.backtest import BacktestResult
    from bot.research.portfolio import PortfolioResult
    from bot.research.portfolio_inputs import PortfolioConfig
    from bot.research.portfolio_receipts import Window
    from bot.research.portfolio_sweep import PortfolioSweep
    from bot.research.sweep import Series, SweepSpec
    from storage.db import Database
    from storage.receipts import SqliteReceiptRepository


def receipt_database(args: argparse.Namespace) -> Path:
    from bot.app.config import load_settings

    return load_settings(args.config, None).database_path


def in_database[T](database: Path, work: Callable[[Database], Awaitable[T]]) -> T:
    from storage.db import open_database

    async def run() -> T:
        async with open_database(database) as db:
            return await work(db)

    return asyncio.run(run())


def _with_receipts[T](database: Path, work: Callable[[SqliteReceiptRepository], Awaitable[T]]) -> T:
    from storage.receipts import SqliteReceiptRepository

    return in_database(database, lambda db: work(SqliteReceiptRepository(db)))


def store_backtest_receipt(
    args: argparse.Namespace,
    result: BacktestResult,
    terms: ResearchTerms,
    monte_carlo: Mapping[str, Any] | None = None,
) -> str | None:
    """Store the receipt of a backtest that succeeded (``monte_carlo``: its Monte Carlo
    figures, when asked for), in the --config's database; its id."""
    from bot.core.clock import SystemClock

    source = _file_source(args.data) if args.data else _stored_source(args)
    receipt = backtest_receipt(result, terms, source, SystemClock().now(), monte_carlo)
    return _kept(args, receipt)


def store_sweep_receipt(
    args: argparse.Namespace,
    spec: SweepSpec,
    series: list[Series],
    done: tuple[int, list[SweepRow]],
) -> str | None:
    """Store the receipt of sweep ``done`` (its id and rows) that ran on ``series``; its id."""
    from bot.core.clock import SystemClock
    from bot.research.sweep_receipts import sweep_receipt

    if args.data:
        sources = [_file_source(path) for path in args.data]
    else:
        sources = [_stored_source(args)] * len(series)
    sweep_id, rows = done
    receipt = sweep_receipt(spec, series, sources, sweep_id, rows, SystemClock().now())
    return _kept(args, receipt)


def store_portfolio_receipt(
    args: argparse.Namespace,
    settings: PortfolioConfig,
    result: PortfolioResult,
    candles: Mapping[str, pd.DataFrame],
    window: Window,
) -> str | None:
    """Store the receipt of a portfolio backtest that succeeded; its id."""
    from bot.core.clock import SystemClock
    from bot.research.portfolio_receipts import portfolio_receipt

    sources = portfolio_sources(args, settings)
    receipt = portfolio_receipt(result, settings, candles, sources, window, SystemClock().now())
    return _kept(args, receipt)


def store_portfolio_sweep_receipt(
    args: argparse.Namespace,
    sweep: PortfolioSweep,
    candles: Mapping[str, pd.DataFrame],
    done: tuple[int, list[SweepRow]],
) -> str | None:
    """Store the receipt of portfolio sweep ``done`` (its id and rows); its id."""
    from bot.core.clock import SystemClock
    from bot.research.portfolio_receipts import portfolio_sweep_receipt

    sources = portfolio_sources(args, sweep.config)
    receipt = portfolio_sweep_receipt(sweep, candles, sources, done, SystemClock().now())
    return _kept(args, receipt)


def portfolio_sources(args: argparse.Namespace, settings: Any) -> dict[str, dict[str, Any]]:
    """Where each configured pair's candles are read (``config_candles``): its replay file,
    else the stored candles."""
    files = settings.market_data.replay_files
    return {
        entry.pair: _file_source(Path(files[entry.pair]))
        if entry.pair in files
        else _stored_source(args)
        for entry in settings.pairs
    }


def _kept(args: argparse.Namespace, receipt: Receipt) -> str | None:
    """Store ``receipt``; its id, or None (said on stderr) where its database cannot be
    written: the result it fingerprints stands and is printed all the same."""
    import sqlite3
    import sys

    from storage.db import UnusableDatabase

    try:
        _with_receipts(receipt_database(args), lambda store: store.add(receipt.record()))
    except (UnusableDatabase, sqlite3.Error, OSError, BotError) as error:
        print(f"pairpilot: the receipt was not stored ({error})", file=sys.stderr)
        return None
    return receipt.id


def _file_source(path: Path) -> dict[str, Any]:
    path = path.resolve()
    return {"kind": "file", "path": str(path), "size": path.stat().st_size}


def _stored_source(args: argparse.Namespace) -> dict[str, Any]:
    return {"kind": "stored", "exchange": _exchange(args)}


def receipt_line(receipt_id: str | None) -> str:
    if receipt_id is None:
        return "no receipt: it could not be stored"
    return f"receipt {receipt_id}: pairpilot backtest --rerun {receipt_id} runs it again"


def _exchange(args: argparse.Namespace) -> str:
    from bot.cli.data import settings_for

    return str(args.exchange or settings_for(args).exchange.name)


def load_receipt(database: Path, text: str) -> Receipt:
    """The receipt ``text`` names, from ``database``; NotFound when there is none."""
    receipt_id = checked_id(text)
    if not database.exists():
        raise NotFound(f"no receipt {receipt_id}: {database} does not exist")
    record = _with_receipts(database, lambda store: store.get(receipt_id))
    if record is None:
        raise NotFound(f"no receipt {receipt_id} in {database}")
    return Receipt.from_record(record)


def series_candles(database: Path, series: SeriesPrint) -> pd.DataFrame | None:
    """The candles ``series`` read, read again where it read them; None when they are gone."""
    from bot.market.candle_files import read_candle_file, validate_candles

    source = series.source
    if source["kind"] == "file":
        path = Path(source["path"])
        return read_candle_file(path) if path.is_file() else None
    if not database.exists():
        return None
    from storage.candles import SqliteCandleRepository

    async def read(db: Database) -> pd.DataFrame:
        return await SqliteCandleRepository(db).frame(
            source["exchange"],
            series.pair,
            series.timeframe,
            from_ms(series.first_ms),
            from_ms(series.last_ms + 1),
        )

    frame = in_database(database, read)
    return validate_candles(frame, f"stored {series.pair}") if len(frame) else None

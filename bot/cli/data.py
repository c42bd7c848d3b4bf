"""`pairpilot data download | import | list`: candles into and out of storage."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from bot.core.errors import UserInputError
from bot.core.timeframes import timeframe_seconds

if TYPE_CHECKING:  # the handlers import what they use: `pairpilot backtest` starts lighter
    from tqdm import tqdm

    from bot.app.config import Settings
    from bot.market.store import SeriesReport


def add_data_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = commands.add_parser("data", help="download, import and list stored candles")
    actions = data.add_subparsers(dest="action", required=True)

    fetch = actions.add_parser("download", help="fetch candles from an exchange through ccxt")
    fetch.add_argument("--exchange", help="ccxt exchange id (default: the config's, binance)")
    fetch.add_argument("--pair", required=True, help="like BTC/USDT")
    fetch.add_argument("--timeframe", required=True, help="like 1m, 1h, 1d")
    fetch.add_argument("--since", required=True, help="UTC date or time, like 2024-01-01")
    fetch.add_argument("--until", help="UTC date or time (default: now)")
    fetch.set_defaults(handler=_download)

    load = actions.add_parser("import", help="store a candle CSV file")
    load.add_argument("file", type=Path)
    load.add_argument("--exchange", help="which exchange the file came from (default binance)")
    load.add_argument("--pair", help="default: from the file name, like BTC_USDT-1h.csv.gz")
    load.add_argument("--timeframe", help="default: from the file name or the candles")
    load.set_defaults(handler=_import)

    show = actions.add_parser("list", help="what is stored: pair, timeframe, range, count, gaps")
    show.set_defaults(handler=_list)
    for parser in (fetch, load, show):
        parser.add_argument("--config", type=Path, help="TOML config (for data_dir, exchange)")


def parse_time(text: str, option: str) -> datetime:
    """A UTC date (2024-01-01) or date-time (2024-01-01T12:00) from the command line."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserInputError(f"{option} {text!r}: expected a date like 2024-01-01") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def settings_for(args: argparse.Namespace) -> Settings:
    from bot.app.config import load_settings
    from bot.app.secret_values import Secrets

    return load_settings(args.config, Secrets.from_environment())


def _download(args: argparse.Namespace) -> int:
    from bot.core.clock import SystemClock
    from bot.exchange.ccxt_exchange import CcxtExchange
    from bot.market.store import download
    from storage.candles import SqliteCandleRepository
    from storage.db import open_database

    settings = settings_for(args)
    since = parse_time(args.since, "--since")
    until = parse_time(args.until, "--until") if args.until else None
    timeframe_seconds(args.timeframe)
    name = args.exchange or settings.exchange.name
    config = settings.exchange.ccxt_config if name == settings.exchange.name else {}

    async def fetch() -> SeriesReport:
        exchange = CcxtExchange.create(name, config)
        try:
            await exchange.load_markets()
            exchange.check_pair(args.pair)
            exchange.check_timeframe(args.timeframe)
            now = SystemClock().now()
            end = min(until or now, now)
            async with open_database(settings.database_path) as db:
                with _progress_bar(since, end, args.timeframe) as bar:
                    return await download(
                        exchange,
                        SqliteCandleRepository(db),
                        pair=args.pair,
                        timeframe=args.timeframe,
                        since=since,
                        until=until,
                        now=now,
                        progress=lambda ms: bar.update(
                            ms // (timeframe_seconds(args.timeframe) * 1000)
                        ),
                    )
        finally:
            await exchange.close()

    print(format_report(asyncio.run(fetch())))
    return 0


def _import(args: argparse.Namespace) -> int:
    from bot.market.candle_files import pair_of, read_candle_file, timeframe_of
    from bot.market.store import describe
    from storage.candles import SqliteCandleRepository
    from storage.db import open_database

    settings = settings_for(args)
    pair = pair_of(args.file, args.pair)
    candles = read_candle_file(args.file)
    timeframe = timeframe_of(args.file, args.timeframe, candles)
    exchange = args.exchange or settings.exchange.name

    async def store() -> SeriesReport:
        async with open_database(settings.database_path) as db:
            repo = SqliteCandleRepository(db)
            added = await repo.add_frame(exchange, pair, timeframe, candles)
            return await describe(repo, exchange, pair, timeframe, added)

    print(format_report(asyncio.run(store())))
    return 0


def _list(args: argparse.Namespace) -> int:
    from bot.market.store import describe
    from storage.candles import SqliteCandleRepository
    from storage.db import open_database

    settings = settings_for(args)
    if not settings.database_path.exists():
        print(f"no candles stored yet ({settings.database_path} does not exist)")
        return 0

    async def read() -> list[SeriesReport]:
        async with open_database(settings.database_path) as db:
            repo = SqliteCandleRepository(db)
            return [await describe(repo, *key) for key in await repo.series()]

    reports = asyncio.run(read())
    if not reports:
        print("no candles stored yet")
    for report in reports:
        print(format_report(report, verbose=False))
    return 0


def format_report(report: SeriesReport, verbose: bool = True) -> str:
    span = (
        f"{report.first:%Y-%m-%d %H:%M} .. {report.last:%Y-%m-%d %H:%M}"
        if report.first and report.last
        else "empty"
    )
    missing = sum(gap.missing for gap in report.gaps)
    line = (
        f"{report.exchange} {report.pair} {report.timeframe}: {report.count:,} candles, "
        f"{span} UTC, {len(report.gaps)} gaps ({missing:,} missing candles)"
    )
    if verbose:
        line += f"; {report.added:,} new"
        line += "".join(
            f"\n  gap: {gap.after:%Y-%m-%d %H:%M} -> {gap.before:%Y-%m-%d %H:%M} "
            f"({gap.missing} missing, not filled)"
            for gap in report.gaps[:20]
        )
    return line


def _progress_bar(since: datetime, end: datetime, timeframe: str) -> tqdm[NoReturn]:
    from tqdm import tqdm

    total = max(0, int((end - since).total_seconds() // timeframe_seconds(timeframe)))
    return tqdm(total=total, unit="candle", file=sys.stderr, disable=None, leave=False)

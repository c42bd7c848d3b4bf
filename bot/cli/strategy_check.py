"""`pairpilot strategy check NAME`: the analysis of bot/research/strategy_check.py on a candle
file or on stored candles, a verdict per check, the result stored in the --config's database
with the strategy's source hash. Exit 0 when every check passed, 1 when one failed, 2 on bad
input (too little data included: then nothing is stored). A check on which the strategy decided
too few times to mean anything (bot/research/strategy_check.py Inconclusive) exits 1 and
stores nothing: it neither passes nor proves a failure."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from bot.cli.args import malformed
from bot.core.domain import from_ms
from bot.core.errors import DataError, UserInputError
from bot.core.key_values import key_values

if TYPE_CHECKING:
    from strategies import Strategy

WIDTH = max(len(check) for check in ("bad output", "determinism", "look-ahead", "warm-up"))


def add_strategy_check_command(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``check`` under the ``strategy`` command group."""
    check = actions.add_parser(
        "check",
        help="check a strategy for look-ahead, warm-up, determinism, bad output and cost; "
        "exit 1 when a check fails",
    )
    check.add_argument("name", help="the strategy")
    check.add_argument("--data", type=Path, help="candle CSV (gzip or plain)")
    check.add_argument("--pair", help="the pair; with --data, default from the file name")
    check.add_argument("--timeframe", help="the timeframe; with --data, default from the file")
    check.add_argument("--since", help="with stored candles: from this UTC date")
    check.add_argument("--until", help="with stored candles: up to this UTC date")
    check.add_argument("--exchange", help="with stored candles: whose (default binance)")
    check.add_argument("--config", type=Path, help="TOML config: data_dir (where it is stored)")
    check.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="strategy parameter, repeatable (e.g. --param fast=12)",
    )
    check.set_defaults(handler=check_command)


def check_command(args: argparse.Namespace) -> int:
    from bot.cli.backtest import load_strategy
    from bot.cli.receipts import receipt_database
    from bot.research.strategy_check import Inconclusive, check_strategy

    database = receipt_database(args)  # reads the config first: it says which strategies exist
    strategy = load_strategy(args.name, key_values(args.param, malformed("--param")))
    pair, timeframe, candles = _candles(args)
    try:
        report = check_strategy(strategy, candles)  # TooLittleData: refused, nothing stored
    except Inconclusive as error:
        print(f"verdict: {error}; not stored")
        return 1
    check_id, source = _store(database, strategy, pair, timeframe, candles, report.record())
    span = f"{from_ms(report.first_ms):%Y-%m-%d %H:%M} .. {from_ms(report.last_ms):%Y-%m-%d %H:%M}"
    lines = [
        f"strategy check: {strategy.name} on {pair} {timeframe}, {report.candles} candles {span}"
    ]
    for verdict in report.verdicts:
        mark = "ok  " if verdict.passed else "FAIL"
        lines.append(f"  {verdict.check:<{WIDTH}}  {mark}  {verdict.detail}")
    if report.warnings:
        lines.append(
            "  warning: the source reads what a strategy should not (the clock, randomness, "
            f"the environment, files): {'; '.join(report.warnings)}"
        )
    outcome = "passed" if report.passed else f"FAILED ({', '.join(report.failed())})"
    lines.append(
        f"verdict: {outcome} in {report.seconds:.1f} s; stored as check {check_id} "
        f"(source {source}); random prefixes' seed {report.seed}"
    )
    print("\n".join(lines))
    return 0 if report.passed else 1


def _candles(args: argparse.Namespace) -> tuple[str, str, pd.DataFrame]:
    from bot.market.candle_files import pair_of, read_candle_file, timeframe_of

    if args.data:
        if args.since or args.until or args.exchange:
            raise UserInputError(
                "--since, --until and --exchange go with stored candles, not --data"
            )
        if not args.data.is_file():
            raise DataError(f"candle file {args.data} does not exist")
        pair = pair_of(args.data, args.pair)
        candles = read_candle_file(args.data)
        return pair, timeframe_of(args.data, args.timeframe, candles), candles
    if not (args.pair and args.timeframe):
        raise UserInputError("give --data FILE, or --pair and --timeframe for stored candles")
    from bot.cli.backtest import stored_candles

    return args.pair, args.timeframe, stored_candles(args, args.pair, args.timeframe)


def _store(
    database: Path,
    strategy: Strategy,
    pair: str,
    timeframe: str,
    candles: pd.DataFrame,
    record: dict[str, Any],
) -> tuple[int, str]:
    """Store ``record`` in ``database``; its row id and the source hash."""
    from bot.cli.receipts import in_database
    from bot.core.clock import SystemClock
    from bot.core.domain import to_ms
    from bot.research.strategy_check import fingerprint
    from storage.strategy_checks import SqliteStrategyCheckRepository

    keys = fingerprint(strategy, pair, timeframe, candles)
    now = to_ms(SystemClock().now())
    row = in_database(
        database,
        lambda db: SqliteStrategyCheckRepository(db).add(now, keys, record),
    )
    return row, keys["source_hash"]

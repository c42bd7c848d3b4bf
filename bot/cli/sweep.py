"""`pairpilot sweep`: a parameter sweep on Dask, stored in SQLite, as a ranked table and a
heatmap of the two parameters that matter most."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.receipts import store_sweep_receipt
from bot.cli.terms_options import add_terms_options, terms_from_args
from bot.core.errors import DataError, UserInputError

if TYPE_CHECKING:  # the parser is built on every command: pandas and Dask load only for sweeps
    from collections.abc import Mapping, Sequence

    from bot.core.domain import SweepRow
    from bot.research.account_terms import ResearchTerms
    from bot.research.sweep import Series, SweepSpec


def add_sweep_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sweep = commands.add_parser("sweep", help="parameter sweep (and walk-forward) on Dask")
    sweep.add_argument(
        "--data",
        type=Path,
        action="append",
        default=[],
        help="candle CSV, repeatable (pair, timeframe from its name)",
    )
    sweep.add_argument(
        "--pair", action="append", default=[], help="with stored candles: a pair, repeatable"
    )
    sweep.add_argument(
        "--timeframe",
        action="append",
        default=[],
        help="with stored candles: a timeframe, repeatable (every pair in each)",
    )
    sweep.add_argument("--since", help="with stored candles: from this UTC date")
    sweep.add_argument("--until", help="with stored candles: up to this UTC date")
    sweep.add_argument("--exchange", help="with stored candles: whose (default binance)")
    sweep.add_argument(
        "--portfolio",
        action="store_true",
        help="with --config: score each set on every configured pair together, the set "
        "applied to the pairs running --strategy",
    )
    sweep.add_argument("--strategy", default="ema_cross")
    sweep.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH:STEP",
        help="values to try, repeatable: a range or a list like 5,8,13",
    )
    sweep.add_argument(
        "--random",
        type=int,
        default=0,
        metavar="N",
        help="try N combinations drawn from the grid (default: all)",
    )
    sweep.add_argument("--objective", default="sharpe", choices=["sharpe", "calmar", "return"])
    sweep.add_argument(
        "--max-drawdown",
        type=float,
        default=1.0,
        help="results deeper than this score nothing (e.g. 0.2)",
    )
    sweep.add_argument(
        "--walk-forward",
        type=int,
        default=0,
        metavar="FOLDS",
        help="rolling folds: optimise in sample, judge out of sample",
    )
    sweep.add_argument("--workers", type=int, default=0, help="LocalCluster workers (all cores)")
    sweep.add_argument(
        "--scheduler",
        help="a Dask scheduler address (default: research."
        "dask_scheduler in the config, else a LocalCluster)",
    )
    sweep.add_argument(
        "--config",
        type=Path,
        help="TOML config: data_dir, research, and the "
        "account simulated, as pairpilot backtest --config",
    )
    add_terms_options(sweep)
    sweep.add_argument("--heatmap", type=Path, help="write the heatmap PNG here")
    sweep.add_argument("--seed", type=int, default=1)
    sweep.set_defaults(handler=sweep_command)


def sweep_command(args: argparse.Namespace) -> int:
    if args.portfolio:
        from bot.cli.portfolio_sweep import portfolio_sweep_command

        return portfolio_sweep_command(args, sweep_spec)
    from bot.app.config import load_settings
    from bot.cli.check_reads import print_check_note
    from bot.research.sweep import parse_space
    from bot.research.sweep_report import heatmap, report
    from bot.research.sweep_tasks import tasks
    from strategies import strategy_registry

    settings = load_settings(args.config, None)  # a sweep needs no keys, live or not
    terms_from_args(args, None)  # a bad override is refused before any candle is read
    space = parse_space(args.strategy, args.param)
    print_check_note(args.config, strategy_registry()[args.strategy])
    series = _all_series(args)
    # The terms `pairpilot backtest` runs each pair on (its capital share), same overrides.
    terms = {pair: terms_from_args(args, pair) for pair in dict.fromkeys(s.pair for s in series)}
    spec = sweep_spec(args, space, terms)
    tasks(spec, series)  # every check before a cluster starts
    address = args.scheduler or settings.research.dask_scheduler
    sweep_id, rows = asyncio.run(_run(settings.database_path, spec, series, address, args.workers))
    receipt = store_sweep_receipt(args, spec, series, (sweep_id, rows))
    print(f"sweep {sweep_id}: {len(rows)} results stored in {settings.database_path}")
    if receipt is not None:
        print(f"receipt {receipt}: pairpilot backtest --rerun {receipt} runs it again")
    print(terms_text(terms))
    print(report(spec, rows, series))
    if args.heatmap:
        png = heatmap(spec, rows)
        if png is None:
            print("no heatmap: it needs two parameters with scored results")
        else:
            args.heatmap.write_bytes(png)
            print(f"heatmap: {args.heatmap}")
    return 0


def sweep_spec(
    args: argparse.Namespace,
    space: Mapping[str, Sequence[int | float]],
    terms: Mapping[str, ResearchTerms],
) -> SweepSpec:
    """The sweep the options ask for, on ``space`` (``parse_space``) under ``terms``."""
    from bot.research.sweep import SweepSpec

    return SweepSpec(
        strategy=args.strategy,
        space=space,
        objective=args.objective,
        max_drawdown=args.max_drawdown,
        random_samples=args.random,
        seed=args.seed,
        folds=args.walk_forward,
        terms=terms,
    )


def terms_text(terms: Mapping[str, ResearchTerms]) -> str:
    """The terms every pair ran on: once when the pairs share them, else pair by pair."""
    stated = {pair: "\n".join(each.statement()) for pair, each in terms.items()}
    if len(set(stated.values())) == 1:
        return next(iter(stated.values()))
    return "\n".join(f"{pair}:\n{text}" for pair, text in stated.items())


def _all_series(args: argparse.Namespace) -> list[Series]:
    """From --data files, or stored candles for every --pair in every --timeframe."""
    stored = args.pair or args.timeframe or args.since or args.until or args.exchange
    if args.data and stored:
        raise UserInputError("give --data files or stored candles (--pair, --timeframe), not both")
    if args.data:
        return [_series(path) for path in args.data]
    if not (args.pair and args.timeframe):
        raise UserInputError("give --data FILE, or --pair and --timeframe for stored candles")
    from bot.cli.backtest import stored_candles
    from bot.research.sweep import Series

    return [
        Series(pair, timeframe, stored_candles(args, pair, timeframe))
        for pair in args.pair
        for timeframe in args.timeframe
    ]


def _series(path: Path) -> Series:
    from bot.market.candle_files import pair_of, read_candle_file, timeframe_of
    from bot.research.sweep import Series

    if not path.is_file():
        raise DataError(f"candle file {path} does not exist")
    candles = read_candle_file(path)
    return Series(pair_of(path, None), timeframe_of(path, None, candles), candles)


async def _run(
    database: Path, spec: SweepSpec, series: list[Series], scheduler: str | None, workers: int
) -> tuple[int, list[SweepRow]]:
    from tqdm import tqdm

    from bot.core.clock import SystemClock
    from bot.research.sweep_runner import sweep_and_store
    from storage.db import open_database
    from storage.sweeps import SqliteSweepRepository

    async with open_database(database) as db:
        with tqdm(unit="task", desc="sweep") as bar:

            async def on_task(done: int, total: int) -> None:
                bar.total = total
                bar.update()

            return await sweep_and_store(
                SqliteSweepRepository(db),
                spec,
                series,
                clock=SystemClock(),
                scheduler=scheduler,
                workers=workers,
                on_task=on_task,
            )

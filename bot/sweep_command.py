"""`pairpilot sweep`: a parameter sweep on Dask, stored in SQLite, as a ranked table and a
heatmap of the two parameters that matter most."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError, DataError, UserInputError

if TYPE_CHECKING:  # the parser is built on every command: pandas and Dask load only for sweeps
    from bot.sweep import Row, Series, SweepSpec

TOP = 10
CONNECT_SECONDS = 5


def add_sweep_command(commands: argparse._SubParsersAction) -> None:  # noqa: SLF001
    sweep = commands.add_parser("sweep", help="parameter sweep (and walk-forward) on Dask")
    sweep.add_argument("--data", type=Path, action="append", required=True,
                       help="candle CSV, repeatable (pair, timeframe from its name)")  # fmt: skip
    sweep.add_argument("--strategy", default="ema_cross")
    sweep.add_argument("--param", action="append", default=[], metavar="NAME=LOW:HIGH:STEP",
                       help="values to try, repeatable: a range or a list like 5,8,13")  # fmt: skip
    sweep.add_argument("--random", type=int, default=0, metavar="N",
                       help="try N combinations drawn from the grid (default: all)")  # fmt: skip
    sweep.add_argument("--objective", default="sharpe", choices=["sharpe", "calmar", "return"])
    sweep.add_argument("--max-drawdown", type=float, default=1.0,
                       help="results deeper than this score nothing (e.g. 0.2)")  # fmt: skip
    sweep.add_argument("--walk-forward", type=int, default=0, metavar="FOLDS",
                       help="rolling folds: optimise in sample, judge out of sample")  # fmt: skip
    sweep.add_argument("--workers", type=int, default=0, help="LocalCluster workers (all cores)")
    sweep.add_argument("--scheduler", help="a Dask scheduler address (default: research."
                       "dask_scheduler in the config, else a LocalCluster)")  # fmt: skip
    sweep.add_argument("--config", type=Path, help="TOML config (data_dir, research)")
    sweep.add_argument("--heatmap", type=Path, help="write the heatmap PNG here")
    sweep.add_argument("--seed", type=int, default=1)
    sweep.set_defaults(handler=sweep_command)


def sweep_command(args: argparse.Namespace) -> int:
    from bot.data_command import settings_for
    from bot.sweep import SweepSpec, parse_space, tasks

    settings = settings_for(args)
    spec = SweepSpec(
        strategy=args.strategy, space=parse_space(args.strategy, args.param),
        objective=args.objective, max_drawdown=args.max_drawdown, random_samples=args.random,
        seed=args.seed, folds=args.walk_forward,
    )  # fmt: skip
    if not 0 < spec.max_drawdown <= 1:
        raise UserInputError("--max-drawdown: a fraction in (0, 1]")
    series = [_series(path) for path in args.data]
    _, work = tasks(spec, series)  # every check before anything is stored
    address = args.scheduler or settings.research.dask_scheduler
    with _client(address, args.workers) as client:
        sweep_id, rows = asyncio.run(_run(settings.database_path, client, spec, series, len(work)))
    print(f"sweep {sweep_id}: {len(rows)} results stored in {settings.database_path}")
    print(report(spec, rows))
    if args.heatmap:
        png = heatmap(spec, rows)
        if png is None:
            print("no heatmap: it needs two parameters with scored results")
        else:
            args.heatmap.write_bytes(png)
            print(f"heatmap: {args.heatmap}")
    return 0


def _series(path: Path) -> Series:
    from bot.candles import pair_of, read_candle_file, timeframe_of
    from bot.sweep import Series

    if not path.is_file():
        raise DataError(f"candle file {path} does not exist")
    candles = read_candle_file(path)
    return Series(pair_of(path, None), timeframe_of(path, None, candles), candles)


@contextmanager
def _client(address: str | None, workers: int) -> Iterator[Any]:
    """A Client on ``address``, or on a new LocalCluster; a clear error when unreachable."""
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # a line per worker otherwise
    if address:
        try:
            client = Client(address, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError) as error:
            raise ConfigError(f"no Dask scheduler at {address}: {error}") from None
        with client:
            yield client
        return
    with (
        LocalCluster(n_workers=workers or None, threads_per_worker=1, processes=True,
                     dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        yield client


async def _run(database: Path, client: object, spec: SweepSpec, series: list[Series],
               task_count: int) -> tuple[int, list[Row]]:  # fmt: skip
    from tqdm import tqdm

    from bot.clock import SystemClock
    from bot.sweep import run_on_dask
    from storage.db import open_database
    from storage.sweeps import SqliteSweepRepository

    clock = SystemClock()
    described = {**dataclasses.asdict(spec), "series": [f"{s.pair} {s.timeframe}" for s in series]}
    async with open_database(database) as db:
        store = SqliteSweepRepository(db)
        sweep_id = await store.create(spec.strategy, described, task_count, clock.now())
        loop = asyncio.get_running_loop()
        with tqdm(total=task_count, unit="task", desc=f"sweep {sweep_id}") as bar:

            def stored(rows: list[Row]) -> None:  # on Dask's thread: store, then count it
                asyncio.run_coroutine_threadsafe(store.add(sweep_id, rows), loop).result()
                bar.update()

            await asyncio.to_thread(run_on_dask, client, spec, series, stored)
        await store.finish(sweep_id, clock.now())
        return sweep_id, await store.rows(sweep_id)


def report(spec: SweepSpec, rows: list[Row]) -> str:
    """The best combinations per series; with walk-forward, in-sample against out-of-sample."""
    from bot.sweep import ranked, walk_forward

    lines = []
    if spec.folds:
        lines.append(f"walk-forward, {spec.objective}: best in sample -> out of sample")
        for fold in walk_forward(rows, spec.folds):
            params = " ".join(f"{k}={v:g}" for k, v in fold.params)
            lines.append(f"  {fold.pair} {fold.timeframe} fold {fold.fold}: {params}  "
                         f"{_number(fold.in_sample)} -> {_number(fold.out_of_sample)}")  # fmt: skip
        return "\n".join(lines)
    for pair, timeframe in sorted({(row.pair, row.timeframe) for row in rows}):
        best = ranked([r for r in rows if (r.pair, r.timeframe) == (pair, timeframe)])[:TOP]
        limit = f" (max drawdown {spec.max_drawdown:.0%})" if spec.max_drawdown < 1 else ""
        lines.append(f"{pair} {timeframe}, by {spec.objective}{limit}")
        lines.append(f"  {'rank':>4}  {spec.objective:>8}  {'return':>8}  {'max dd':>7}  "
                     f"{'trades':>6}  parameters")  # fmt: skip
        for rank, row in enumerate(best, 1):
            params = " ".join(f"{k}={v:g}" for k, v in row.params)
            lines.append(f"  {rank:>4}  {_number(row.score):>8}  "
                         f"{row.metrics['total_return']:>8.2%}  {row.metrics['max_drawdown']:>7.2%}"
                         f"  {row.metrics['trades']:>6}  {params}")  # fmt: skip
    return "\n".join(lines)


def heatmap(spec: SweepSpec, rows: list[Row]) -> bytes | None:
    import pandas as pd

    from bot.sweep import FULL, importance

    full = [row for row in rows if row.segment in (FULL, "is-0")]
    names = importance(full)
    if len(names) < 2:
        return None
    from bot.charts import heatmap_png

    table = pd.DataFrame([dict(row.params, score=row.score) for row in full
                          if row.score is not None])  # fmt: skip
    return heatmap_png(table, names[0], names[1], f"{spec.strategy}: mean {spec.objective}",
                       spec.objective)  # fmt: skip


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"

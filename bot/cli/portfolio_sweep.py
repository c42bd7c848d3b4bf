"""`pairpilot sweep --config FILE --portfolio`: each parameter set of --strategy applied to
every configured pair that runs it and scored on the whole portfolio (``portfolio_sweep``), in
this process, stored as other sweeps are (the series' pair: "portfolio")."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.errors import UserInputError

if TYPE_CHECKING:  # the parser is built on every command: pandas loads only for sweeps
    from collections.abc import Callable, Mapping, Sequence

    from bot.core.domain import SweepRow
    from bot.research.account_terms import ResearchTerms
    from bot.research.portfolio_sweep import PortfolioSweep
    from bot.research.sweep import SweepSpec

    SpecMaker = Callable[
        [argparse.Namespace, Mapping[str, Sequence[int | float]], Mapping[str, ResearchTerms]],
        SweepSpec,
    ]


def portfolio_sweep_command(args: argparse.Namespace, make_spec: SpecMaker) -> int:
    """Refuse what does not go with --portfolio, then sweep, store, and print the ranked table
    and the terms. ``make_spec``: `pairpilot sweep`'s, from the same options."""
    from bot.app.config import load_settings
    from bot.cli.data import parse_time
    from bot.cli.portfolio_backtest import config_candles, portfolio_overrides
    from bot.cli.receipts import store_portfolio_sweep_receipt
    from bot.cli.terms_options import terms_from_args
    from bot.research.account_terms import research_terms
    from bot.research.portfolio_sweep import portfolio_sets, portfolio_sweep
    from bot.research.sweep import PORTFOLIO, parse_space
    from bot.research.sweep_report import report

    _refuse_per_pair_options(args)
    settings = load_settings(args.config, None)  # a sweep needs no keys, live or not
    first = settings.pairs[0].pair if settings.pairs else None
    limits = terms_from_args(args, first).limits  # a bad override is refused before any work
    overrides = portfolio_overrides(args)
    space = parse_space(args.strategy, args.param)
    terms = research_terms(settings, None, overrides, limits=limits)
    spec = make_spec(args, space, {PORTFOLIO: terms})
    portfolio_sets(spec, settings)  # before any candle is read
    window = (
        parse_time(args.since, "--since") if args.since else None,
        parse_time(args.until, "--until") if args.until else None,
    )
    candles = config_candles(args, settings)
    sweep = portfolio_sweep(
        spec, settings, candles, window=window, overrides=overrides, limits=limits
    )  # every check, the first set run, before the database is opened
    sweep_id, rows = asyncio.run(_run(settings.database_path, sweep))
    receipt = store_portfolio_sweep_receipt(args, sweep, candles, (sweep_id, rows))
    shares = {
        e.pair: research_terms(settings, e.pair, overrides).capital_share for e in settings.pairs
    }
    print(f"sweep {sweep_id}: {len(rows)} results stored in {settings.database_path}")
    if receipt is not None:
        print(
            f"receipt {receipt}: pairpilot backtest --rerun {receipt} --config {args.config} "
            "runs it again"
        )
    kept = [pair for pair in shares if pair not in sweep.swept]
    print(
        f"{args.strategy} swept on {', '.join(sweep.swept)}"
        + (f"; {', '.join(kept)} keep their configured parameters" if kept else "")
    )
    if sweep.skipped is not None:
        print(sweep.skipped)
    print("\n".join(terms.statement(shares)))
    print(report(spec, rows))
    return 0


def _refuse_per_pair_options(args: argparse.Namespace) -> None:
    if args.config is None:
        raise UserInputError("--portfolio sweeps the pairs of a config: give --config FILE")
    given = [
        option
        for option, value in (
            ("--data", args.data),
            ("--pair", args.pair),
            ("--timeframe", args.timeframe),
            ("--walk-forward", args.walk_forward),
            ("--capital-share", args.capital_share),
            ("--heatmap", args.heatmap),
        )
        if value
    ]
    if given:
        raise UserInputError(
            f"--portfolio sweeps the config's pairs on their candles: {', '.join(given)} "
            "does not go with it"
        )


async def _run(database: Path, sweep: PortfolioSweep) -> tuple[int, list[SweepRow]]:
    from tqdm import tqdm

    from bot.core.clock import SystemClock
    from bot.research.portfolio_sweep import store_portfolio_sweep
    from storage.db import open_database
    from storage.sweeps import SqliteSweepRepository

    async with open_database(database) as db:
        with tqdm(unit="set", desc="portfolio sweep") as bar:

            async def on_set(done: int, total: int) -> None:
                bar.total = total
                bar.update()

            store = SqliteSweepRepository(db)
            return await store_portfolio_sweep(store, sweep, clock=SystemClock(), on_set=on_set)

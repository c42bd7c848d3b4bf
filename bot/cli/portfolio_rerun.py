"""`pairpilot backtest --rerun ID` of a portfolio receipt: the --config's pairs (the receipt's,
in its order) with the receipt's parameters and terms, each on its candles read again where it
read them; the same table or JSON as the backtest, and whether it matched."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.args import json_text
from bot.cli.portfolio_backtest import portfolio_chart, portfolio_document, table, window_notes
from bot.cli.receipts import series_candles
from bot.core.errors import UserInputError
from bot.research.receipts import PORTFOLIO_SWEEP, Receipt

if TYPE_CHECKING:
    import pandas as pd

    from bot.app.config import Settings


def portfolio_rerun_command(args: argparse.Namespace, database: Path, receipt: Receipt) -> int:
    """Refused, running nothing, naming the pair, when a pair left the config or changed
    strategy or timeframe, or its candles are gone or changed; or when the strategies' source,
    the backtest code or pairpilot's version changed."""
    from bot.app.config import load_settings
    from bot.research.portfolio_rerun import rerun_portfolio
    from bot.research.rerun import window

    if args.config is None:
        raise UserInputError(
            f"receipt {receipt.id} is a portfolio's: give the --config FILE whose pairs it ran"
        )
    settings = load_settings(args.config, None)
    candles: dict[str, pd.DataFrame | None] = {}
    for series in receipt.series:
        read = series_candles(database, series)
        candles[series.pair] = None if read is None else window(series, read)
    if receipt.kind == PORTFOLIO_SWEEP:
        return _sweep_rerun(args, receipt, settings, candles)
    done = rerun_portfolio(receipt, settings, candles)
    if args.chart:
        args.chart.write_bytes(portfolio_chart(done.result))
    if args.json:
        params = {pair["pair"]: pair["params"] for pair in receipt.params["pairs"]}
        document = portfolio_document(done.result, settings, params)
        rerun = {"matched": done.matched, "differences": list(done.differences)}
        print(json_text({"receipt": receipt.id, "rerun": rerun, **document}))
    else:
        frames = {pair: frame for pair, frame in candles.items() if frame is not None}
        print(f"{table(done.result, window_notes(done.result, frames))}\n{done.verdict()}")
    return 0 if done.matched else 1


def _sweep_rerun(
    args: argparse.Namespace,
    receipt: Receipt,
    settings: Settings,
    candles: Mapping[str, pd.DataFrame | None],
) -> int:
    """Every set of a portfolio sweep run again, in this process as the sweep ran them, and
    its ranked table printed as the sweep printed it; nothing is stored."""
    from bot.research.portfolio_rerun import rerun_portfolio_sweep
    from bot.research.sweep_report import report

    if args.chart or args.json:
        raise UserInputError(
            f"receipt {receipt.id} is a portfolio sweep's: its rerun prints the ranked table "
            "(drop --chart, --json)"
        )
    done = rerun_portfolio_sweep(receipt, settings, candles)
    print(f"{report(done.spec, done.rows)}\n{done.verdict()}")
    return 0 if done.matched else 1

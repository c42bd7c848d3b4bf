"""`pairpilot backtest --rerun ID`: a stored receipt run again on its own candles, read where
it read them (its candle file, or the stored candles), and whether it made the same trades."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli.args import json_text
from bot.cli.backtest import result_document, result_table
from bot.cli.receipts import load_receipt, receipt_database, series_candles
from bot.core.errors import UserInputError
from bot.research.receipts import PORTFOLIO, PORTFOLIO_SWEEP, SWEEP, Receipt

# What a rerun takes from its receipt, so the command may not give it.
_FROM_RECEIPT = (
    *("data", "param", "pair", "timeframe", "since", "until", "exchange"),
    *("fee", "slippage", "balance", "risk", "resting_stops"),
)


def rerun_command(args: argparse.Namespace) -> int:
    """`pairpilot backtest --rerun ID`: refused, running nothing, when the candles are gone or
    changed, or the strategy's source or pairpilot's version differ."""
    given = [name for name in _FROM_RECEIPT if getattr(args, name) not in (None, [])]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UserInputError(
            f"--rerun takes the strategy, parameters, terms and candles from its receipt: "
            f"drop {options}"
        )
    from bot.research.rerun import rerun_backtest, rerunnable, window

    database = receipt_database(args)
    receipt = load_receipt(database, args.rerun)
    if receipt.kind in (PORTFOLIO, PORTFOLIO_SWEEP):
        from bot.cli.portfolio_rerun import portfolio_rerun_command

        return portfolio_rerun_command(args, database, receipt)
    if receipt.kind == SWEEP:
        return _sweep_rerun(args, database, receipt)
    rerunnable(receipt)
    series = receipt.only_series
    candles = series_candles(database, series)
    done = rerun_backtest(receipt, None if candles is None else window(series, candles))
    if args.chart:
        from bot.research.report import result_chart

        args.chart.write_bytes(result_chart(done.result))
    if args.json:
        document = result_document(done.result, done.terms)
        rerun = {"matched": done.matched, "differences": list(done.differences)}
        mc = done.robustness
        figures = {} if mc is None else {"monte_carlo": mc.as_dict()}
        print(json_text({"receipt": receipt.id, "rerun": rerun, **document, **figures}))
    else:
        mc_lines = [] if done.robustness is None else ["", *done.robustness.lines()]
        print("\n".join([result_table(done.result, done.terms), *mc_lines, done.verdict()]))
    return 0 if done.matched else 1


def _sweep_rerun(args: argparse.Namespace, database: Path, receipt: Receipt) -> int:
    """A sweep's every set run again in this process, its ranked table printed as the sweep
    printed it, and whether every result is the same; nothing is stored."""
    from bot.research.rerun import window
    from bot.research.sweep_report import report
    from bot.research.sweep_rerun import rerun_sweep, sweep_rerunnable

    sweep_rerunnable(receipt)
    if args.chart or args.json:
        raise UserInputError(
            f"receipt {receipt.id} is a sweep's: its rerun prints the ranked table "
            "(drop --chart, --json)"
        )
    candles = []
    for series in receipt.series:
        read = series_candles(database, series)
        candles.append(None if read is None else window(series, read))
    done = rerun_sweep(receipt, candles)
    print(f"{report(done.spec, done.rows, done.series)}\n{done.verdict()}")
    return 0 if done.matched else 1

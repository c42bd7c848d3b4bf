"""`pairpilot backtest`: argument checks, the run, and its text, JSON and chart output."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from concurrent.futures import Future
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from bot.cli.args import json_text, malformed, write_chart
from bot.cli.check_reads import print_check_note
from bot.cli.progress import stage_bar
from bot.cli.receipts import receipt_line, store_backtest_receipt
from bot.cli.terms_options import terms_from_args
from bot.core.domain import from_ms
from bot.core.errors import DataError, NotFound, UserInputError
from bot.core.key_values import key_values
from bot.core.timeframes import timeframe_seconds
from bot.market.candle_files import pair_of, read_candle_file, timeframe_of, validate_candles
from bot.research.account_terms import ResearchTerms
from bot.research.backtest import BacktestResult, run_backtest, setup_for
from bot.research.kernel_trades import EXIT_REASONS
from bot.research.monte_carlo import resample_count, resampled
from bot.research.report import metric_rows, result_chart
from bot.research.simulation import warm_up
from strategies import Strategy, StrategyConfigError, build_strategy

CURVE_POINTS = 500
TABLE_TRADES = 30  # the text table lists the most recent trades; --json lists them all


def load_strategy(name: str, params: dict[str, Any]) -> Strategy:
    try:
        return build_strategy(name, params)
    except StrategyConfigError as error:
        raise UserInputError(str(error)) from None


def backtest_command(args: argparse.Namespace, early: Future[pd.DataFrame] | None = None) -> int:
    """``early``: the --data file already being read (the CLI starts it before heavy imports)."""
    terms_from_args(args, args.pair)  # a bad override is refused before anything is read
    if args.seed is not None and args.monte_carlo is None:
        raise UserInputError("--seed goes with --monte-carlo N")
    resamples = (
        None if args.monte_carlo is None else resample_count(args.monte_carlo, "--monte-carlo")
    )
    params = key_values(args.param, malformed("--param"))
    strategy = load_strategy(args.strategy or "ema_cross", params)
    warming = warm_up()  # overlaps numba's one-off load with reading the candles
    stages = ["reading candles", "trading", *(["drawing"] if args.chart else []), "writing"]
    with stage_bar(stages) as begin:
        begin("reading candles")
        if args.data:
            pair, timeframe, candles = _from_file(args, early)
        else:
            pair, timeframe, candles = _from_storage(args)
        terms = terms_from_args(args, pair)
        setup = setup_for(pair, timeframe, terms)
        warming.join()
        begin("trading")
        result = run_backtest(candles, strategy, setup)
        robustness = None if resamples is None else resampled(result, resamples, args.seed)
        if args.chart:
            begin("drawing")
            chart = result_chart(result)
        begin("writing")
        if args.chart:
            write_chart(args.chart, chart)
        figures = {} if robustness is None else {"monte_carlo": robustness.as_dict()}
        # only once the run succeeded
        receipt = store_backtest_receipt(args, result, terms, figures.get("monte_carlo"))
        lines = [] if robustness is None else ["", *robustness.lines()]
        output = (
            json_text({"receipt": receipt, **result_document(result, terms), **figures})
            if args.json
            else "\n".join([result_table(result, terms), *lines, receipt_line(receipt)])
        )
    print(output)
    print_check_note(
        args.config, type(strategy), strategy.params
    )  # once it ran: a failure stays one line
    return 0


def _from_file(
    args: argparse.Namespace, early: Future[pd.DataFrame] | None
) -> tuple[str, str, pd.DataFrame]:
    if args.since or args.until or args.exchange:
        raise UserInputError("--since, --until and --exchange go with stored candles, not --data")
    if not args.data.is_file():
        raise DataError(f"candle file {args.data} does not exist")
    pair = pair_of(args.data, args.pair)
    candles = early.result() if early else read_candle_file(args.data)
    timeframe = timeframe_of(args.data, args.timeframe, candles)
    return pair, timeframe, candles


def _from_storage(args: argparse.Namespace) -> tuple[str, str, pd.DataFrame]:
    if not (args.pair and args.timeframe):
        raise UserInputError("give --data FILE, or --pair and --timeframe for stored candles")
    return args.pair, args.timeframe, stored_candles(args, args.pair, args.timeframe)


def stored_candles(args: argparse.Namespace, pair: str, timeframe: str) -> pd.DataFrame:
    """``pair``'s stored ``timeframe`` candles, within ``args.since`` / ``args.until``, from
    the database of ``args.config``; a clear error when there are none."""
    timeframe_seconds(timeframe)
    from bot.cli.data import parse_time, settings_for
    from storage.candles import SqliteCandleRepository
    from storage.db import open_database

    settings = settings_for(args)
    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    exchange = args.exchange or settings.exchange.name
    if not settings.database_path.exists():
        raise NotFound(f"no candles stored yet ({settings.database_path} does not exist)")

    async def read() -> pd.DataFrame:
        async with open_database(settings.database_path) as db:
            return await SqliteCandleRepository(db).frame(exchange, pair, timeframe, since, until)

    candles = asyncio.run(read())
    if candles.empty:
        raise NotFound(
            f"no {exchange} {pair} {timeframe} candles stored in that range; "
            "use pairpilot data download or data import"
        )
    return validate_candles(candles, f"stored {pair}")


def result_document(result: BacktestResult, terms: ResearchTerms) -> dict[str, Any]:
    """The JSON: what ran, the terms it ran on (``terms``: every value used, and which a
    command gave), metrics, trades (ISO-8601 UTC) and a downsampled equity curve. The keys
    "fee" to "stops" repeat some terms: kept for one release for readers of the old form."""
    picks = np.unique(np.linspace(0, len(result.equity) - 1, CURVE_POINTS).astype(int))
    return {
        "backtest": {
            "pair": result.setup.pair,
            "timeframe": result.setup.timeframe,
            "strategy": result.strategy.name,
            "params": result.strategy.params,
            "fee": result.setup.fee_rate,
            "slippage": result.setup.slippage,
            "candles": len(result.equity),
            "ambiguous_exits": result.ambiguous_exits,
            "vetoes": result.vetoes,
            "halted_at": result.halted_at.isoformat() if result.halted_at else None,
            "risk_limits": dataclasses.asdict(result.setup.limits),
            "timezone": result.setup.timezone,
            "resting_stops": result.setup.resting_stops,
            "stops": terms.stops,
            "ambiguous_exit_rule": "a candle that reached both stop and target exits at the stop",
        },
        "terms": terms.as_dict(),
        "metrics": metrics_document(result),
        "trades": trade_rows(result),
        "equity_curve": [
            {"time": time, "equity": equity}
            for time, equity in zip(
                iso_times(result.close_ms[picks]), result.equity[picks].tolist(), strict=True
            )
        ],
    }


def metrics_document(result: BacktestResult) -> dict[str, Any]:
    """The metrics as JSON values; CAGR and Calmar null over a span too short to annualise
    (``annualised`` says so), as the text table does."""
    metrics = result.metrics
    document = {**metrics.as_dict(), "annualised": metrics.annualised}
    if not metrics.annualised:
        document.update(cagr=None, calmar=None)
    return document


def iso_times(milliseconds: npt.NDArray[np.int64]) -> list[str]:
    """ISO-8601 UTC times ("2025-06-23T09:00:00Z") for many epoch milliseconds at once."""
    stamps = np.asarray(milliseconds, dtype="datetime64[ms]").astype("datetime64[s]")
    times: list[str] = np.datetime_as_string(stamps, timezone="UTC").tolist()
    return times


def trade_rows(result: BacktestResult) -> list[dict[str, Any]]:
    """Every closed trade as a JSON object, built column-wise (thousands of trades are common)."""
    table = result.table
    columns = {
        "entry_time": iso_times(table.entry_ms),
        "exit_time": iso_times(table.exit_ms),
        "entry_price": table.entry_price.tolist(),
        "exit_price": table.exit_price.tolist(),
        "amount": table.amount.tolist(),
        "pnl": table.pnl.tolist(),
        "fee": table.fee.tolist(),
        "exit_reason": [EXIT_REASONS[code] for code in table.reason.tolist()],
    }
    return [
        {"pair": table.pair, **dict(zip(columns, row, strict=True))}
        for row in zip(*columns.values(), strict=True)
    ]


def result_table(result: BacktestResult, terms: ResearchTerms) -> str:
    first, last = from_ms(int(result.close_ms[0])), from_ms(int(result.close_ms[-1]))
    params = " ".join(f"{k}={v}" for k, v in result.strategy.params.items())
    lines = [
        f"{result.setup.pair} {result.setup.timeframe} {result.strategy.name} ({params})",
        f"{len(result.equity)} candles, {first:%Y-%m-%d} .. {last:%Y-%m-%d}",
        *terms.statement(),
        "",
        f"{'entry (UTC)':<17} {'exit (UTC)':<17} {'entry':>12} {'exit':>12} {'pnl':>10}  exit by",
    ]
    hidden = max(0, len(result.table) - TABLE_TRADES)
    if hidden:
        lines.append(f"({hidden:,} earlier trades not shown; --json lists them all)")
    lines += [
        f"{t.entry_time:%Y-%m-%d %H:%M} {t.exit_time:%Y-%m-%d %H:%M} {t.entry_price:>12,.2f} "
        f"{t.exit_price:>12,.2f} {t.pnl:>+10,.2f}  {t.exit_reason}"
        for t in result.table.trades(hidden)
    ]
    rows = metric_rows(result)
    return "\n".join([*lines, "", *(f"{name:<27} {value}" for name, value in rows)])

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

from bot.cli.args import json_text, malformed
from bot.cli.progress import stage_bar
from bot.core.domain import RiskLimits, from_ms
from bot.core.errors import DataError, NotFound, UserInputError
from bot.core.key_values import key_values
from bot.core.timeframes import timeframe_seconds
from bot.market.candle_files import pair_of, read_candle_file, timeframe_of, validate_candles
from bot.research.account_terms import AccountTerms
from bot.research.backtest import BacktestResult, run_backtest, setup_for
from bot.research.kernel_trades import EXIT_REASONS
from bot.research.report import metric_rows, result_chart, terms_line
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
    terms, limits = backtest_terms(args)
    strategy = load_strategy(args.strategy, key_values(args.param, malformed("--param")))
    warming = warm_up()  # overlaps numba's one-off load with reading the candles
    stages = ["reading candles", "trading", *(["drawing"] if args.chart else []), "writing"]
    with stage_bar(stages) as begin:
        begin("reading candles")
        if args.data:
            pair, timeframe, candles = _from_file(args, early)
        else:
            pair, timeframe, candles = _from_storage(args)
        setup = setup_for(pair, timeframe, terms, limits)
        warming.join()
        begin("trading")
        result = run_backtest(candles, strategy, setup)
        if args.chart:
            begin("drawing")
            chart = result_chart(result)
        begin("writing")
        output = json_text(result_document(result)) if args.json else result_table(result)
    if args.chart:
        args.chart.write_bytes(chart)
    print(output)
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


def _check_rates(terms: AccountTerms) -> None:
    if not 0 <= terms.fee_rate < 0.05:
        raise UserInputError(f"--fee {terms.fee_rate}: expected a rate from 0 to 0.05, like 0.001")
    if not 0 <= terms.slippage < 0.05:
        raise UserInputError(f"--slippage {terms.slippage}: expected a rate from 0 to 0.05")
    if not terms.balance > 0:
        raise UserInputError(f"--balance {terms.balance}: expected a positive amount")


def backtest_terms(args: argparse.Namespace) -> tuple[AccountTerms, RiskLimits]:
    """The account the run simulates: the config's (``account_terms``, defaults without
    --config) with --balance, --fee, --slippage and --resting-stops on top; and its [risk]
    with --risk KEY=VALUE on top."""
    terms, base = AccountTerms(), {}
    if args.config:
        from bot.app.config import load_settings
        from bot.research.account_terms import account_terms

        settings = load_settings(args.config, None)  # a backtest needs no keys, live or not
        terms, base = account_terms(settings), settings.risk.model_dump()
    given = {
        "balance": args.balance,
        "fee_rate": args.fee,
        "slippage": args.slippage,
        "resting_stops": args.resting_stops,
    }
    terms = dataclasses.replace(terms, **{k: v for k, v in given.items() if v is not None})
    _check_rates(terms)
    if not (args.config or args.risk):
        return terms, RiskLimits()
    from bot.risk.settings import checked_limits

    return terms, checked_limits(base, key_values(args.risk, malformed("--risk")), option="--risk")


def result_document(result: BacktestResult) -> dict[str, Any]:
    """The JSON: what ran, metrics, trades (ISO-8601 UTC) and a downsampled equity curve."""
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
            "stops": result.setup.terms.stops,
            "ambiguous_exit_rule": "a candle that reached both stop and target exits at the stop",
        },
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


def result_table(result: BacktestResult) -> str:
    first, last = from_ms(int(result.close_ms[0])), from_ms(int(result.close_ms[-1]))
    params = " ".join(f"{k}={v}" for k, v in result.strategy.params.items())
    lines = [
        f"{result.setup.pair} {result.setup.timeframe} {result.strategy.name} ({params})",
        f"{len(result.equity)} candles, {first:%Y-%m-%d} .. {last:%Y-%m-%d}",
        terms_line(result),
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

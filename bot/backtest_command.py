"""`pairpilot backtest`: argument checks, the run, and its text, JSON and chart output."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bot.backtest import BacktestResult, BacktestSetup, run_backtest
from bot.candles import check_alignment, describe_file_name, infer_timeframe, read_candle_file
from bot.cli import parse_params, print_json
from bot.errors import UserInputError
from bot.timeframes import timeframe_seconds
from strategies import Strategy, StrategyConfigError, build_strategy


def load_strategy(name: str, params: dict[str, Any]) -> Strategy:
    try:
        return build_strategy(name, params)
    except StrategyConfigError as error:
        raise UserInputError(str(error)) from None


def backtest_command(args: argparse.Namespace) -> int:
    _check_rates(args)
    strategy = load_strategy(args.strategy, parse_params(args.param))
    candles = read_candle_file(args.data)
    named = describe_file_name(args.data)
    pair = args.pair or (named[0] if named else None)
    if pair is None:
        raise UserInputError(f"cannot tell the pair from {args.data.name}; pass --pair BASE/QUOTE")
    timeframe = args.timeframe or (named[1] if named else infer_timeframe(candles))
    timeframe_seconds(timeframe)
    check_alignment(candles, timeframe, str(args.data))
    setup = BacktestSetup(
        pair=pair,
        timeframe=timeframe,
        balance=args.balance,
        fee_rate=args.fee,
        slippage=args.slippage,
    )
    result = asyncio.run(run_backtest(candles, strategy, setup))
    if args.chart:
        from bot.charts import equity_chart_png

        args.chart.write_bytes(
            equity_chart_png(
                result.times, list(result.equity), f"{pair} {timeframe} {strategy.name}: equity"
            )
        )
    if args.json:
        print_json(result_document(result))
    else:
        print(result_table(result))
    return 0


def _check_rates(args: argparse.Namespace) -> None:
    if not 0 <= args.fee < 0.05:
        raise UserInputError(f"--fee {args.fee}: expected a rate from 0 to 0.05, like 0.001")
    if not 0 <= args.slippage < 0.05:
        raise UserInputError(f"--slippage {args.slippage}: expected a rate from 0 to 0.05")
    if not args.balance > 0:
        raise UserInputError(f"--balance {args.balance}: expected a positive amount")


def result_document(result: BacktestResult) -> dict[str, Any]:
    """The JSON schema: metrics, trades (ISO-8601 UTC times), and what was run."""
    return {
        "backtest": {
            "pair": result.setup.pair,
            "timeframe": result.setup.timeframe,
            "strategy": result.strategy,
            "params": result.params,
            "fee": result.setup.fee_rate,
            "slippage": result.setup.slippage,
            "candles": len(result.times),
        },
        "metrics": result.summary.as_dict(),
        "trades": [
            {
                "pair": trade.pair,
                "entry_time": trade.entry_time.isoformat(),
                "exit_time": trade.exit_time.isoformat(),
                "entry_price": trade.entry_price,
                "exit_price": trade.exit_price,
                "amount": trade.amount,
                "pnl": trade.pnl,
                "fee": trade.fee,
            }
            for trade in result.trades
        ],
    }


def result_table(result: BacktestResult) -> str:
    summary = result.summary
    quote = result.setup.pair.split("/")[1]
    lines = [
        f"{result.setup.pair} {result.setup.timeframe} {result.strategy} {result.params} "
        f"on {len(result.times)} candles "
        f"({result.times[0]:%Y-%m-%d} .. {result.times[-1]:%Y-%m-%d})",
        "",
        f"{'entry (UTC)':<17} {'exit (UTC)':<17} {'entry':>12} {'exit':>12} {'pnl':>10}",
    ]
    lines += [
        f"{t.entry_time:%Y-%m-%d %H:%M} {t.exit_time:%Y-%m-%d %H:%M} {t.entry_price:>12,.2f} "
        f"{t.exit_price:>12,.2f} {t.pnl:>+10,.2f}"
        for t in result.trades
    ]
    lines += [
        "",
        f"trades {summary.trades}, won {summary.wins} ({summary.win_rate:.0%})",
        f"return {summary.total_return:+.2%} ({summary.pnl:+,.2f} {quote}), "
        f"max drawdown {summary.max_drawdown:.2%}, fees {summary.fees:,.2f} {quote}",
        f"final equity {summary.end_equity:,.2f} {quote}",
    ]
    return "\n".join(lines)

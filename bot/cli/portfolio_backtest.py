"""`pairpilot backtest --config FILE` without a pair: every configured pair replayed together
(``run_portfolio``), as text, JSON or an equity chart with each pair's contribution."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bot.cli.args import json_text, write_chart
from bot.cli.backtest import CURVE_POINTS, iso_times, stored_candles
from bot.cli.progress import stage_bar
from bot.cli.receipts import receipt_line, store_portfolio_receipt
from bot.cli.terms_options import overrides_from_args, terms_from_args
from bot.core.domain import from_ms
from bot.core.errors import UserInputError
from bot.market.candle_files import read_candle_file
from bot.portfolio.performance import Metrics
from bot.research.account_terms import Overrides
from bot.research.kernel_trades import EXIT_REASONS
from bot.research.portfolio import VETO_REASONS, PortfolioResult, run_portfolio
from bot.research.portfolio_inputs import PortfolioConfig


def portfolio_command(args: argparse.Namespace) -> int:
    """Replay every [[pairs]] entry of ``args.config`` on the candles it names (its replay
    files, else the candles stored in its database, within --since/--until)."""
    from bot.app.config import load_settings
    from bot.cli.data import parse_time

    if args.timeframe:
        raise UserInputError(
            f"--timeframe {args.timeframe}: a portfolio runs each pair on its configured "
            "timeframe ([[pairs]] timeframe); give --pair for one pair on another"
        )
    settings = load_settings(args.config, None)
    first = settings.pairs[0].pair if settings.pairs else None
    terms = terms_from_args(args, first)  # a bad override is refused before anything is read
    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    overrides = portfolio_overrides(args)
    stages = ["reading candles", "trading", *(["drawing"] if args.chart else []), "writing"]
    with stage_bar(stages) as begin:
        begin("reading candles")
        candles = config_candles(args, settings)
        begin("trading")
        result = run_portfolio(
            settings, candles, since=since, until=until, overrides=overrides, limits=terms.limits
        )
        if args.chart:
            begin("drawing")
            chart = portfolio_chart(result)
        begin("writing")
        if args.chart:
            write_chart(args.chart, chart)
        receipt = store_portfolio_receipt(args, settings, result, candles, (since, until))
        output = (
            json_text({"receipt": receipt, **portfolio_document(result, settings)})
            if args.json
            else f"{table(result, window_notes(result, candles))}\n{receipt_line(receipt)}"
        )
    print(output)
    return 0


def portfolio_overrides(args: argparse.Namespace) -> Overrides:
    """The terms options a portfolio run takes: all but --capital-share (each pair's is the
    config's), refused clearly."""
    if args.capital_share is not None:
        raise UserInputError("--capital-share: a portfolio runs each pair's configured share")
    return overrides_from_args(args)


def config_candles(args: argparse.Namespace, settings: Any) -> dict[str, pd.DataFrame]:
    """The config's replay file for each pair where it names one (the demo's data), else the
    pair's stored candles, all of them: --since/--until cut the window in ``run_portfolio``,
    where candles before it warm the indicators up, as with a replay file. Files are read two
    at a time: the CSV parser runs mostly outside the GIL, and a portfolio of 1m years spends
    most of its time reading them."""
    from concurrent.futures import ThreadPoolExecutor

    files = settings.market_data.replay_files
    whole = argparse.Namespace(**{**vars(args), "since": None, "until": None})
    with ThreadPoolExecutor(max_workers=2) as readers:
        reading = {
            entry.pair: readers.submit(read_candle_file, files[entry.pair])
            for entry in settings.pairs
            if entry.pair in files
        }
        return {
            entry.pair: reading[entry.pair].result()
            if entry.pair in reading
            else stored_candles(whole, entry.pair, entry.timeframe)
            for entry in settings.pairs
        }


def portfolio_chart(result: PortfolioResult) -> bytes:
    from bot.charts.render import portfolio_chart_png

    picks = _picks(result)
    times = [from_ms(int(ms)) for ms in result.close_ms[picks]]
    return portfolio_chart_png(
        times,
        result.equity[picks].tolist(),
        {pair.pair: pair.contribution[picks].tolist() for pair in result.pairs},
        f"portfolio of {len(result.pairs)} pairs",
    )


def _picks(result: PortfolioResult) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.unique(np.linspace(0, len(result.equity) - 1, CURVE_POINTS).astype(np.int64))


def _metrics(metrics: Metrics) -> dict[str, Any]:
    document = {**metrics.as_dict(), "annualised": metrics.annualised}
    if not metrics.annualised:
        document.update(cagr=None, calmar=None)
    return document


def portfolio_document(
    result: PortfolioResult,
    config: PortfolioConfig,
    params: Mapping[str, Mapping[str, int | float]] | None = None,
) -> dict[str, Any]:
    """The JSON: the pairs as configured (``params``: each pair's parameters in place of the
    config's, a receipt's), the terms, each pair's and the total metrics, the refused entries
    by reason, every trade with its pair, and a downsampled equity curve with each pair's
    contribution."""
    entries = {entry.pair: entry for entry in config.pairs}
    picks = _picks(result)
    trades = []
    for pair in result.pairs:
        t = pair.table
        trades += [
            {
                "pair": pair.pair,
                "entry_time": entry,
                "exit_time": exit_,
                "entry_price": price_in,
                "exit_price": price_out,
                "amount": amount,
                "pnl": pnl,
                "fee": fee,
                "exit_reason": EXIT_REASONS[reason],
            }
            for entry, exit_, price_in, price_out, amount, pnl, fee, reason in zip(
                iso_times(t.entry_ms),
                iso_times(t.exit_ms),
                t.entry_price.tolist(),
                t.exit_price.tolist(),
                t.amount.tolist(),
                t.pnl.tolist(),
                t.fee.tolist(),
                t.reason.tolist(),
                strict=True,
            )
        ]
    trades.sort(key=lambda trade: (trade["entry_time"], trade["pair"]))
    return {
        "portfolio": {
            "timeframe": result.timeframe,
            "steps": len(result.close_ms),
            "first": iso_times(result.close_ms[:1])[0],
            "last": iso_times(result.close_ms[-1:])[0],
            "halted_at": result.halted_at.isoformat() if result.halted_at else None,
        },
        "terms": result.terms.as_dict(),
        "pairs": [
            {
                "pair": pair.pair,
                "strategy": pair.strategy,
                "timeframe": entries[pair.pair].timeframe,
                "params": dict((params or {}).get(pair.pair, entries[pair.pair].params)),
                "capital_share": pair.terms.capital_share,
                "metrics": _metrics(pair.metrics),
                "refused": pair.vetoes,
                "rejected_funds": pair.rejected_funds,
                "partial_sales": pair.partial_sales,
            }
            for pair in result.pairs
        ],
        "total": _metrics(result.metrics),
        "trades": trades,
        "equity_curve": [
            {"time": time, "equity": equity, "contributions": dict(zip(names, row, strict=True))}
            for time, equity, row in zip(
                iso_times(result.close_ms[picks]),
                result.equity[picks].tolist(),
                np.column_stack([p.contribution[picks] for p in result.pairs]).tolist(),
                strict=True,
            )
            for names in [[p.pair for p in result.pairs]]
        ],
    }


def window_notes(result: PortfolioResult, candles: Mapping[str, pd.DataFrame]) -> list[str]:
    """Where one pair's candles end (or start) the window for all: said, naming it, when
    another pair's candles go on past it."""
    step = int(result.close_ms[1] - result.close_ms[0]) if len(result.close_ms) > 1 else 0
    last = {pair: int(frame["timestamp"].iloc[-1]) for pair, frame in candles.items()}
    first = {pair: int(frame["timestamp"].iloc[0]) for pair, frame in candles.items()}
    notes = []
    ends, starts = min(last, key=last.__getitem__), max(first, key=first.__getitem__)
    if max(last.values()) > last[ends] and result.close_ms[-1] >= last[ends] - step:
        notes.append(
            f"the window ends where {ends}'s candles end ({from_ms(last[ends]):%Y-%m-%d %H:%M}"
            f" UTC); {', '.join(p for p in last if last[p] > last[ends])} go on"
        )
    if min(first.values()) < first[starts] and result.close_ms[0] <= first[starts] + 3 * step:
        notes.append(f"{starts}'s candles start {from_ms(first[starts]):%Y-%m-%d %H:%M} UTC")
    return notes


def table(result: PortfolioResult, notes: Sequence[str] = ()) -> str:
    """Per-pair and total rows, the refused entries by reason, and the terms used."""
    first, last = from_ms(int(result.close_ms[0])), from_ms(int(result.close_ms[-1]))
    refused = " ".join(f"{reason:>9}" for reason in VETO_REASONS)
    lines = [
        f"portfolio of {len(result.pairs)} pairs, {len(result.close_ms)} steps, "
        f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC, {result.timeframe} candles",
        *notes,
        *result.statement(),
        "",
        f"{'pair':<12} {'strategy':<20} {'trades':>6} {'pnl':>11} {'return':>8} {'max dd':>7}"
        f"   refused: {refused} {'funds':>6}",
    ]
    for pair in result.pairs:
        m = pair.metrics
        counts = " ".join(f"{pair.vetoes[reason]:>9}" for reason in VETO_REASONS)
        lines.append(
            f"{pair.pair:<12} {pair.strategy:<20} {m.trades:>6} {m.pnl:>+11,.2f} "
            f"{m.total_return:>+8.2%} {m.max_drawdown:>7.2%}            {counts} "
            f"{pair.rejected_funds:>6}"
        )
    m = result.metrics
    lines.append(
        f"{'total':<12} {'':<20} {m.trades:>6} {m.pnl:>+11,.2f} {m.total_return:>+8.2%} "
        f"{m.max_drawdown:>7.2%}"
    )
    if result.halted_at:
        lines.append(f"drawdown halt: {result.halted_at:%Y-%m-%d %H:%M} UTC")
    lines.append(f"buy and hold (by share): {m.buy_and_hold_return:+.2%}; fees {m.fees:,.2f}")
    return "\n".join(lines)

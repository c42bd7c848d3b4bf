"""A backtest's key figures and chart, shared by the command line and the chat."""

from __future__ import annotations

from typing import Any

from bot.core.domain import from_ms
from bot.portfolio.performance import MIN_ANNUALISED_DAYS, Metrics, profit_factor_text
from bot.research.backtest import BacktestResult


def metric_rows(result: BacktestResult) -> list[tuple[str, str]]:
    """(name, value) for every metric, then the run's notes (vetoes, halt, ambiguous exits)."""
    m = result.metrics
    quote = result.setup.pair.split("/")[1]
    cap = min(result.setup.limits.max_position_fraction, result.setup.limits.position_fraction)
    rows = [
        ("total return", f"{m.total_return:+.2%} ({m.pnl:+,.2f} {quote})"),
        (
            "buy and hold",
            f"{m.buy_and_hold_return:+.2%} (all in from the first open the "
            "strategy could buy at, same fee and slippage)",
        ),
        (
            "strategy exposure",
            f"in the market {m.exposure:.0%} of the time, with at most "
            f"{cap:.0%} of equity per entry",
        ),
        *_annualised_rows(m),
        ("max drawdown", f"{m.max_drawdown:.2%}, longest {m.max_drawdown_hours:,.0f} h"),
        ("trades", _trade_count(result)),
        ("profit factor", profit_factor_text(m)),
        ("expectancy", f"{m.expectancy:+,.2f} {quote} per trade"),
        ("average holding", f"{m.avg_holding_hours:,.1f} h"),
        ("fees paid", f"{m.fees:,.2f} {quote}"),
        ("final equity", f"{m.end_equity:,.2f} {quote} (from {m.start_equity:,.2f})"),
    ]
    if result.vetoes:
        rows.append(("entries refused by risk", f"{result.vetoes}"))
    if result.halted_at:
        rows.append(
            ("drawdown halt", f"from {result.halted_at:%Y-%m-%d %H:%M} UTC, no entries after")
        )
    if result.ambiguous_exits:
        rows.append(
            (
                "stop and target in one candle",
                f"{result.ambiguous_exits} time(s); resolved as the stop",
            )
        )
    return rows


def _annualised_rows(m: Metrics) -> list[tuple[str, str]]:
    """CAGR and the ratios, with Calmar only over a span long enough to annualise."""
    if m.annualised:
        ratios = f"{m.sharpe:.2f} / {m.sortino:.2f} / {m.calmar:.2f}"
        return [("CAGR", f"{m.cagr:+.2%}"), ("Sharpe / Sortino / Calmar", ratios)]
    too_short = (
        f"not annualised: {m.span_days:,.1f} days of data, under the {MIN_ANNUALISED_DAYS} it takes"
    )
    return [("CAGR / Calmar", too_short), ("Sharpe / Sortino", f"{m.sharpe:.2f} / {m.sortino:.2f}")]


def _trade_count(result: BacktestResult) -> str:
    m = result.metrics
    text = f"{m.trades}, won {m.wins} ({m.win_rate:.0%})"
    if result.table.still_open:
        text += "; the last still open, counted at the last close less its exit costs"
    return text


def result_chart(result: BacktestResult) -> bytes:
    from bot.charts.render import backtest_chart_png  # matplotlib only when a chart is asked for

    return backtest_chart_png(**result_chart_arguments(result))


def result_chart_arguments(result: BacktestResult) -> dict[str, Any]:
    """What ``backtest_chart_png`` draws, as plain values (the chat's chart process gets them)."""
    trades = result.table.trades()
    return {
        "title": f"{result.setup.pair} {result.setup.timeframe} {result.strategy.name}",
        "times": [from_ms(int(ms)) for ms in result.close_ms],
        "close": list(result.candles["close"]),
        "stop_line": list(result.stop_line),
        "equity": list(result.equity),
        "entries": [(t.entry_time, t.entry_price) for t in trades],
        "exits": [(t.exit_time, t.exit_price) for t in trades],
    }

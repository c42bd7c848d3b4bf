"""/pnl, /chart, /backtest and /sweep: each run asks bot/chat's ResearchDesk and captions its
chart in Telegram HTML, every value escaped."""

from __future__ import annotations

from html import escape

from bot.chat.portfolio_desk import PortfolioChart
from bot.chat.replies import Photo
from bot.chat.research_desk import BacktestChart, CandleChart, EquityChart
from bot.chat.sweep_desk import SweepView
from handlers.request import Request


def pnl_photo(chart: EquityChart) -> Photo:
    change = chart.last - chart.first
    caption = (
        f"<b>{chart.period}</b>: {chart.first:,.2f} → {chart.last:,.2f} {chart.quote} "
        f"({change:+,.2f}, {change / chart.first:+.2%})\nmax drawdown {chart.worst:.2%}, "
        f"{chart.trades} closed trade(s), {chart.pnl:+,.2f}"
    )
    return Photo(chart.png, caption)


def chart_photo(chart: CandleChart) -> Photo:
    caption = (
        f"<b>{escape(chart.pair)} {chart.timeframe}</b> {escape(chart.strategy)}, last close "
        f"{chart.last}" + (f", stop {chart.stop}" if chart.stop is not None else "")
    )
    return Photo(chart.png, caption)


def backtest_photo(chart: BacktestChart) -> Photo:
    rows = "\n".join(f"{escape(name)}: {escape(value)}" for name, value in chart.metrics)
    mc = chart.robustness
    caption = (
        f"<b>{escape(chart.pair)} {escape(chart.strategy)} {chart.timeframe}</b>, "
        f"{chart.candles:,} candles from {chart.first:%Y-%m-%d}\n"
        + "".join(f"{escape(line)}\n" for line in chart.terms)
        + rows
        + "".join(f"\n{escape(line)}" for line in (mc.lines() if mc else []))
        + (f"\nreceipt {chart.receipt}: /rerun {chart.receipt}" if chart.receipt else "")
        + (f"\n{escape(chart.note)}" if chart.note else "")
    )
    return Photo(chart.png, caption)


def portfolio_photo(chart: PortfolioChart) -> Photo:
    """Each pair's line (its share, trades, PnL, refused entries by reason), then the total."""
    q = escape(chart.quote)
    lines = [
        f"<b>Portfolio of {len(chart.lines)} pairs</b>, {chart.steps:,} steps, "
        f"{chart.first:%Y-%m-%d} .. {chart.last:%Y-%m-%d}",
        *(escape(line) for line in chart.terms),
    ]
    for line in chart.lines:
        refused = ", ".join(f"{reason} {count}" for reason, count in line.refused)
        lines.append(
            f"{escape(line.pair)} {escape(line.strategy)} {line.share:.0%}: {line.trades} "
            f"trade(s), {line.pnl:+,.2f} {q}" + (f"; refused: {escape(refused)}" if refused else "")
        )
    lines.append(
        f"<b>total</b>: {chart.total_return:+.2%} ({chart.pnl:+,.2f} {q}), max drawdown "
        f"{chart.max_drawdown:.2%}, fees {chart.fees:,.2f} {q}"
    )
    if chart.halted_at is not None:
        lines.append(f"drawdown halt from {chart.halted_at:%Y-%m-%d %H:%M}")
    if chart.receipt:
        lines.append(f"receipt {chart.receipt}: /rerun {chart.receipt}")
    return Photo(chart.png, "\n".join(lines))


def sweep_reply(view: SweepView) -> Photo | str:
    """The best combinations, on the heatmap where the space has one; a portfolio sweep's
    after the pairs it swept."""
    lines = [
        f"<b>Sweep {view.sweep_id}</b>: {view.results} results, best by {escape(view.objective)}:",
        *([escape(view.scope)] if view.scope else []),
    ]
    for line in view.best:
        if line.skipped is not None:  # too long for the candles at hand
            lines.append(f"{escape(line.params)}: {escape(line.skipped)}")
            continue
        score = f"- ({escape(line.why)})" if line.score is None else f"{line.score:.2f}"
        lines.append(
            f"{escape(line.params)}: {score}, return "
            f"{line.total_return:+.1%}, max DD {line.max_drawdown:.1%}"
        )
    receipt = [f"receipt {view.receipt}: /compare it with another"] if view.receipt else []
    note = [escape(view.note)] if view.note else []
    caption = "\n".join([*lines, *(escape(line) for line in view.terms), *receipt, *note])
    return caption if view.png is None else Photo(view.png, caption)


async def run_pnl(request: Request) -> Photo:
    period = request.single() if request.arguments else "7d"
    return pnl_photo(await request.cockpit.research.pnl(period))


async def run_chart(request: Request) -> Photo:
    return chart_photo(await request.cockpit.research.chart(request.arguments))


async def run_backtest(request: Request) -> Photo:
    research = request.cockpit.research
    chart = await research.backtest(request.arguments, request.progress)
    if isinstance(chart, PortfolioChart):
        return portfolio_photo(chart)
    return backtest_photo(chart)


async def run_sweep(request: Request) -> Photo | str:
    research = request.cockpit.research
    return sweep_reply(await research.sweep(request.arguments, request.progress))

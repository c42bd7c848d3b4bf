"""PNG charts drawn with matplotlib's Agg canvas (no pyplot, no global figure state)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.metrics import drawdown_series


def equity_chart_png(times: Sequence[datetime], equity: Sequence[float], title: str) -> bytes:
    """Equity on top, drawdown below; large type so it reads on a phone."""
    figure = Figure(figsize=(9, 7), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot(times, equity, color="#1f77b4", linewidth=2)
    top.set_title(title, fontsize=16)
    top.set_ylabel("equity", fontsize=14)
    return _finish(figure, times, equity, bottom, (top, bottom))


def backtest_chart_png(
    *,
    title: str,
    times: Sequence[datetime],
    close: Sequence[float],
    stop_line: Sequence[float],
    equity: Sequence[float],
    entries: Sequence[tuple[datetime, float]],
    exits: Sequence[tuple[datetime, float]],
) -> bytes:
    """Price with entries, exits and the stop line; the equity curve; drawdown underneath."""
    figure = Figure(figsize=(9, 10), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    price, money, drawdown = figure.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
    )
    price.plot(times, close, color="#444444", linewidth=1, label="close")
    price.plot(times, stop_line, color="#ff7f0e", linewidth=1.5, linestyle="--", label="stop")
    if entries:
        price.scatter(
            *zip(*entries, strict=True), marker="^", s=70, color="#2ca02c", label="entry", zorder=3
        )
    if exits:
        price.scatter(
            *zip(*exits, strict=True), marker="v", s=70, color="#d62728", label="exit", zorder=3
        )
    price.set_title(title, fontsize=16)
    price.set_ylabel("price", fontsize=14)
    price.legend(fontsize=11, loc="upper left")
    money.plot(times, equity, color="#1f77b4", linewidth=2)
    money.set_ylabel("equity", fontsize=14)
    return _finish(figure, times, equity, drawdown, (price, money, drawdown))


def _finish(
    figure: Figure,
    times: Sequence[datetime],
    equity: Sequence[float],
    drawdown: Axes,
    every: Sequence[Axes],
) -> bytes:
    """Drawdown in the bottom panel, dates under it, grid and large ticks; the PNG bytes."""
    drawdown.fill_between(times, drawdown_series(equity) * 100, 0, color="#d62728", alpha=0.4)
    drawdown.set_ylabel("drawdown %", fontsize=14)
    locator = mdates.AutoDateLocator()
    drawdown.xaxis.set_major_locator(locator)
    drawdown.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for axes in every:
        axes.grid(alpha=0.3)
        axes.tick_params(labelsize=12)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()

"""PNG charts drawn with matplotlib's Agg canvas (no pyplot, no global figure state)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

import matplotlib.dates as mdates
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
    bottom.fill_between(times, drawdown_series(equity) * 100, 0, color="#d62728", alpha=0.4)
    bottom.set_ylabel("drawdown %", fontsize=14)
    locator = mdates.AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for axes in (top, bottom):
        axes.grid(alpha=0.3)
        axes.tick_params(labelsize=12)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()

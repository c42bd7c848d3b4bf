"""PNG charts drawn with matplotlib's Agg canvas (no pyplot, no global figure state)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.core.domain import from_ms
from bot.portfolio.performance import drawdown_series


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


def candle_chart_png(
    *,
    title: str,
    candles: pd.DataFrame,
    indicators: Mapping[str, Sequence[float]],
    oscillator: bool,
    entries: Sequence[tuple[datetime, float]],
    exits: Sequence[tuple[datetime, float]],
    stop: float | None,
) -> bytes:
    """Candles with the strategy's lines (over the price, or below it for an oscillator), the
    fills, and the stop in force."""
    times = [from_ms(int(ms)) for ms in candles["timestamp"]]
    figure = Figure(figsize=(9, 9 if oscillator else 7), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    if oscillator:
        price, lower = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    else:
        price, lower = figure.subplots(1, 1), None
    width = (times[1] - times[0]) * 0.7 if len(times) > 1 else timedelta(minutes=30)
    rising = (candles["close"] >= candles["open"]).to_numpy()
    colours = np.where(rising, "#2ca02c", "#d62728")
    price.vlines(times, candles["low"], candles["high"], color=colours, linewidth=1)
    bodies = (candles["close"] - candles["open"]).abs().clip(lower=1e-12)
    low_ends = candles[["open", "close"]].min(axis=1)
    price.bar(times, bodies, bottom=low_ends, width=width, color=colours)
    panel = lower if lower is not None else price
    for label, values in indicators.items():
        panel.plot(times, values, linewidth=1.6, label=label)
    if stop is not None:
        price.axhline(stop, color="#ff7f0e", linestyle="--", linewidth=1.5, label="stop")
    for marks, marker, colour, label in (
        (entries, "^", "#2ca02c", "entry"),
        (exits, "v", "#d62728", "exit"),
    ):
        if marks:
            price.scatter(
                *zip(*marks, strict=True),
                marker=marker,
                s=110,
                color=colour,
                edgecolors="black",
                label=label,
                zorder=3,
            )
    price.set_title(title, fontsize=16)
    price.set_ylabel("price", fontsize=14)
    price.legend(fontsize=11, loc="upper left")
    axes = [price] if lower is None else [price, lower]
    if lower is not None:
        lower.legend(fontsize=11, loc="upper left")
    _dates_under(axes[-1])
    return _png(figure, axes)


def _finish(
    figure: Figure,
    times: Sequence[datetime],
    equity: Sequence[float],
    drawdown: Axes,
    every: Sequence[Axes],
) -> bytes:
    """Drawdown in the bottom panel, dates under it, grid and large ticks; the PNG bytes."""
    # matplotlib's stubs say ArrayLike, but its unit converters take datetimes (as plot's do).
    drawdown.fill_between(
        times,  # type: ignore[arg-type]
        drawdown_series(equity) * 100,
        0,
        color="#d62728",
        alpha=0.4,
    )
    drawdown.set_ylabel("drawdown %", fontsize=14)
    _dates_under(drawdown)
    return _png(figure, every)


def _dates_under(axes: Axes) -> None:
    """Dates along the x axis of ``axes``, as short as they can be."""
    locator = mdates.AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _png(figure: Figure, every: Sequence[Axes]) -> bytes:
    """Grid and large ticks on every panel; the PNG bytes."""
    for axes in every:
        axes.grid(alpha=0.3)
        axes.tick_params(labelsize=12)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def heatmap_png(table: pd.DataFrame, x: str, y: str, title: str, label: str) -> bytes:
    """Mean score over two parameters (``table``: a column per parameter and "score")."""
    grid = table.pivot_table(index=y, columns=x, values="score", aggfunc="mean").sort_index()
    figure = Figure(figsize=(9, 7), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    image = axes.imshow(grid.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    axes.set_xticks(range(len(grid.columns)), [f"{v:g}" for v in grid.columns], rotation=45)
    axes.set_yticks(range(len(grid.index)), [f"{v:g}" for v in grid.index])
    axes.set_xlabel(x, fontsize=14)
    axes.set_ylabel(y, fontsize=14)
    axes.set_title(title, fontsize=16)
    figure.colorbar(image, ax=axes).set_label(label, fontsize=14)
    buffer = io.BytesIO()
    axes.tick_params(labelsize=11)
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def portfolio_chart_png(
    times: Sequence[datetime],
    equity: Sequence[float],
    contributions: Mapping[str, Sequence[float]],
    title: str,
) -> bytes:
    """A portfolio's equity on top, each pair's contribution to it (its cash flow plus its
    position at its last close) in the middle, the drawdown underneath."""
    figure = Figure(figsize=(9, 10), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    top, middle, bottom = figure.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
    )
    top.plot(times, equity, color="#1f77b4", linewidth=2)
    top.set_title(title, fontsize=16)
    top.set_ylabel("equity", fontsize=14)
    for pair, contribution in contributions.items():
        middle.plot(times, contribution, linewidth=1.5, label=pair)
    middle.axhline(0, color="#444444", linewidth=1)
    middle.set_ylabel("per pair", fontsize=14)
    middle.legend(fontsize=11, loc="upper left")
    return _finish(figure, times, equity, bottom, (top, middle, bottom))

"""A sweep's results for people: the ranked table (or the walk-forward comparison) and the
heatmap of the two parameters that move the score most."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.core.domain import SweepRow
from bot.portfolio.performance import profit_factor_text
from bot.research.sweep import (
    FULL,
    PER_DAYS,
    PORTFOLIO,
    Series,
    SweepSpec,
    importance,
    ranked,
    unscored,
)
from bot.research.walk_forward import chained, walk_forward

TOP = 10


def report(spec: SweepSpec, rows: list[SweepRow], series: Sequence[Series] = ()) -> str:
    """The best combinations per series; with walk-forward, in-sample against out-of-sample
    and the out-of-sample windows of each of ``series`` chained."""
    if spec.folds:
        return "\n".join(_walk_forward_lines(spec, rows, series))
    lines = []
    for pair, timeframe in sorted({(row.pair, row.timeframe) for row in rows}):
        best = ranked([r for r in rows if (r.pair, r.timeframe) == (pair, timeframe)])[:TOP]
        limit = f" (max drawdown {spec.max_drawdown:.0%})" if spec.max_drawdown < 1 else ""
        lines.append(f"{pair} {timeframe}, by {objective_name(spec)}{limit}")
        lines.append(
            f"  {'rank':>4}  {spec.objective:>8}  {'return':>8}  {'max dd':>7}  "
            f"{'trades':>6}  parameters"
        )
        for rank, row in enumerate(best, 1):
            params = " ".join(f"{k}={v:g}" for k, v in row.params)
            if "skipped" in row.metrics:
                lines.append(f"  {rank:>4}  {'-':>8}  {params}: {row.metrics['skipped']}")
                continue
            reason = unscored(row.metrics, spec.max_drawdown, spec.objective)
            why = "" if row.score is not None else f"  ({reason})"
            lines.append(
                f"  {rank:>4}  {_number(row.score):>8}  "
                f"{row.metrics['total_return']:>8.2%}  {row.metrics['max_drawdown']:>7.2%}"
                f"  {row.metrics['trades']:>6}  {params}{why}"
            )
    return "\n".join(lines)


def objective_name(spec: SweepSpec) -> str:
    return f"return per {PER_DAYS} days" if spec.objective == "return" else spec.objective


def _walk_forward_lines(
    spec: SweepSpec, rows: list[SweepRow], series: Sequence[Series]
) -> list[str]:
    lines = [f"walk-forward, {objective_name(spec)}: best in sample -> out of sample"]
    folds = walk_forward(rows, spec.folds, spec.max_drawdown, spec.objective)
    for fold in folds:
        head = f"  {fold.pair} {fold.timeframe} fold {fold.fold}: "
        if fold.params is None:
            lines.append(head + (fold.why or "no best combination"))
            continue
        params = " ".join(f"{k}={v:g}" for k, v in fold.params)
        outside = _number(fold.out_of_sample) if fold.why is None else fold.why
        lines.append(f"{head}{params}  {_number(fold.in_sample)} -> {outside}")
    for one in series:
        whole = chained(
            spec, one, [f for f in folds if (f.pair, f.timeframe) == (one.pair, one.timeframe)]
        )
        head = f"  {one.pair} {one.timeframe} out of sample, chained"
        if whole is None:
            lines.append(f"{head}: nothing ran")
            continue
        lines.append(
            f"{head} ({whole.span_days:,.0f} days, each window starting where the last "
            f"ended): return {whole.total_return:+.2%}, max drawdown {whole.max_drawdown:.2%}, "
            f"{whole.trades} trades, won {whole.win_rate:.0%}, profit factor "
            f"{profit_factor_text(whole)}"
        )
    return lines


def heatmap(spec: SweepSpec, rows: list[SweepRow]) -> bytes | None:
    arguments = heatmap_arguments(spec, rows)
    if arguments is None:
        return None
    from bot.charts.render import heatmap_png

    return heatmap_png(**arguments)


def heatmap_arguments(spec: SweepSpec, rows: list[SweepRow]) -> dict[str, Any] | None:
    """What ``heatmap_png`` draws (None: fewer than two parameters vary)."""
    import pandas as pd

    full = [row for row in rows if row.segment in (FULL, "is-0")]
    names = importance(full)
    if len(names) < 2:
        return None
    scored = [row for row in full if row.score is not None]
    table = pd.DataFrame([dict(row.params, score=row.score) for row in scored])
    series = {(row.pair, row.timeframe) for row in full}
    window = "" if full[0].segment == FULL else ", first in-sample window"
    over = (
        f"{objective_name(spec)} of the portfolio of its configured pairs"
        if {pair for pair, _ in series} == {PORTFOLIO}
        else f"mean {objective_name(spec)} over {len(series)} series"
    )
    title = (
        f"{spec.strategy}: {over}{window}\n"
        f"{len(scored)} of {len(full)} results scored (the others broke the drawdown "
        "cap, never traded or were skipped)"
    )
    return {"table": table, "x": names[0], "y": names[1], "title": title, "label": spec.objective}


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"

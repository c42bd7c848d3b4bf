"""A sweep's results for people: the ranked table (or the walk-forward comparison) and the
heatmap of the two parameters that move the score most."""

from __future__ import annotations

from typing import Any

from bot.domain import SweepRow
from bot.sweep import FULL, SweepSpec, importance, ranked, walk_forward

TOP = 10


def report(spec: SweepSpec, rows: list[SweepRow]) -> str:
    """The best combinations per series; with walk-forward, in-sample against out-of-sample."""
    lines = []
    if spec.folds:
        lines.append(f"walk-forward, {spec.objective}: best in sample -> out of sample")
        for fold in walk_forward(rows, spec.folds):
            params = " ".join(f"{k}={v:g}" for k, v in fold.params)
            lines.append(f"  {fold.pair} {fold.timeframe} fold {fold.fold}: {params}  "
                         f"{_number(fold.in_sample)} -> {_number(fold.out_of_sample)}")  # fmt: skip
        return "\n".join(lines)
    for pair, timeframe in sorted({(row.pair, row.timeframe) for row in rows}):
        best = ranked([r for r in rows if (r.pair, r.timeframe) == (pair, timeframe)])[:TOP]
        limit = f" (max drawdown {spec.max_drawdown:.0%})" if spec.max_drawdown < 1 else ""
        lines.append(f"{pair} {timeframe}, by {spec.objective}{limit}")
        lines.append(f"  {'rank':>4}  {spec.objective:>8}  {'return':>8}  {'max dd':>7}  "
                     f"{'trades':>6}  parameters")  # fmt: skip
        for rank, row in enumerate(best, 1):
            params = " ".join(f"{k}={v:g}" for k, v in row.params)
            lines.append(f"  {rank:>4}  {_number(row.score):>8}  "
                         f"{row.metrics['total_return']:>8.2%}  {row.metrics['max_drawdown']:>7.2%}"
                         f"  {row.metrics['trades']:>6}  {params}")  # fmt: skip
    return "\n".join(lines)


def heatmap(spec: SweepSpec, rows: list[SweepRow]) -> bytes | None:
    arguments = heatmap_arguments(spec, rows)
    if arguments is None:
        return None
    from bot.charts import heatmap_png

    return heatmap_png(**arguments)


def heatmap_arguments(spec: SweepSpec, rows: list[SweepRow]) -> dict[str, Any] | None:
    """What ``heatmap_png`` draws (None: fewer than two parameters vary)."""
    import pandas as pd

    full = [row for row in rows if row.segment in (FULL, "is-0")]
    names = importance(full)
    if len(names) < 2:
        return None
    table = pd.DataFrame([dict(row.params, score=row.score) for row in full
                          if row.score is not None])  # fmt: skip
    title = f"{spec.strategy}: mean {spec.objective}"
    return {"table": table, "x": names[0], "y": names[1], "title": title,
            "label": spec.objective}  # fmt: skip


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"

"""The receipt of a sweep (bot/research/receipts.py): its spec, terms, the candles of every
series, its best result and ``rows_hash``, the proof a rerun (``sweep_rerun``) made every
row again. A sweep receipt stored before ``rows_hash`` existed does not rerun."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from bot.core.domain import SweepRow
from bot.research.receipts import (
    SWEEP,
    Receipt,
    SeriesPrint,
    code_hash,
    new_id,
    pairpilot_version,
    source_hash,
)
from bot.research.sweep import FULL, Series, SweepSpec, ranked
from strategies import strategy_registry

FIGURES = ("trades", "pnl", "total_return", "win_rate", "max_drawdown", "fees")


def sweep_receipt(
    spec: SweepSpec,
    series: Sequence[Series],
    sources: Sequence[Mapping[str, Any]],
    sweep_id: int,
    rows: Sequence[SweepRow],
    now: datetime,
) -> Receipt:
    """The receipt of sweep ``sweep_id``, stored with its rows; ``sources[i]``: where
    ``series[i]``'s candles were read."""
    spec_values = asdict(spec)
    params = {
        key: spec_values[key]
        for key in ("space", "objective", "max_drawdown", "random_samples", "seed", "folds")
    }
    return Receipt(
        id=new_id(),
        created=now,
        kind=SWEEP,
        version=pairpilot_version(),
        strategy=spec.strategy,
        source_hash=source_hash(strategy_registry()[spec.strategy]),
        params={**params, "sweep": sweep_id},
        terms=sweep_terms(spec),
        series=tuple(
            SeriesPrint.of(s.pair, s.timeframe, source, s.candles)
            for s, source in zip(series, sources, strict=True)
        ),
        result={**best_result(rows), "rows_hash": rows_hash(rows)},
        code=code_hash(SWEEP),
    )


def sweep_terms(spec: SweepSpec) -> dict[str, Any]:
    """The terms the sweep ran on: one ``as_dict`` when its pairs shared them (the only way
    a chat sweep runs), else each pair's under ``by_pair``."""
    stated = {pair: terms.as_dict() for pair, terms in spec.terms.items()}
    shared = list(stated.values())
    return shared[0] if all(each == shared[0] for each in shared) else {"by_pair": stated}


def best_result(rows: Sequence[SweepRow]) -> dict[str, Any]:
    """How many results, and the best's parameters, score and figures (None: none scored).
    With walk-forward, the best out of sample (the first fold's)."""
    segment = FULL if any(row.segment == FULL for row in rows) else "oos-0"
    scored = [row for row in ranked(rows, segment) if row.score is not None]
    summary: dict[str, Any] = {"results": len(rows), "best": None}
    if scored:
        best = scored[0]
        summary["best"] = {
            "params": dict(best.params),
            "score": best.score,
            "series": f"{best.pair} {best.timeframe} {best.segment}",
        }
        summary.update({name: best.metrics.get(name) for name in FIGURES})
    return summary


def rows_hash(rows: Sequence[SweepRow]) -> str:
    """blake2b of a sweep's rows (series, segment, parameters, score, figures as JSON), in
    sorted order: a Dask run and the store give them back in any order."""
    digest = hashlib.blake2b(digest_size=16)
    texts = [
        json.dumps(
            [
                row.pair,
                row.timeframe,
                row.segment,
                [list(p) for p in row.params],
                row.score,
                row.metrics,
            ],
            sort_keys=True,
        )
        for row in rows
    ]
    for text in sorted(texts):
        digest.update(text.encode())
    return digest.hexdigest()

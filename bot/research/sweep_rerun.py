"""A sweep receipt run again: every parameter set on the receipt's candles, in this process
(``run_plain``, the reference a Dask run equals), and whether every row came out the same
(``rows_hash``). A sweep runs as long again as it took on one worker: the rerun says so before
it starts, and a receipt stored before sweeps kept ``rows_hash`` is refused with the command
that runs the sweep anew."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bot.core.domain import SweepRow
from bot.core.errors import DataError, UserInputError
from bot.research.receipts import Receipt, candle_hash, changes, rebuilt_terms, rerun_verdict
from bot.research.sweep import Series, SweepSpec
from bot.research.sweep_receipts import best_result, rows_hash
from bot.research.sweep_tasks import run_plain
from strategies import build_strategy, strategy_registry


@dataclass(frozen=True, slots=True)
class SweepRerun:
    receipt: Receipt
    spec: SweepSpec
    rows: list[SweepRow]  # every set's
    differences: tuple[str, ...]
    series: list[Series]  # what a single-pair sweep ran on (a portfolio's: none)

    @property
    def matched(self) -> bool:
        return not self.differences

    def verdict(self) -> str:
        return rerun_verdict(self.receipt, self.differences, " (every set's result)")


def sweep_rerunnable(receipt: Receipt) -> None:
    """Refuses, before any candle is read, a sweep receipt with no rows hash to prove by."""
    if "rows_hash" not in receipt.result:
        space = " ".join(
            f"--param {name}={','.join(f'{v:g}' for v in values)}"
            for name, values in receipt.params["space"].items()
        )
        raise UserInputError(
            f"receipt {receipt.id} was stored before sweep receipts kept the hash of every "
            f"result, so no rerun can be proven: sweep anew with pairpilot sweep --strategy "
            f"{receipt.strategy} {space}"
        )


def rerun_sweep(receipt: Receipt, candles: Sequence[pd.DataFrame | None]) -> SweepRerun:
    """Run sweep ``receipt`` again on ``candles`` (one per series; None: gone). Refuses with
    DataError, running nothing, naming every change (as a backtest's rerun does)."""
    sweep_rerunnable(receipt)
    strategy = strategy_registry().get(receipt.strategy)
    if strategy is None:
        raise DataError(f"receipt {receipt.id} cannot be rerun: {receipt.strategy} is gone")
    hashes = [None if frame is None else candle_hash(frame) for frame in candles]
    found = changes(receipt, build_strategy(receipt.strategy), hashes)
    if found:
        raise DataError(
            f"receipt {receipt.id} cannot be rerun exactly: {'; '.join(found)}. Nothing was run."
        )
    stated = receipt.terms.get("by_pair")
    pairs = {s.pair for s in receipt.series}
    terms = {
        pair: rebuilt_terms(receipt, stated[pair] if stated else receipt.terms) for pair in pairs
    }
    spec = receipt_spec(receipt, terms, folds=receipt.params["folds"])
    series = [
        Series(s.pair, s.timeframe, frame)
        for s, frame in zip(receipt.series, candles, strict=True)
        if frame is not None
    ]
    rows = run_plain(spec, series)
    now = {**best_result(rows), "rows_hash": rows_hash(rows)}
    return SweepRerun(receipt, spec, rows, differences(receipt.result, now), series)


def differences(
    then: Mapping[str, Any], now: Mapping[str, Any], where: str = ""
) -> tuple[str, ...]:
    """Each value of ``now`` that is not ``then``'s (compared as JSON, NaN included), each
    pair's named."""
    found: list[str] = []
    for key, value in now.items():
        was = then.get(key)
        if isinstance(value, Mapping) and isinstance(was, Mapping):
            found += differences(was, value, where if key == "pairs" else f"{where}{key} ")
        elif json.dumps(value) != json.dumps(was):
            found.append(f"{where}{key} {was} now {value}")
    return tuple(found)


def receipt_spec(receipt: Receipt, terms: Mapping[str, Any], folds: int = 0) -> SweepSpec:
    """The sweep ``receipt`` stored, on ``terms`` (by pair, or a portfolio's one row)."""
    p = receipt.params
    return SweepSpec(
        strategy=receipt.strategy,
        space=p["space"],
        objective=p["objective"],
        max_drawdown=p["max_drawdown"],
        random_samples=p["random_samples"],
        seed=p["seed"],
        folds=folds,
        terms=dict(terms),
    )

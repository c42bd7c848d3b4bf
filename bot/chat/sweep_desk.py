"""/sweep from chat: a parameter sweep on recent candles, one at a time, with progress; the
reply is the heatmap and the best combinations. The cluster is the configured Dask scheduler,
else a LocalCluster started for the sweep and stopped after it."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.charts.worker import ChartWorker
from bot.chat.one_at_a_time import OneAtATime
from bot.chat.replies import Progress
from bot.chat.requests import MAX_BACKTEST_DAYS, normalise_pair, number, whole_number
from bot.chat.term_words import USAGE as TERM_WORDS
from bot.chat.term_words import strategy_words, term_overrides
from bot.core.errors import UserInputError
from bot.core.key_values import key_values
from bot.core.lazy_import import import_off_loop
from bot.core.ports import CandleHistory, Clock, SweepStore
from bot.core.timeframes import timeframe_seconds
from bot.research.account_terms import Overrides, ResearchTerms

if TYPE_CHECKING:
    from bot.chat.receipt_desk import ReceiptDesk
    from bot.core.domain import SweepRow
    from bot.research.sweep import SweepSpec

USAGE = (
    "usage: /sweep PAIR STRATEGY [TIMEFRAME] [DAYS] NAME=LOW:HIGH:STEP ... "
    f"[objective=sharpe|calmar|return] [max_drawdown=0.2] [random=N]\n{TERM_WORDS}"
)
OPTIONS = ("objective", "max_drawdown", "random")
MAX_COMBINATIONS = 5_000
MAX_GRID = 200_000  # combinations a random=N sweep may draw from (the grid is built first)
TOP = 5


@dataclass(frozen=True, slots=True)
class SweepLine:
    """One of the best combinations."""

    params: str  # "name=value ..."
    skipped: str | None  # why it was not run (too long for the candles), else None
    score: float | None  # None: unscored, for ``why``
    why: str
    total_return: float
    max_drawdown: float


@dataclass(frozen=True, slots=True)
class SweepView:
    sweep_id: int
    results: int
    objective: str
    best: tuple[SweepLine, ...]
    png: bytes | None  # the heatmap, where the space has one
    terms: tuple[str, ...]  # the values simulated (ResearchTerms.statement)
    receipt: str | None = None  # its receipt's id, where receipts are kept


class SweepDesk:
    def __init__(
        self,
        *,
        history: CandleHistory,
        store: SweepStore,
        clock: Clock,
        quote: str,
        charts: ChartWorker,
        terms: Callable[[str, Overrides], ResearchTerms],
        scheduler: str | None = None,
        receipts: ReceiptDesk | None = None,
    ) -> None:
        """``terms``: the terms a pair's sweep simulates now (as /backtest)."""
        self._history = history
        self._terms = terms
        self._charts = charts
        self._store = store
        self._clock = clock
        self._quote = quote
        self._scheduler = scheduler
        self._receipts = receipts
        self._sweeps = OneAtATime("sweep")

    async def run(self, arguments: Sequence[str], progress: Progress) -> SweepView:
        """The sweep asked by ``arguments``; ``progress`` hears how far it got (plain text)."""
        await import_off_loop(
            "bot.research.sweep", "bot.research.sweep_runner", "bot.research.sweep_report"
        )
        from bot.research.sweep import Series, SweepSpec, check, parse_space
        from bot.research.sweep_runner import sweep_and_store

        words = [a for a in arguments if "=" not in a]
        if len(words) < 2 or len(words) > 4:
            raise UserInputError(USAGE)
        pair, strategy = normalise_pair(words[0], self._quote), words[1]
        timeframe = words[2] if len(words) > 2 else "1h"
        timeframe_seconds(timeframe)
        days = whole_number("DAYS", words[3], 7, MAX_BACKTEST_DAYS) if len(words) > 3 else 90
        given = key_values([a for a in arguments if "=" in a], _malformed)  # NAME=VALUES, options
        words_left = strategy_words(strategy, given)
        items = [f"{k}={v}" for k, v in words_left.items() if k not in OPTIONS]
        samples = whole_number("random", given.get("random", "0"), 0, MAX_COMBINATIONS)
        size = grid_size(items)
        most = MAX_GRID if samples else MAX_COMBINATIONS
        if size > most:
            wanted = "over 10^15" if size == math.inf else f"{int(size):,}"
            raise UserInputError(
                f"{wanted} combinations; at most {most:,} "
                + (
                    "for random=N from chat"
                    if samples
                    else "from chat (use random=N, or pairpilot sweep)"
                )
            )
        max_drawdown = number("max_drawdown", given.get("max_drawdown", "1"))
        terms = self._terms(pair, term_overrides(given))

        def build() -> tuple[SweepSpec, int]:  # in a thread: building a grid takes time
            space = parse_space(strategy, items)
            spec = SweepSpec(
                strategy,
                space,
                objective=given.get("objective", "sharpe"),
                max_drawdown=max_drawdown,
                random_samples=samples,
                terms={pair: terms},
            )
            return spec, len(check(spec))

        spec, count = await asyncio.to_thread(build)
        if count > MAX_COMBINATIONS:
            raise UserInputError(
                f"{count:,} combinations; at most {MAX_COMBINATIONS:,} from "
                "chat (use random=N, or pairpilot sweep)"
            )
        described = f"{pair} {strategy} {timeframe} {days}d, {count} combinations"
        with self._sweeps.hold(described) as running:
            await progress(f"Sweep {running}: loading candles…")
            candles = await self._history.candles(pair, timeframe, days, self._clock.now())
            await progress(f"Sweep {running}: starting the workers…")
            shown = {"at": -1}

            async def on_task(done: int, total: int) -> None:
                percent = 100 * done // total
                if percent // 10 > shown["at"] // 10 or done == total:  # an edit per 10%
                    shown["at"] = percent
                    await progress(f"Sweep {running}: {percent}%")

            series = Series(pair, timeframe, candles)
            sweep_id, rows = await sweep_and_store(
                self._store,
                spec,
                [series],
                clock=self._clock,
                scheduler=self._scheduler,
                on_task=on_task,
            )
            receipt = None
            if self._receipts is not None:
                done = (sweep_id, rows)
                now = self._clock.now()
                receipt = await self._receipts.keep_sweep(spec, terms, series, done, days, now)
        view = await self._reply(spec, sweep_id, rows, tuple(terms.statement()))
        return dataclasses.replace(view, receipt=receipt)

    async def _reply(
        self, spec: SweepSpec, sweep_id: int, rows: list[SweepRow], terms: tuple[str, ...]
    ) -> SweepView:
        from bot.research.sweep import ranked, unscored
        from bot.research.sweep_report import heatmap_arguments, objective_name

        best = []
        for row in ranked(rows)[:TOP]:
            params = " ".join(f"{k}={v:g}" for k, v in row.params)
            if "skipped" in row.metrics:  # too long for the candles at hand
                best.append(SweepLine(params, row.metrics["skipped"], None, "", 0.0, 0.0))
                continue
            why = unscored(row.metrics, spec.max_drawdown, spec.objective) or "undefined"
            best.append(
                SweepLine(
                    params,
                    None,
                    row.score,
                    why,
                    row.metrics["total_return"],
                    row.metrics["max_drawdown"],
                )
            )
        drawn = heatmap_arguments(spec, rows)
        png = None if drawn is None else await self._charts.draw("heatmap_png", **drawn)
        return SweepView(sweep_id, len(rows), objective_name(spec), tuple(best), png, terms)


def _malformed(item: str) -> str:
    return f"{item!r}: expected NAME=LOW:HIGH:STEP, NAME=A,B,C or an option like random=N"


def grid_size(items: Sequence[str]) -> float:
    """How many combinations NAME=LOW:HIGH:STEP / NAME=A,B,C items make, by arithmetic, before
    anything is built (math.inf past any sane size). A malformed item counts as one value:
    parsing it names the problem."""
    size = 1.0
    for item in items:
        text = item.partition("=")[2]
        if ":" in text:
            try:
                low, high, step = (float(part) for part in text.split(":"))
            except ValueError:
                continue
            if not all(math.isfinite(v) for v in (low, high, step)):
                raise UserInputError(f"{item}: LOW, HIGH and STEP must be finite numbers")
            if not (step > 0 and high >= low):
                continue
            if not math.isfinite((high - low) / step):
                return math.inf
            size *= math.floor((high - low) / step + 1e-9) + 1
        else:
            size *= max(1, len([part for part in text.split(",") if part.strip()]))
        if size > 1e15:
            return math.inf
    return size

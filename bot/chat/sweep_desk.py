"""/sweep from chat: a parameter sweep on recent candles, one at a time, with progress; the
reply is the heatmap and the best combinations. The cluster is the configured Dask scheduler,
else a LocalCluster started for the sweep and stopped after it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.charts.worker import ChartWorker
from bot.chat.one_at_a_time import OneAtATime
from bot.chat.portfolio_sweep_desk import PortfolioSweepDesk
from bot.chat.replies import Progress, in_tenths
from bot.chat.requests import MAX_BACKTEST_DAYS, normalise_pair, whole_number
from bot.chat.sweep_words import SPACE_USAGE, sweep_spec, sweep_words
from bot.chat.term_words import USAGE as TERM_WORDS
from bot.core.errors import UserInputError
from bot.core.lazy_import import import_off_loop
from bot.core.ports import CandleHistory, Clock, SweepStore
from bot.core.timeframes import timeframe_seconds
from bot.research.account_terms import Overrides, ResearchTerms

if TYPE_CHECKING:
    from bot.chat.receipt_desk import ReceiptDesk
    from bot.core.domain import SweepRow
    from bot.research.sweep import SweepSpec

USAGE = (
    f"usage: /sweep PAIR STRATEGY [TIMEFRAME] [DAYS] {SPACE_USAGE}\n"
    "or /sweep portfolio STRATEGY [DAYS] NAME=LOW:HIGH:STEP ... (every configured pair "
    f"running STRATEGY, scored together)\n{TERM_WORDS}"
)
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
    scope: str | None = None  # a portfolio sweep's: the pairs swept, the others, the candles
    note: str | None = None  # its strategy has not passed its check (check_status.check_note)


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
        portfolio: PortfolioSweepDesk | None = None,
    ) -> None:
        """``terms``: the terms a pair's sweep simulates now (as /backtest); ``portfolio``:
        /sweep portfolio's (None: not from this chat)."""
        self._history = history
        self._terms = terms
        self._charts = charts
        self._store = store
        self._clock = clock
        self._quote = quote
        self._scheduler = scheduler
        self._receipts = receipts
        self._portfolio = portfolio
        self._sweeps = OneAtATime("sweep")  # /sweep portfolio's too

    async def run(self, arguments: Sequence[str], progress: Progress) -> SweepView:
        """The sweep asked by ``arguments`` (``portfolio ...``: on every configured pair
        running the strategy, see PortfolioSweepDesk); ``progress`` hears how far it got."""
        if arguments and arguments[0].lower() == "portfolio":
            return await self._portfolio_sweep(arguments[1:], progress)
        await import_off_loop(
            "bot.research.sweep", "bot.research.sweep_runner", "bot.research.sweep_report"
        )
        from bot.research.sweep import Series
        from bot.research.sweep_runner import sweep_and_store

        words = [a for a in arguments if "=" not in a]
        if len(words) < 2 or len(words) > 4:
            raise UserInputError(USAGE)
        pair, strategy = normalise_pair(words[0], self._quote), words[1]
        timeframe = words[2] if len(words) > 2 else "1h"
        timeframe_seconds(timeframe)
        days = whole_number("DAYS", words[3], 7, MAX_BACKTEST_DAYS) if len(words) > 3 else 90
        asked = sweep_words(strategy, [a for a in arguments if "=" in a])
        terms = self._terms(pair, asked.overrides)
        spec, count = await sweep_spec(asked, {pair: terms})
        described = f"{pair} {strategy} {timeframe} {days}d, {count} combinations"
        with self._sweeps.hold(described) as running:
            await progress(f"Sweep {running}: loading candles…")
            candles = await self._history.candles(pair, timeframe, days, self._clock.now())
            await progress(f"Sweep {running}: starting the workers…")
            series = Series(pair, timeframe, candles)
            sweep_id, rows = await sweep_and_store(
                self._store,
                spec,
                [series],
                clock=self._clock,
                scheduler=self._scheduler,
                on_task=in_tenths(progress, f"Sweep {running}"),
            )
            receipt = None
            if self._receipts is not None:
                done = (sweep_id, rows)
                now = self._clock.now()
                receipt = await self._receipts.keep_sweep(spec, series, done, days, now)
        view = await self._reply(spec, sweep_id, rows, tuple(terms.statement()))
        return dataclasses.replace(view, receipt=receipt)

    async def _portfolio_sweep(self, arguments: Sequence[str], progress: Progress) -> SweepView:
        if self._portfolio is None:
            raise UserInputError("portfolio sweeps are not available here")
        await import_off_loop("bot.research.sweep_report")
        done = await self._portfolio.run(arguments, progress, self._sweeps)
        view = await self._reply(done.spec, done.sweep_id, done.rows, done.terms)
        return dataclasses.replace(view, scope=done.scope, receipt=done.receipt)

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

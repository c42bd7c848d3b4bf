"""/backtest portfolio [DAYS]: every configured pair replayed together by the portfolio kernel
(``bot.research.portfolio``) on the chat's recent candles, under the limits the bot trades with
now; the equity chart with each pair's contribution and the figures a caption needs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

import pandas as pd

from bot.charts.worker import ChartWorker
from bot.chat.pair_desk import malformed
from bot.chat.receipt_desk import ReceiptDesk, SweepRerunView
from bot.chat.replies import Progress
from bot.chat.requests import MAX_BACKTEST_DAYS, whole_number
from bot.chat.term_words import is_term, term_overrides
from bot.core.daemon_threads import in_daemon_thread
from bot.core.domain import RiskLimits, from_ms
from bot.core.errors import UserInputError
from bot.core.key_values import key_values
from bot.core.lazy_import import import_off_loop
from bot.core.ports import CandleHistory, Clock
from bot.research.account_terms import Overrides, research_terms
from bot.research.receipts import PORTFOLIO, Receipt

if TYPE_CHECKING:
    from bot.research.portfolio import PortfolioResult
    from bot.research.portfolio_inputs import PortfolioConfig

PORTFOLIO_USAGE = "usage: /backtest portfolio [DAYS] [fee=F] [slippage=F] [balance=N] [risk.KEY=V]"
CHART_POINTS = 800  # points on the chart: enough for a phone, few for the chart worker


@dataclass(frozen=True, slots=True)
class PortfolioLine:
    """One pair's part of a portfolio backtest."""

    pair: str
    strategy: str
    share: float  # its capital share
    trades: int
    pnl: float
    refused: tuple[tuple[str, int], ...]  # entry signals refused, by reason (none: empty)


@dataclass(frozen=True, slots=True)
class PortfolioChart:
    png: bytes
    first: datetime  # the first step's close
    last: datetime
    steps: int
    quote: str
    terms: tuple[str, ...]  # the values simulated (ResearchTerms.statement)
    lines: tuple[PortfolioLine, ...]  # in config order
    total_return: float
    pnl: float
    max_drawdown: float
    fees: float
    halted_at: datetime | None
    receipt: str | None  # its receipt's id, where receipts are kept


@dataclass(frozen=True, slots=True)
class PortfolioRerunChart:
    """/rerun of a portfolio receipt: the chart and caption again, and whether it matched."""

    chart: PortfolioChart
    matched: bool
    verdict: str  # "identical to receipt ID", or what differs


class PortfolioDesk:
    """Runs portfolio backtests for the chat; the caller holds the one-at-a-time slot."""

    def __init__(
        self,
        *,
        config: PortfolioConfig,
        history: CandleHistory,
        charts: ChartWorker,
        clock: Clock,
        quote: str,
        limits: Callable[[], RiskLimits],
        receipts: ReceiptDesk | None = None,
    ) -> None:
        self._config = config
        self._history = history
        self._charts = charts
        self._clock = clock
        self._quote = quote
        self._limits = limits  # as /risk set left them, read when asked
        self._receipts = receipts

    def check(self, arguments: Sequence[str]) -> tuple[int, Overrides]:
        """``[DAYS] [TERM=VALUE ...]`` (after the word ``portfolio``): the days and the terms
        given, refused before any work when malformed or when nothing is configured."""
        words = [a for a in arguments if "=" not in a]
        if len(words) > 1:
            raise UserInputError(PORTFOLIO_USAGE)
        given = key_values([a for a in arguments if "=" in a], malformed)
        strangers = [key for key in given if not is_term(key)]
        if strangers:
            raise UserInputError(
                f"{strangers[0]}=: a portfolio runs each pair's configured parameters; "
                + PORTFOLIO_USAGE
            )
        if not self._config.pairs:
            raise UserInputError("no pairs are configured ([[pairs]] in the config)")
        days = whole_number("DAYS", words[0], 1, MAX_BACKTEST_DAYS) if words else 30
        overrides = term_overrides(given)
        research_terms(self._config, None, overrides, flag="", limits=self._limits())
        return days, overrides

    async def run(self, days: int, overrides: Overrides, progress: Progress) -> PortfolioChart:
        """The configured pairs' last ``days`` of candles, traded together."""
        await import_off_loop("bot.research.portfolio")  # numba: loaded on first use
        from bot.research.portfolio import run_portfolio

        now = self._clock.now()
        candles: dict[str, pd.DataFrame] = {}
        for entry in self._config.pairs:
            await progress(f"Portfolio backtest: loading {entry.pair} candles…")
            candles[entry.pair] = await self._history.candles(
                entry.pair, entry.timeframe, days, now
            )
        total = sum(len(frame) for frame in candles.values())
        await progress(f"Portfolio backtest: trading {total:,} candles of {len(candles)} pairs…")
        result = await in_daemon_thread(
            partial(
                run_portfolio, self._config, candles, overrides=overrides, limits=self._limits()
            )
        )
        receipt = None
        if self._receipts is not None:
            receipt = await self._receipts.keep_portfolio(result, self._config, candles, days, now)
        await progress("Portfolio backtest: drawing…")
        return await self._chart(result, receipt)

    async def rerun(
        self, receipt: Receipt, progress: Progress
    ) -> PortfolioRerunChart | SweepRerunView:
        """A portfolio receipt (a backtest's or a sweep's) run again on its candles as this
        chat reads them, the configured pairs with the receipt's parameters and terms;
        refused, running nothing, naming the pair and what changed."""
        if self._receipts is None:
            raise UserInputError("receipts are not available here")
        await import_off_loop("bot.research.portfolio_rerun")  # numba: loaded on first use
        from bot.research.portfolio_rerun import rerun_portfolio, rerun_portfolio_sweep

        candles = await self._receipts.frames(receipt, progress)
        if receipt.kind != PORTFOLIO:  # a portfolio sweep's
            from bot.research.sweep_report import report

            await progress(f"Rerun of receipt {receipt.id}: every set of the sweep…")
            swept = await in_daemon_thread(
                partial(rerun_portfolio_sweep, receipt, self._config, candles)
            )
            return SweepRerunView(swept.matched, swept.verdict(), report(swept.spec, swept.rows))
        await progress(f"Rerun of receipt {receipt.id}: trading…")
        done = await in_daemon_thread(partial(rerun_portfolio, receipt, self._config, candles))
        await progress(f"Rerun of receipt {receipt.id}: drawing…")
        chart = await self._chart(done.result, receipt.id)
        return PortfolioRerunChart(chart, done.matched, done.verdict())

    async def _chart(self, result: PortfolioResult, receipt: str | None) -> PortfolioChart:
        step = max(1, len(result.equity) // CHART_POINTS)
        picks = slice(None, None, step)
        png = await self._charts.draw(
            "portfolio_chart_png",
            times=[from_ms(int(ms)) for ms in result.close_ms[picks]],
            equity=result.equity[picks].tolist(),
            contributions={p.pair: p.contribution[picks].tolist() for p in result.pairs},
            title=f"Portfolio of {len(result.pairs)} pairs",
        )
        m = result.metrics
        return PortfolioChart(
            png,
            from_ms(int(result.close_ms[0])),
            from_ms(int(result.close_ms[-1])),
            len(result.close_ms),
            self._quote,
            tuple(result.statement()),
            tuple(
                PortfolioLine(
                    p.pair,
                    p.strategy,
                    p.terms.capital_share,
                    p.metrics.trades,
                    p.metrics.pnl,
                    tuple((reason, count) for reason, count in p.vetoes.items() if count),
                )
                for p in result.pairs
            ),
            m.total_return,
            m.pnl,
            m.max_drawdown,
            m.fees,
            result.halted_at,
            receipt,
        )

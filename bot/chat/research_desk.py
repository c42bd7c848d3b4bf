"""The chat's charts and research: /pnl, /chart, the daily report, /backtest, /rerun and
/sweep (/compare and the receipts through ReceiptDesk).

Slow work runs off the loop, one backtest at a time; each returns its chart with the figures
a caption needs, as values (the daily report's caption is plain text: it is pushed as an alert).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from bot.charts.worker import ChartWorker
from bot.chat.chart_strategy import chart_lines, chart_strategy
from bot.chat.one_at_a_time import OneAtATime
from bot.chat.overview import closed_trades
from bot.chat.pair_desk import malformed
from bot.chat.portfolio_desk import PortfolioChart, PortfolioDesk, PortfolioRerunChart
from bot.chat.receipt_desk import PORTFOLIOS, CompareView, ReceiptDesk, SweepRerunView
from bot.chat.replies import Photo, Progress
from bot.chat.requests import MAX_BACKTEST_DAYS, normalise_pair, whole_number
from bot.chat.sweep_desk import SweepDesk, SweepView
from bot.chat.term_words import USAGE as TERM_WORDS
from bot.chat.term_words import strategy_words, term_overrides
from bot.chat.venue import Venue
from bot.core.daemon_threads import in_daemon_thread
from bot.core.domain import Side, from_ms
from bot.core.errors import UserInputError
from bot.core.key_values import key_values
from bot.core.lazy_import import import_off_loop
from bot.core.ports import CandleHistory, Clock, EquityHistory, FillHistory
from bot.core.timeframes import timeframe_seconds
from bot.research.check_status import StrategyChecks, stored_note
from bot.research.monte_carlo import MonteCarlo, resample_count, resampled
from bot.research.receipts import SWEEP
from bot.trading.engine import Engine
from bot.trading.service import TradingService
from strategies import Strategy, StrategyConfigError, build_strategy, strategy_registry

if TYPE_CHECKING:
    from bot.research.account_terms import ResearchTerms
    from bot.research.backtest import BacktestResult

PERIODS = {"1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30), "all": None}
CHART_CANDLES = 120  # candles on a /chart: readable on a phone
BACKTEST_USAGE = (
    f"usage: /backtest PAIR STRATEGY [TIMEFRAME] [DAYS] [key=value ...] [mc=N]\n{TERM_WORDS}"
)
RERUN_USAGE = "usage: /rerun ID (each backtest and sweep reply names its receipt)"


@dataclass(frozen=True, slots=True)
class EquityChart:
    """/pnl: the equity curve over ``period`` and its figures."""

    png: bytes
    period: str
    first: float
    last: float
    quote: str
    worst: float  # the deepest drawdown, a fraction
    trades: int  # closed in the period
    pnl: float  # theirs


@dataclass(frozen=True, slots=True)
class CandleChart:
    """/chart: a running pair's candles."""

    png: bytes
    pair: str
    timeframe: str
    strategy: str
    last: str  # the last close, as the venue quotes it
    stop: str | None  # the stop in force


@dataclass(frozen=True, slots=True)
class BacktestChart:
    png: bytes
    pair: str
    strategy: str
    timeframe: str
    candles: int
    first: datetime  # the first candle's close
    terms: tuple[str, ...]  # the values simulated (ResearchTerms.statement)
    metrics: tuple[tuple[str, str], ...]  # name, value
    receipt: str | None = None  # its receipt's id, where receipts are kept
    robustness: MonteCarlo | None = None  # Monte Carlo of its trades, when asked (mc=N)
    note: str | None = None  # its strategy has not passed its check (check_status.check_note)


@dataclass(frozen=True, slots=True)
class RerunChart:
    """/rerun: the backtest's chart and caption again, and whether it matched its receipt."""

    chart: BacktestChart
    matched: bool
    verdict: str  # "identical to receipt ID", or what differs


class ResearchDesk:
    def __init__(
        self,
        *,
        venue: Venue,
        service: TradingService,
        engine: Engine,
        fills: FillHistory,
        equity: EquityHistory,
        history: CandleHistory,
        charts: ChartWorker,
        clock: Clock,
        sweeps: SweepDesk | None = None,
        receipts: ReceiptDesk | None = None,
        portfolio: PortfolioDesk | None = None,
        backtests: OneAtATime | None = None,
        checks: StrategyChecks | None = None,
    ) -> None:
        """``backtests``: the gate its backtests hold (/drift's too, where it is shared);
        ``checks``: the stored strategy checks, for the note on a strategy not passed."""
        self._venue = venue
        self._service = service
        self._engine = engine
        self._fills = fills
        self._equity = equity
        self._history = history
        self._checks = checks
        self._charts = charts
        self._clock = clock
        self._sweeps = sweeps
        self._receipts = receipts
        self._portfolio = portfolio
        self._backtests = backtests or OneAtATime("backtest")

    async def pnl(self, period: str) -> EquityChart:
        """The equity curve with its drawdown over ``period`` (1d, 7d, 30d or all)."""
        if period not in PERIODS:
            raise UserInputError(f"period {period!r}: choose 1d, 7d, 30d or all")

        span = PERIODS[period]
        now = self._clock.now()
        snapshots = await self._equity.between(now - span if span else None, now)
        if len(snapshots) < 2:
            raise UserInputError(f"not enough equity recorded for {period} yet; try later")
        times = [s.time for s in snapshots]
        equity = [s.equity for s in snapshots]
        png = await self._charts.draw(
            "equity_chart_png", times=times, equity=equity, title=f"Equity, {period}"
        )
        peak, worst = equity[0], 0.0
        for value in equity:
            peak = max(peak, value)
            worst = max(worst, 1 - value / peak)
        trades = [
            t
            for t in await closed_trades(self._engine, self._service, self._fills)
            if t.exit_time >= times[0]
        ]
        return EquityChart(
            png,
            period,
            equity[0],
            equity[-1],
            self._venue.quote,
            worst,
            len(trades),
            sum(t.pnl for t in trades),
        )

    async def chart(self, arguments: Sequence[str]) -> CandleChart:
        """PAIR [TIMEFRAME]: the running pair's candles, its strategy's lines, fills, stop."""
        if not 1 <= len(arguments) <= 2:
            raise UserInputError("usage: /chart PAIR [TIMEFRAME]")

        pair = normalise_pair(arguments[0], self._venue.quote)
        run = self._service.run_for(pair)
        if run is None:
            raise UserInputError(
                f"{pair} is not running; /backtest {pair} STRATEGY charts any pair"
            )
        timeframe = arguments[1] if len(arguments) > 1 else run.timeframe
        step = timeframe_seconds(timeframe)
        seconds = self._service.strategy_timeout
        strategy, history = await chart_strategy(run, seconds)
        days = max(1, -(-(CHART_CANDLES + history) * step // 86_400))
        candles = await self._history.candles(pair, timeframe, days, self._clock.now())
        drawn = await chart_lines(run, strategy, candles, CHART_CANDLES, seconds)
        shown = candles.iloc[-CHART_CANDLES:]
        start = from_ms(int(shown["timestamp"].iloc[0]))
        fills = [f for f in await self._fills.all(since=start) if f.pair == pair]
        stop = await self._engine.stop_in_force(run, drawn.policy)
        png = await self._charts.draw(
            "candle_chart_png",
            title=f"{pair} {timeframe} {run.strategy}",
            candles=shown,
            indicators=drawn.lines,
            oscillator=drawn.oscillator,
            entries=[(f.time, f.price) for f in fills if f.side is Side.BUY],
            exits=[(f.time, f.price) for f in fills if f.side is Side.SELL],
            stop=stop,
        )
        last = float(shown["close"].iloc[-1])
        price = self._venue.price
        return CandleChart(
            png,
            pair,
            timeframe,
            run.strategy,
            price(pair, last),
            price(pair, stop) if stop else None,
        )

    async def daily_report(self) -> Photo:
        """The last 24 hours: equity chart and the day's numbers (it doubles as a heartbeat).
        The caption is plain text: it is pushed through the alerts outbox."""
        now = self._clock.now()
        snapshots = await self._equity.between(now - timedelta(days=1), now)
        equity = self._engine.portfolio.equity(self._service.prices)
        times = [s.time for s in snapshots] or [now]
        values = [s.equity for s in snapshots] or [equity]
        if len(times) == 1:  # a quiet day: a flat line still shows the bot is alive
            times, values = [now - timedelta(days=1), now], [values[0], equity]
        png = await self._charts.draw(
            "equity_chart_png", times=times, equity=values, title=f"Equity, {now:%Y-%m-%d}"
        )
        trades = [
            t
            for t in await closed_trades(self._engine, self._service, self._fills)
            if t.exit_time >= times[0]
        ]
        halt = await self._engine.guard.halted()
        prices = self._service.prices
        dust = [
            p
            for p in self._engine.portfolio.positions()
            if await self._engine.is_dust(p, prices.get(p.pair, p.average_price))
        ]
        caption = (
            f"Daily report {now:%Y-%m-%d %H:%M}: equity {equity:,.2f} {self._venue.quote} "
            f"({equity - values[0]:+,.2f} in 24 h), {len(trades)} trade(s) closed "
            f"({sum(t.pnl for t in trades):+,.2f}), "
            f"{len(self._engine.portfolio.positions()) - len(dust)} open position(s)"
            + (f" (and dust in {len(dust)} pair(s))" if dust else "")
            + f", {len(self._service.runs())} pair(s) running"
            + (f". HALTED: {halt['reason']}" if halt else ".")
        )
        return Photo(png, caption)

    async def backtest(
        self, arguments: Sequence[str], progress: Progress
    ) -> BacktestChart | PortfolioChart:
        """PAIR STRATEGY [TIMEFRAME] [DAYS] [key=value ...], or ``portfolio [DAYS]`` for every
        configured pair together: one at a time, off the loop; ``progress`` hears how far it
        got (plain text)."""
        if arguments and arguments[0].lower() == "portfolio":
            return await self._portfolio_backtest(arguments[1:], progress)
        words = [a for a in arguments if "=" not in a]
        if len(words) < 2:
            raise UserInputError(BACKTEST_USAGE)
        pair = normalise_pair(words[0], self._venue.quote)
        timeframe = words[2] if len(words) > 2 else "1h"
        days = whole_number("DAYS", words[3], 1, MAX_BACKTEST_DAYS) if len(words) > 3 else 30
        if len(words) > 4:
            raise UserInputError(f"unexpected {words[4]!r}; parameters go as key=value")
        try:
            given = key_values([a for a in arguments if "=" in a], malformed)
            resamples = resample_count(given.pop("mc"), "mc=") if "mc" in given else None
            strategy = build_strategy(words[1], strategy_words(words[1], given))
        except StrategyConfigError as error:
            raise UserInputError(str(error)) from None
        timeframe_seconds(timeframe)  # a clear error for a bad timeframe
        terms = self._venue.research_terms(pair, term_overrides(given))  # before any work
        with self._backtests.hold(f"{pair} {strategy.name} {timeframe} {days}d") as running:
            # held before the first await, so backtests start in the order they were asked
            await progress(f"Backtest {running}: loading candles…")
            await import_off_loop("bot.research.backtest")  # numba: loaded on first use
            from bot.research.backtest import run_backtest, setup_for

            now = self._clock.now()
            candles = await self._history.candles(pair, timeframe, days, now)
            await progress(f"Backtest {running}: trading {len(candles):,} candles…")
            setup = setup_for(pair, timeframe, terms)
            result = await in_daemon_thread(partial(run_backtest, candles, strategy, setup))
            robustness = (  # before the receipt: a refused run keeps none
                None if resamples is None else await asyncio.to_thread(resampled, result, resamples)
            )
            figures = None if robustness is None else robustness.as_dict()
            receipt = (
                await self._receipts.keep(result, terms, days, now, figures)
                if self._receipts
                else None
            )
            await progress(f"Backtest {running}: drawing…")
            chart = await self._chart(result, terms, receipt)
            note = await self._note(type(strategy), strategy.params)
            return replace(chart, robustness=robustness, note=note)

    async def rerun(
        self, arguments: Sequence[str], progress: Progress
    ) -> RerunChart | PortfolioRerunChart | SweepRerunView:
        """ID: a backtest's receipt (a portfolio's, a sweep's) run again off the loop, on its
        candles as this chat reads them; refused, running nothing, when they (or the strategy,
        the backtest code or pairpilot) changed."""
        if self._receipts is None:
            raise UserInputError("receipts are not available here")
        if len(arguments) != 1:
            raise UserInputError(RERUN_USAGE)
        receipt = await self._receipts.receipt(arguments[0])
        if receipt.kind in PORTFOLIOS:
            if self._portfolio is None:
                raise UserInputError("portfolio backtests are not available here")
            with self._backtests.hold(f"rerun of receipt {receipt.id}"):
                return await self._portfolio.rerun(receipt, progress)
        if receipt.kind == SWEEP:
            with self._backtests.hold(f"rerun of receipt {receipt.id}"):
                return await self._receipts.rerun_sweep(receipt, progress)
        await import_off_loop("bot.research.rerun")  # numba: loaded on first use
        from bot.research.rerun import rerun_backtest, rerunnable, window

        rerunnable(receipt)
        with self._backtests.hold(f"rerun of receipt {receipt.id}"):
            await progress(f"Rerun of receipt {receipt.id}: loading candles…")
            series = receipt.only_series
            candles = await self._receipts.candles(receipt, series)
            await progress(f"Rerun of receipt {receipt.id}: trading…")
            span = None if candles is None else window(series, candles)
            done = await in_daemon_thread(partial(rerun_backtest, receipt, span))
            await progress(f"Rerun of receipt {receipt.id}: drawing…")
            chart = await self._chart(done.result, done.terms, receipt.id)
        return RerunChart(replace(chart, robustness=done.robustness), done.matched, done.verdict())

    async def compare(self, arguments: Sequence[str]) -> CompareView:
        """ID ID: two receipts side by side."""
        if self._receipts is None:
            raise UserInputError("receipts are not available here")
        return await self._receipts.compare(arguments)

    async def _chart(
        self, result: BacktestResult, terms: ResearchTerms, receipt: str | None
    ) -> BacktestChart:
        from bot.research.report import metric_rows, result_chart_arguments

        drawn = await asyncio.to_thread(result_chart_arguments, result)
        png = await self._charts.draw("backtest_chart_png", **drawn)
        return BacktestChart(
            png,
            result.setup.pair,
            result.strategy.name,
            result.setup.timeframe,
            len(result.candles),
            from_ms(int(result.close_ms[0])),
            tuple(terms.statement()),
            tuple(metric_rows(result)[:9]),
            receipt,
        )

    async def _portfolio_backtest(
        self, arguments: Sequence[str], progress: Progress
    ) -> PortfolioChart:
        if self._portfolio is None:
            raise UserInputError("portfolio backtests are not available here")
        days, overrides = self._portfolio.check(arguments)
        with self._backtests.hold(f"portfolio {days}d"):
            return await self._portfolio.run(days, overrides, progress)

    async def sweep(self, arguments: Sequence[str], progress: Progress) -> SweepView:
        """PAIR STRATEGY [TIMEFRAME] [DAYS] NAME=LOW:HIGH:STEP ...: see bot.chat.sweep_desk."""
        if self._sweeps is None:
            raise UserInputError("sweeps are not available here")
        view = await self._sweeps.run(arguments, progress)
        words = [a for a in arguments if "=" not in a]  # PAIR (or portfolio) STRATEGY ...
        registry = strategy_registry()
        if len(words) > 1 and words[1] in registry:
            view = replace(view, note=await self._note(registry[words[1]]))
        return view

    async def _note(
        self, strategy: type[Strategy], params: Mapping[str, Any] | None = None
    ) -> str | None:
        """The line a research run says when ``strategy`` (at ``params``; None: any, for a
        sweep) has not passed its check."""
        return None if self._checks is None else await stored_note(self._checks, strategy, params)

"""/drift and /promote: each live pair against its paper twin and a backtest of the same window.

The backtest replays the pair's candles (the venue's, as /backtest loads them) over the
monitor's window with the terms a /backtest of the pair simulates now (``research_terms``),
trading from the candle the twin first acted on, after the strategy's warm-up before it. Its
trades are matched to the live and twin ones by the candle their entry was decided on, as the
monitor matches those (``bot/trading/drift.py``). The backtest sizes its trades its own way
(the kernel does not share capital between pairs yet): compare its prices and returns. Its
last trade may still be open: it exits at the next candle's open, which a live exit at the
last close has and the candles do not yet.

That backtest is research like /backtest: it holds the same gate (one at a time: a /backtest
asked while it runs gets the gate's usual answer, and a /drift while a backtest runs shows the
pair without its test column, saying why), and reads its candles as /backtest does (the
chat's ``CandleHistory``: the candle store, topped up from the venue).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from bot.chat.one_at_a_time import OneAtATime
from bot.chat.requests import normalise_pair
from bot.chat.venue import Venue
from bot.core.daemon_threads import in_daemon_thread
from bot.core.domain import PairRun, Trade, to_ms
from bot.core.errors import BotError, UserInputError
from bot.core.lazy_import import import_off_loop
from bot.core.ports import CandleHistory, Clock
from bot.core.timeframes import timeframe_seconds
from bot.trading.drift import Drift, entry_candle, not_demoted
from bot.trading.service import TradingService
from bot.trading.twin import PaperTwin
from strategies import build_strategy

DAY_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class DriftRow:
    """One entry candle: the trade live, the twin and the backtest made on it (or None)."""

    candle: datetime
    live: Trade | None
    twin: Trade | None
    backtest: Trade | None


@dataclass(frozen=True, slots=True)
class PairDrift:
    pair: str
    since: datetime
    rows: tuple[DriftRow, ...]
    live_pnl: float  # of the trades measured (before a demotion), in the quote
    twin_pnl: float
    gap: float  # live PnL less the twin's
    relative: float  # of the trades' cost
    threshold: float
    first_apart: datetime | None  # the entry candle of the first trade that differs
    one_sided: int  # trades only one side made: shown, not measured
    demoted: bool
    backtest_problem: str | None  # why there is no backtest column (None: there is)


@dataclass(frozen=True, slots=True)
class DriftView:
    quote: str
    pairs: tuple[PairDrift, ...]


class DriftDesk:
    def __init__(
        self,
        *,
        venue: Venue,
        service: TradingService,
        history: CandleHistory,
        backtests: OneAtATime,
        clock: Clock,
    ) -> None:
        """``history`` and ``backtests``: /backtest's candles and its one-at-a-time gate."""
        self._venue = venue
        self._service = service
        self._history = history
        self._backtests = backtests
        self._clock = clock

    def _twin(self) -> PaperTwin:
        twin = self._service.twin
        if twin is None:
            raise UserInputError(
                "no paper twin here: the drift monitor runs in live mode ([drift] enabled)"
            )
        return twin

    async def drift(self, arguments: Sequence[str]) -> DriftView:
        """[PAIR]: that live pair, or every one."""
        twin = self._twin()
        if len(arguments) > 1:
            raise UserInputError("usage: /drift [PAIR]")
        runs = [run for run in self._service.runs() if run.pair in twin.monitor.watched()]
        if arguments:
            pair = normalise_pair(arguments[0], self._venue.quote)
            runs = [run for run in runs if run.pair == pair]
            if not runs:
                raise UserInputError(f"{pair} has no paper twin yet: it is not trading live")
        pairs = [await self._pair(twin, run) for run in runs]
        return DriftView(self._venue.quote, tuple(pairs))

    async def _pair(self, twin: PaperTwin, run: PairRun) -> PairDrift:
        drift = await twin.monitor.drift(run.pair, run.timeframe)
        threshold = twin.monitor.settings.threshold
        backtest: list[Trade] = []
        problem = None
        try:
            backtest = await self._backtest(run, drift.since)
        except BotError as error:
            problem = str(error)
        tested = {entry_candle(trade, run.timeframe): trade for trade in backtest}
        apart = drift.first_apart(threshold)
        return PairDrift(
            run.pair,
            drift.since,
            tuple(_rows(drift, tested)),
            drift.live_pnl,
            drift.twin_pnl,
            drift.gap,
            drift.relative,
            threshold,
            apart.candle if apart else None,
            len(drift.one_sided),
            twin.monitor.demoted(run.pair),
            problem,
        )

    async def _backtest(self, run: PairRun, since: datetime) -> list[Trade]:
        """The backtest's trades since ``since`` on the pair's candles (the last may be still
        open: exit reason "open")."""
        strategy = build_strategy(run.strategy, run.params)
        terms = self._venue.research_terms(run.pair)
        step = timeframe_seconds(run.timeframe)
        now = self._clock.now()
        span = (now - since).total_seconds() + (strategy.history + 2) * step
        days = max(1, math.ceil(span / DAY_SECONDS))
        with self._backtests.hold(f"/drift {run.pair}"):  # held before the first await
            await import_off_loop("bot.research.backtest")  # numba: loaded on first use
            from bot.research.backtest import run_backtest, setup_for

            candles = await self._history.candles(run.pair, run.timeframe, days, now)
            acted = candles["timestamp"] + step * 1000 <= to_ms(since)
            start = max(0, int(acted.sum()) - 1)
            setup = setup_for(run.pair, run.timeframe, terms, start)
            result = await in_daemon_thread(partial(run_backtest, candles, strategy, setup))
        return [t for t in result.table.trades() if t.exit_time >= since]

    def promote_preview(self, arguments: Sequence[str]) -> str:
        """What /promote PAIR would do, for its Confirm (UserInputError: nothing to do)."""
        pair = self._demoted(arguments)
        return f"put {pair} back to live trading (new entries on the exchange again)"

    async def promote(self, arguments: Sequence[str]) -> str:
        """PAIR: a demoted pair trades live again; returns the pair."""
        pair = self._demoted(arguments)
        await self._twin().monitor.promote(pair)
        return pair

    def _demoted(self, arguments: Sequence[str]) -> str:
        if len(arguments) != 1:
            raise UserInputError("usage: /promote PAIR")
        pair = normalise_pair(arguments[0], self._venue.quote)
        if not self._twin().monitor.demoted(pair):
            raise not_demoted(pair)
        return pair


def _rows(drift: Drift, tested: dict[datetime, Trade]) -> list[DriftRow]:
    """The monitor's rows with the backtest's trade on each candle, and the backtest's own."""
    rows = {row.candle: DriftRow(row.candle, row.live, row.twin, None) for row in drift.rows}
    for candle, trade in tested.items():
        row = rows.get(candle, DriftRow(candle, None, None, None))
        rows[candle] = DriftRow(candle, row.live, row.twin, trade)
    return [rows[candle] for candle in sorted(rows)]

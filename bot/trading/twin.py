"""The paper twin: every live pair traded again on paper, on the same candles, in the same tick.

The twin is an engine of its own on a paper exchange, with its own books in a database file of
its own (``twin.sqlite`` beside the live one: the same schema, so every part of the engine is
the one live trading runs; never the live books, orders, risk state or alerts). The trading
service hands it each closed candle a live pair acted on, right after the live pair: its fills
are the paper model's, the live fills what the venue gave; the drift monitor
(``bot/trading/drift.py``) compares them.

The paper model's price (``TwinFeed``) is the close of the candle acted on, with the
configured slippage and the live fee: the backtest fills at the next candle's open, which on
the venues' candles is that close (Binance's sample: within 0.003%, mostly to the cent). So the
twin asks the venue nothing per tick, and its price does not depend on when a stream last
pushed one.

The twin never places an order on the venue: its exchange is a ``PaperExchange`` that only
reads prices. A failure of the twin is logged and never costs the live pairs their tick.

Cost (bench/drift_twin.py, target: at most 10% on a tick): the strategy is asked once for live
and twin (``strategy_calls.Decision``), a candle that can change nothing in
the twin's books is not run through its engine (``_quiet``), its state store reads from memory
(``RememberedStateRepository``: nothing else writes its database), and its database commits
without waiting for the disk (``synchronous = NORMAL`` in WAL: a power cut may lose its last
writes, never corrupt it; they are a monitor's, not money's).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import pandas as pd

from bot.core.domain import Action, Fill, PairRun, RunState, Side
from bot.core.ports import PriceFeed
from bot.trading.drift import DriftMonitor
from bot.trading.engine import Engine
from bot.trading.strategy_calls import Decision

log = logging.getLogger(__name__)


class TwinFeed:
    """The twin's paper exchange's prices: the close of the candle each pair last acted on;
    candles and volumes from the live service's source."""

    def __init__(self, source: PriceFeed) -> None:
        self._source = source
        self._closes: dict[str, float] = {}

    def saw(self, pair: str, candles: pd.DataFrame) -> None:
        self._closes[pair] = float(candles["close"].iloc[-1])

    def saw_price(self, pair: str, price: float) -> None:
        self._closes[pair] = price

    async def price(self, pair: str, now: datetime) -> float:
        close = self._closes.get(pair)
        return close if close is not None else await self._source.price(pair, now)

    async def candle_after(self, pair: str, since: datetime, now: datetime) -> pd.Series | None:
        return await self._source.candle_after(pair, since, now)

    async def volume(self, pair: str, now: datetime) -> float | None:
        return await self._source.volume(pair, now)

    async def fill_time(self, pair: str, now: datetime) -> datetime:
        return now


class PaperTwin:
    def __init__(
        self,
        *,
        engine: Engine,
        monitor: DriftMonitor,
        feed: TwinFeed,
        mirror: Callable[[PairRun], Awaitable[None]],
        forget: Callable[[], None] = lambda: None,
    ) -> None:
        """``feed``: the prices ``engine``'s paper exchange fills at; ``mirror`` copies a live
        run into the twin's books (its orders name the run); ``forget``: drops what the twin's
        state store remembers, after a failure (its books are read again from the database)."""
        self.engine = engine
        self.feed = feed
        self.monitor = monitor
        self.mirror = mirror
        self.forget = forget
        self._mirrored: set[int] = set()
        self._settled = False  # orders of unknown outcome looked up since the start

    def live_run(self, run: PairRun) -> PairRun:
        """``run`` as the live engine trades it: a demoted pair enters nothing live."""
        if self.monitor.demoted(run.pair) and run.state is RunState.RUNNING:
            return dataclasses.replace(run, state=RunState.PAUSED)
        return run

    async def follow(
        self,
        run: PairRun,
        decided: Decision,
        candles: pd.DataFrame,
        prices: dict[str, float],
        live_fills: list[Fill],
    ) -> None:
        """Trade ``run``'s closed ``candles`` on paper, as the live pair just did, on what its
        strategy ``decided`` for the live pair (the twin asks the strategy nothing itself), and
        measure the pair's drift when either side sold (only a sale closes a trade)."""
        try:
            executor = self.engine.executor
            if not self._settled:  # at the start and after a failure: paper answers at once
                await executor.settle_unknown()
                self._settled = True
            if executor.unknown.waiting(run.pair):
                return
            if run.id not in self._mirrored:
                await self.mirror(run)
                self._mirrored.add(run.id)
            await self.monitor.start(run.pair)
            self.feed.saw(run.pair, candles)
            fills: list[Fill] = []
            if not await self._quiet(run, decided):
                fills = await self.engine.on_candles(run, decided, candles, prices)
            if any(fill.side is Side.SELL for fill in [*fills, *live_fills]):  # a trade closed
                await self.monitor.check(run.pair, run.timeframe)
        except Exception:  # a monitor: its failure must never stop live trading
            self.forget()
            self._settled = False
            log.exception("paper twin of %s failed on this candle; live trading goes on", run.pair)

    async def stop(self, run: PairRun, price: float) -> None:
        """The live ``run`` was stopped (/stoppair): the twin sells its position too, at
        ``price`` (the live sale's), and keeps the run stopped, so it holds nothing the live
        books do not."""
        await self.sell(run, price, "stop", keep_stopped=True)

    async def sell(
        self, run: PairRun, price: float, reason: str, *, keep_stopped: bool = False
    ) -> None:
        """The live books sold ``run``'s position by hand (/stoppair, the kill switch): the twin
        sells its own at ``price`` (the live sale's), so the trade both made ends alike and
        the hand sale is no drift. A twin that cannot only logs: the live sale stands."""
        try:
            self.feed.saw_price(run.pair, price)
            await self.engine.cancel_pending_entry(run)
            await self.engine.close_position(run, reason, price)
            if keep_stopped:
                await self.mirror(run)
        except Exception:  # a monitor: the live sale stands
            self.forget()
            log.exception("paper twin of %s could not sell with it", run.pair)

    async def _quiet(self, run: PairRun, decided: Decision) -> bool:
        """Whether the candle can change nothing in the twin's books for ``run``: flat in the
        pair, no limit entry resting, and no entry signal (decided once for live and twin).
        The engine is then not run for it: its only work
        would be the risk guard's marks of equity, which a flat pair does not move, and which
        the next candle the twin acts on makes (the day's start included)."""
        if self.engine.portfolio.position(run.pair) is not None:
            return False
        if decided.signal.action is Action.ENTER:
            return False
        return decided.policy.entry_offset == 0 or await self.engine.pending_entry(run.pair) is None

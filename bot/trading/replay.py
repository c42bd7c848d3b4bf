"""Replay: a fake clock stepped one candle at a time, so replays are fast and deterministic."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from bot.core.clock import FakeClock
from bot.core.domain import from_ms, to_ms
from bot.core.ports import StateStore
from bot.market.candle_files import ReplaySource
from bot.trading.service import TradingService

POSITION_KEY = "replay.clock"


class ReplayDriver:
    """Each ``step`` moves the clock one candle forward and ticks the service.

    Stepping (rather than mapping wall time to simulated time) makes every replay see every
    candle, however late the scheduler fires, so a replay's trades never depend on timing.
    A step that lands in a gap of the data (no candle forming: the exchange was down) moves on
    to where trading resumes, so what the last close decided fills at the first price after
    the gap, at that time, as the backtest has it.
    """

    def __init__(
        self,
        *,
        clock: FakeClock,
        service: TradingService,
        state: StateStore,
        step: timedelta,
        end: datetime,
        source: ReplaySource | None = None,
    ) -> None:
        self._clock = clock
        self._source = source
        self._service = service
        self._state = state
        self._step = step
        self._end = end
        self.finished = asyncio.Event()

    @staticmethod
    async def resume_point(state: StateStore, start: datetime) -> datetime:
        """Where a replay restarted on the same database carries on from."""
        saved = await state.get(POSITION_KEY)
        return start if saved is None else max(start, from_ms(int(saved)))

    async def step(self) -> None:
        if self.finished.is_set():
            return
        if self._clock.now() + self._step > self._end:
            self.finished.set()
            return
        self._clock.advance(self._step)
        if self._source is not None:
            resumes = self._source.trading_resumes(self._clock.now())
            if resumes <= self._end:
                self._clock.advance(resumes - self._clock.now())
        await self._service.tick()
        await self._state.set(POSITION_KEY, to_ms(self._clock.now()), self._clock.now())
        if self._clock.now() + self._step > self._end:
            self.finished.set()

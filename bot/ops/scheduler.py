"""Translates our schedules into APScheduler jobs, and stops them without cutting one short."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.ports import Clock

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]


class Jobs:
    """An AsyncIOScheduler whose ``stop`` waits for running jobs.

    APScheduler's asyncio executor cancels running coroutines on shutdown; a tick cancelled
    between the exchange's answer and the booking would lose a fill, so we wait instead.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock  # wall time: jobs run in real time even when trading time is fake
        self.scheduler = AsyncIOScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._running: set[asyncio.Task[object]] = set()
        self._stopping = False

    def every(self, seconds: float, job: Job, name: str) -> None:
        """Run ``job`` now, then ``seconds`` after each run ends (runs never overlap or pile up)."""

        async def tracked() -> None:
            try:
                await self._tracked(job, name)
            finally:
                if not self._stopping:
                    self._plan(tracked, name, seconds)

        self._plan(tracked, name, 0.0)

    def daily(self, at: str, timezone: str, job: Job, name: str) -> None:
        """Run ``job`` every day at ``at`` (HH:MM) local time in ``timezone``."""
        hour, minute = (int(part) for part in at.split(":"))
        self.scheduler.add_job(
            self._tracking(job, name),
            CronTrigger(hour=hour, minute=minute, timezone=timezone),
            id=name,
            name=name,
        )

    def _tracking(self, job: Job, name: str) -> Job:
        async def tracked() -> None:
            await self._tracked(job, name)

        return tracked

    def planned(self) -> list[tuple[str, datetime | None]]:
        """Every job by name with its next run (None while paused)."""
        # A job has no next_run_time attribute until the scheduler has started.
        return [
            (job.name, getattr(job, "next_run_time", None)) for job in self.scheduler.get_jobs()
        ]

    def has(self, name: str) -> bool:
        return self.scheduler.get_job(name) is not None

    def at_candle_close(self, timeframe_seconds: int, delay: float, job: Job, name: str) -> None:
        """Run ``job`` ``delay`` seconds after every candle close (closes are multiples of
        the timeframe since the epoch, as exchanges align them)."""

        self.scheduler.add_job(
            self._tracking(job, name),
            candle_close_trigger(timeframe_seconds, delay),
            id=name,
            name=name,
        )

    async def _tracked(self, job: Job, name: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await job()
        except Exception:
            log.exception("job %s failed; it runs again on schedule", name)
        finally:
            self._running.discard(task)

    def _plan(self, job: Job, name: str, delay: float) -> None:
        """The next run of an ``every`` job. It is planned from inside the run that ends, which
        APScheduler still counts as running: with one instance allowed, a next run due at once
        (a fast replay, a loaded machine) would be skipped, and a one-shot trigger never
        fires again. Two are allowed; the runs never overlap, since each plans the next."""
        run_at = self._clock.now() + timedelta(seconds=delay)
        self.scheduler.add_job(
            job,
            DateTrigger(run_date=run_at),
            id=name,
            name=name,
            replace_existing=True,
            max_instances=2,
        )

    def start(self) -> None:
        self.scheduler.start()

    async def stop(self) -> None:
        """No new runs; wait for the running ones to finish; then shut the scheduler down."""
        self._stopping = True
        self.scheduler.pause()
        current = asyncio.current_task()
        running = [task for task in self._running if task is not current]
        if running:
            await asyncio.wait(running)
        self.scheduler.shutdown(wait=False)


def candle_close_trigger(timeframe_seconds: int, delay: float) -> IntervalTrigger:
    """Fires at every multiple of the timeframe since the epoch, plus ``delay`` seconds."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return IntervalTrigger(
        seconds=timeframe_seconds, start_date=epoch + timedelta(seconds=delay), timezone="UTC"
    )

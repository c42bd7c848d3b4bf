"""What the running service does for its operator: a heartbeat for `pairpilot health`, the data
directory watched (new entries stop before SQLite runs out of room for the exits), the gauges
restored at start, and a goodbye that a full disk cannot turn into a crash."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.alerts.held import HeldAlerts
from bot.alerts.outbox import AlertDispatcher, AlertOutbox
from bot.core.domain import AlertPriority, EquitySnapshot
from bot.core.ports import Clock, LatestEquity, StateStore
from bot.ops import data_dir
from bot.ops.health import HEARTBEAT_KEY, heartbeat_record
from bot.ops.telemetry import DATA_DIR_FREE, EQUITY, HALTED, PNL_TODAY, STORAGE_OK
from bot.risk.guard import RiskGuard
from bot.risk.guard_state import GuardState
from bot.trading.service import TradingService

log = logging.getLogger(__name__)
GOODBYE_SECONDS = 8.0  # the sends at a stop, at most: a 429's retry_after can be minutes


class ServiceWatch:
    """A job run every ``HEARTBEAT_SECONDS``: check the data directory, record the heartbeat."""

    def __init__(
        self,
        *,
        path: Path,
        state: StateStore,
        service: TradingService,
        outbox: AlertOutbox,
        held: HeldAlerts,
        source: str,
        wall: Clock,
        min_free: int = data_dir.MIN_FREE_BYTES,
    ) -> None:
        """``path``: the data directory; ``wall``: real time, even when trading time is a
        replay's; ``source``: "replay" or "exchange"; ``min_free``: bytes below which new
        entries stop; ``held``: where an alert the outbox cannot store goes (straight to the
        admins)."""
        self._path, self._state, self._service, self._outbox = path, state, service, outbox
        self.held = held
        self._source, self._wall, self._min_free = source, wall, min_free
        self._started = wall.now()
        self._trouble: str | None = None
        self._alerted = 0  # the trouble's alert sent: 1 low space, 2 writes fail; once each

    @property
    def trouble(self) -> str | None:
        """What is wrong with the data directory, or None."""
        return self._trouble

    async def beat(self) -> None:
        """Usable again only once the heartbeat could be written too."""
        found = data_dir.problem(self._path, self._min_free)
        _gauge_free(self._path)
        if found:
            await self._in_trouble(found)
        try:
            await self._record(stopped=False)
        except Exception as error:
            await self._failed_write(error)
            return
        if self._trouble and not found:
            await self._recovered()

    def guarded(self, job: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
        """``job`` with its storage errors taken as trouble (entries stop at once) and logged
        once, instead of a traceback at every run (five a second for the alert drain)."""

        async def run() -> None:
            try:
                await job()
            except Exception as error:
                await self._failed_write(error)

        return run

    async def _failed_write(self, error: Exception) -> None:
        if not data_dir.is_storage_error(error):
            raise error
        await self._in_trouble(
            f"data_dir {self._path}: writing to the database failed ({error})", writes_fail=True
        )

    async def stopped(self) -> None:
        """Record a stop on purpose, so health does not advise restarting the service."""
        try:
            await self._record(stopped=True)
        except Exception as error:
            if not data_dir.is_storage_error(error):
                raise
            log.error("data_dir %s: the stop could not be recorded (%s)", self._path, error)

    async def _record(self, *, stopped: bool) -> None:
        now = self._wall.now()
        service = self._service
        record = heartbeat_record(
            now=now,
            started_at=self._started,
            source=self._source,
            runs=service.runs(),
            last_ticks=service.last_ticks,
            last_asked=service.last_asked,
            trouble={
                "storage_trouble": self._trouble,
                "exchange_trouble": service.exchange_trouble,
            },
        )
        if stopped:
            record["stopped_at"] = record["at"]
        await self._state.set(HEARTBEAT_KEY, record, now)

    async def _in_trouble(self, found: str, *, writes_fail: bool = False) -> None:
        if self._trouble is None:
            log.error("%s: new entries are off", found)
        self._trouble = found
        self._service.entries_blocked = found
        STORAGE_OK.set(0)
        level = 2 if writes_fail else 1
        if self._alerted >= level:
            return
        try:
            await self._outbox.push(
                "storage", AlertPriority.CRITICAL, _storage_text(found, writes_fail)
            )
        except Exception as error:  # not even the alert can be written: nor can an exit
            if not data_dir.is_storage_error(error):
                raise
            level = 2
            self.held.hold("storage", AlertPriority.CRITICAL, _storage_text(found, True))
        self._alerted = level

    async def _recovered(self) -> None:
        log.warning("data_dir %s is usable again: new entries are back on", self._path)
        self._trouble = None
        self._alerted = 0
        self._service.entries_blocked = None
        STORAGE_OK.set(1)
        await self.held.store()
        await self.push(
            "storage",
            AlertPriority.CRITICAL,
            f"Storage OK again ({self._path}): new entries are back on.",
        )

    async def push(self, kind: str, priority: AlertPriority, text: str) -> None:
        """Into the outbox; held and sent straight to the admins when it cannot be stored."""
        try:
            await self._outbox.push(kind, priority, text)
        except Exception as error:
            if not data_dir.is_storage_error(error):
                raise
            self.held.hold(kind, priority, text)


def _storage_text(found: str, writes_fail: bool) -> str:
    """The storage alert: while writes still work, exits are still booked; once they fail,
    nothing pairpilot does can be booked, so the admins must know to look."""
    if writes_fail:
        state = (
            "Writes fail: exits cannot be booked or placed by pairpilot until space returns; "
            "only orders resting on the exchange protect open positions."
        )
    else:
        state = "Open positions are still managed."
    return f"Storage trouble: {found}. New entries are off. {state} Free space or fix permissions."


def _gauge_free(path: Path) -> None:
    try:
        DATA_DIR_FREE.set(data_dir.free_bytes(path))
    except OSError:
        DATA_DIR_FREE.set(0)


async def restore_gauges(equity: LatestEquity, guard: RiskGuard) -> None:
    """Equity, today's PnL and the halt as the database has them: after a restart they would
    read 0 until a tick acted."""
    latest = await equity.latest()
    if latest is not None:
        EQUITY.set(latest.equity)
        day_start = await guard.day_start()
        PNL_TODAY.set(latest.equity - day_start if day_start is not None else 0.0)
    HALTED.set(1 if await guard.halted() else 0)
    STORAGE_OK.set(1)


def restore_gauges_from(latest: EquitySnapshot | None, risk: GuardState) -> None:
    """The gauges from the books' last snapshot and the risk guard's stored state (``risk``),
    read before the guard is built (bot/app/gauges.py)."""
    if latest is not None:
        EQUITY.set(latest.equity)
        day_start = risk.day_start
        PNL_TODAY.set(latest.equity - day_start if day_start is not None else 0.0)
    HALTED.set(1 if risk.halt else 0)


async def goodbye(dispatcher: AlertDispatcher, watch: ServiceWatch) -> None:
    """The last alert, flushed, and the stop recorded; on a full or read-only disk each step
    that cannot write is logged (naming the data directory) instead of crashing the stop, and
    the goodbye goes straight to the admins with whatever else is held. The sends take at
    most ``GOODBYE_SECONDS``, so the stop stays inside systemd's TimeoutStopSec."""
    await watch.stopped()
    await watch.push("shutdown", AlertPriority.INFO, "pairpilot stopped")
    try:
        await asyncio.wait_for(_flush(dispatcher, watch), timeout=GOODBYE_SECONDS)
    except TimeoutError:  # Telegram rate-limits or hangs: the rest waits for the next start
        log.warning(
            "the last alerts were not all sent within %.0f s; those left stay queued",
            GOODBYE_SECONDS,
        )


async def _flush(dispatcher: AlertDispatcher, watch: ServiceWatch) -> None:
    try:
        await dispatcher.drain()
    except Exception as error:
        if not data_dir.is_storage_error(error):
            raise
        log.error(
            "stopping on a data directory in trouble (%s): %s",
            watch.trouble or "the database cannot be written",
            error,
        )
    await watch.held.send()

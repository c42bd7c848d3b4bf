"""The chat's look after the service: health, alert choices, the audit log (read and written).

Reads return typed views; the front end words and marks them up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.alerts.preferences import KINDS, AlertPreferences
from bot.core.domain import AuditEntry
from bot.core.errors import BotError, UserInputError
from bot.core.ports import AlertBacklog, AuditLog, Clock, StateStore
from bot.ops.health import CLOCK_KEY, COMMANDS_KEY
from bot.ops.scheduler import Jobs
from bot.trading.engine import Engine
from bot.trading.service import TradingService

AUDIT_RESULT = 300  # characters of a result the audit keeps


@dataclass(frozen=True, slots=True)
class TickRow:
    pair: str
    timeframe: str
    minutes_ago: float | None  # since its last new candle, None: none yet
    waiting: tuple[str, ...]  # client ids of orders whose outcome the exchange cannot tell


@dataclass(frozen=True, slots=True)
class HealthView:
    ticks: tuple[TickRow, ...]
    jobs: tuple[tuple[str, datetime | None], ...]  # name, next run (None: paused)
    exchange_ms: float | None  # how long the exchange took to answer, None: unreachable
    exchange_error: str  # why it was unreachable
    backlog: int  # alerts waiting to be delivered
    commands_kept: bool  # whether the chat keeps if commands can be received (a front end)
    commands_problem: str | None  # why chat commands cannot be received (None: they are)
    clock: str | None  # what commands' ages are judged by


@dataclass(frozen=True, slots=True)
class AlertChoice:
    kind: str
    mode: str  # on, silent, off
    about: str  # what the kind of alert tells


class AdminDesk:
    def __init__(
        self,
        *,
        service: TradingService,
        engine: Engine,
        audit: AuditLog,
        alerts: AlertBacklog,
        preferences: AlertPreferences,
        jobs: Jobs,
        clock: Clock,
        state: StateStore | None = None,
    ) -> None:
        """``state``: where whether chat commands can be received is kept (for health)."""
        self._service = service
        self._engine = engine
        self._audit = audit
        self._alerts = alerts
        self._preferences = preferences
        self._jobs = jobs
        self._clock = clock
        self._state = state

    async def health(self) -> HealthView:
        """Last tick per pair, the scheduler's jobs, the exchange's latency, the outbox."""
        now = self._clock.now()
        ticks = []
        for run in self._service.runs():
            seen = self._service.last_ticks.get(run.pair)
            waiting = self._engine.executor.unknown.waiting(run.pair)
            ticks.append(
                TickRow(
                    run.pair,
                    run.timeframe,
                    (now - seen).total_seconds() / 60 if seen else None,
                    tuple(o.client_order_id for o in waiting),
                )
            )
        jobs = tuple(self._jobs.planned())
        loop = asyncio.get_running_loop()
        started = loop.time()
        latency: float | None = None
        error = ""
        try:
            await self._engine.exchange.fetch_balances()
            latency = (loop.time() - started) * 1000
        except BotError as failure:
            error = str(failure)
        backlog = await self._alerts.backlog()
        problem = clock = None
        if self._state is not None:
            problem = (await self._state.get(COMMANDS_KEY) or {}).get("problem")
            clock = (await self._state.get(CLOCK_KEY) or {}).get("source")
        return HealthView(
            tuple(ticks), jobs, latency, error, backlog, self._state is not None, problem, clock
        )

    async def alerts(self, user_id: int, arguments: Sequence[str]) -> tuple[AlertChoice, ...]:
        """The user's alert choices, after KIND on|silent|off changed one."""
        if arguments:
            if len(arguments) != 2:
                raise UserInputError("usage: /alerts [KIND on|silent|off]")
            await self._preferences.choose(user_id, arguments[0], arguments[1])
        chosen = await self._preferences.of(user_id)
        return tuple(AlertChoice(kind, mode, KINDS[kind]) for kind, mode in chosen.items())

    async def audit(self, count: int) -> list[AuditEntry]:
        """The latest ``count`` entries, newest first."""
        return await self._audit.latest(count)

    async def record(self, actor: str, command: str, arguments: Sequence[str], result: str) -> None:
        await self._audit.add(
            actor=actor,
            command=command,
            arguments=list(arguments),
            result=result[:AUDIT_RESULT],
            now=self._clock.now(),
        )

    async def record_many(self, entries: Sequence[tuple[str, str, Sequence[str], str]]) -> None:
        """Several (actor, command, arguments, result) audit lines in one commit."""
        await self._audit.add_many(
            [
                (actor, command, arguments, result[:AUDIT_RESULT])
                for actor, command, arguments, result in entries
            ],
            self._clock.now(),
        )

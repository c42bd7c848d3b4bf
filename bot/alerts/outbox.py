"""Alerts go through the outbox table; a dispatcher drains it into a sink, most urgent first."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.core.domain import Alert, AlertPriority
from bot.core.ports import AlertRepository, AlertSink, Clock, StateStore
from bot.ops.telemetry import OUTBOX_BACKLOG

log = logging.getLogger(__name__)


class AlertOutbox:
    """The push side: store an alert; delivery happens elsewhere, so trading never waits."""

    def __init__(self, repository: AlertRepository, clock: Clock) -> None:
        self._repository = repository
        self._clock = clock

    async def push(
        self, kind: str, priority: AlertPriority, text: str, photo: bytes | None = None
    ) -> int:
        return await self._repository.add(kind, priority, text, self._clock.now(), photo)


class OnceAlerts:
    """Alerts about facts that do not change, such as a hole in the exchange's candles: each
    text is pushed once, remembered over restarts (the last ``keep`` of them)."""

    def __init__(
        self, outbox: AlertOutbox, state: StateStore, clock: Clock, kind: str, keep: int = 200
    ) -> None:
        self._outbox, self._state, self._clock = outbox, state, clock
        self._kind, self._keep = kind, keep

    async def push(self, text: str) -> None:
        key = f"alerted.{self._kind}"
        seen = list(await self._state.get(key) or [])
        if text in seen:
            return
        await self._outbox.push(self._kind, AlertPriority.ERROR, text)
        await self._state.set(key, (seen + [text])[-self._keep :], self._clock.now())


class AlertDispatcher:
    """The drain side: hands pending alerts to a sink and marks each one delivered."""

    def __init__(self, repository: AlertRepository, sink: AlertSink, clock: Clock) -> None:
        self._repository = repository
        self._sink = sink
        self._clock = clock
        self._failing = False  # in a delivery failure episode: its warning is logged once

    async def drain(self) -> int:
        """Deliver what is pending; stops at the first failure so order is kept. Returns count."""
        delivered = 0
        pending = await self._repository.pending()
        try:
            for alert in pending:
                try:
                    await self._sink.send(alert)
                except Exception as error:  # the chat is down or refuses: try again later
                    log.log(
                        logging.DEBUG if self._failing else logging.WARNING,
                        "alert %s not delivered (%s: %s); it stays queued, retried "
                        "without further warnings until one is delivered",
                        alert.id,
                        type(error).__name__,
                        error,
                    )
                    self._failing = True
                    await self._repository.mark_failed(alert.id)
                    break
                await self._repository.mark_delivered(alert.id, self._clock.now())
                if self._failing:
                    log.info("alerts are delivered again")
                    self._failing = False
                delivered += 1
        finally:
            OUTBOX_BACKLOG.set(len(pending) - delivered)
        return delivered


class ConsoleSink:
    """Prints alerts: what notifications become when no Telegram token is configured."""

    def __init__(self, write: Callable[[str], object] = print) -> None:
        self._write = write

    async def send(self, alert: Alert) -> None:
        marker = "!" if alert.priority <= AlertPriority.ERROR else "*"
        chart = " (chart not shown on the console)" if alert.photo else ""
        self._write(f"{marker} [{alert.created_at:%Y-%m-%d %H:%M}] {alert.text}{chart}")

    async def send_unstored(self, text: str, reached: set[int]) -> None:
        """The console is the one "chat" (0)."""
        if 0 not in reached:
            self._write(f"! {text}")
            reached.add(0)

"""Alerts the outbox could not store: the disk is full or read-only.

Sending to Telegram needs no disk, so such an alert goes straight to the admins through the
chat's sink, is kept in memory and retried until it is sent, and is written to the outbox
once the disk takes writes again (as delivered when it was sent, so it is never sent twice;
as pending when it was not, so the dispatcher still delivers it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from bot.core.domain import AlertPriority
from bot.core.ports import AlertRepository, Clock, UnstoredSink
from bot.ops.data_dir import is_storage_error

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Held:
    kind: str
    priority: AlertPriority
    text: str
    at: datetime
    reached: set[int] = field(default_factory=set)  # the chats that have it
    sent: bool = False


class HeldAlerts:
    """In memory only: a restart loses what is held (the log has each text)."""

    def __init__(self, repository: AlertRepository, clock: Clock) -> None:
        self._repository, self._clock = repository, clock
        self._sink: UnstoredSink | None = None
        self._held: list[_Held] = []

    def attach(self, sink: UnstoredSink) -> None:
        """The chat's sink, once the front end is built; what was held before waits for it."""
        self._sink = sink

    def hold(self, kind: str, priority: AlertPriority, text: str) -> None:
        """Keep ``text`` to send; one already held with the same kind and text is not added."""
        log.error("alert not stored (the data directory takes no writes), sent directly: %s", text)
        if not any(held.kind == kind and held.text == text for held in self._held):
            self._held.append(_Held(kind, priority, text, self._clock.now()))

    async def send(self) -> None:
        """Send what is held and not sent yet, in order; a failure leaves the rest for the
        next call."""
        if self._sink is None:
            return
        for held in list(self._held):  # ``store`` may take some meanwhile
            if held.sent:
                continue
            try:
                await self._sink.send_unstored(held.text, held.reached)
            except Exception as error:  # the chat is down too: retried on the next call
                log.warning(
                    "held alert not sent (%s: %s); it is retried", type(error).__name__, error
                )
                return
            held.sent = bool(held.reached)  # reached no chat: still pending when stored

    async def store(self) -> None:
        """Into the outbox, now that the disk takes writes again; what still cannot be
        written stays held."""
        while self._held:
            held = self._held[0]
            try:
                alert_id = await self._repository.add(held.kind, held.priority, held.text, held.at)
                self._held.pop(0)
                if held.sent:
                    await self._repository.mark_delivered(alert_id, self._clock.now())
            except Exception as error:
                if not is_storage_error(error):
                    raise
                log.warning("held alerts not stored yet (%s)", error)
                return

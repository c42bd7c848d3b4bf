"""Ports of alerts and the chat: the outbox's storage, delivery to each chat, the sinks and the
chat front end. Adapters: storage/alerts.py, handlers/delivery.py, bot/alerts/outbox.py."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bot.core.domain import Alert, AlertPriority


class AlertRepository(Protocol):
    async def add(
        self,
        kind: str,
        priority: AlertPriority,
        text: str,
        now: datetime,
        photo: bytes | None = None,
    ) -> int: ...

    async def pending(self, limit: int = 100) -> list[Alert]: ...

    async def mark_delivered(self, alert_id: int, now: datetime) -> None: ...

    async def mark_failed(self, alert_id: int) -> None: ...


class AlertSink(Protocol):
    """Where alerts end up: the console now, Telegram later. Raises when delivery failed."""

    async def send(self, alert: Alert) -> None: ...


class UnstoredSink(Protocol):
    """Delivery that writes nothing, for an alert the full disk could not store."""

    async def send_unstored(self, text: str, reached: set[int]) -> None:
        """``text`` to every admin chat not in ``reached``, adding each chat as it is
        reached; raises when one could not be (a retry skips those in ``reached``)."""
        ...


class ChatSink(AlertSink, UnstoredSink, Protocol):
    """A chat front end's sink: the outbox's alerts, and those the disk could not store."""


class ChatFrontend(Protocol):
    """A chat front end (Telegram, in handlers/), built by a ``ChatFactory`` (bot/chat)."""

    @property
    def sink(self) -> ChatSink: ...

    def start(self) -> None:
        """Connect in the background; never blocks trading."""

    async def stop(self) -> None: ...


class AlertDeliveries(Protocol):
    """Which chats each alert reached, and which a send went out to without an answer: a chat
    front end sends one alert to several chats, once each."""

    async def delivered_chats(self, alert_id: int) -> set[int]: ...

    async def mark_delivered_to(self, alert_id: int, chat_id: int, now: datetime) -> None: ...

    async def attempted_chats(self, alert_id: int) -> set[int]: ...

    async def mark_attempted(self, alert_id: int, chat_id: int) -> None: ...

    async def clear_attempt(self, alert_id: int, chat_id: int) -> None: ...


class AlertBacklog(Protocol):
    async def backlog(self) -> int:
        """How many alerts no chat has taken yet."""
        ...


class PendingAlerts(AlertBacklog, Protocol):
    async def oldest_pending(self) -> datetime | None:
        """When the oldest undelivered alert was pushed, or None."""
        ...

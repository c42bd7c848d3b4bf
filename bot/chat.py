"""How the service meets a chat front end (Telegram lives in handlers/, outside bot/).

The entry point passes a ``ChatFactory``; without one, alerts go to the console.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from bot.alerts import AlertDispatcher, AlertOutbox, ConsoleSink
from bot.cockpit import Cockpit
from bot.ports import AlertSink, Clock
from storage.alerts import SqliteAlertRepository


class ChatFrontend(Protocol):
    sink: AlertSink

    def start(self) -> None:
        """Connect in the background; never blocks trading."""

    async def stop(self) -> None: ...


# (cockpit, outbox, alerts, clock, mark_late): mark_late is off in a replay, whose clock is
# simulated, so an alert's age says nothing about how late it reaches the chat.
ChatFactory = Callable[[Cockpit, AlertOutbox, SqliteAlertRepository, Clock, bool], ChatFrontend]


@asynccontextmanager
async def notifications(
    alerts: SqliteAlertRepository,
    cockpit: Cockpit,
    outbox: AlertOutbox,
    clock: Clock,
    chat: ChatFactory | None,
    write: Callable[[str], object],
    *,
    simulated: bool = False,
) -> AsyncIterator[AlertDispatcher]:
    """The alert dispatcher into the chat (or the console), with the chat running meanwhile.
    ``simulated``: the clock is a replay's."""
    frontend = chat(cockpit, outbox, alerts, clock, not simulated) if chat else None
    dispatcher = AlertDispatcher(alerts, frontend.sink if frontend else ConsoleSink(write), clock)
    if frontend is not None:
        cockpit.charts.start()
        frontend.start()
    try:
        yield dispatcher
    finally:
        if frontend is not None:
            await frontend.stop()
        cockpit.charts.close()

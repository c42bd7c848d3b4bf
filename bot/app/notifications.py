"""How the service meets a chat front end (Telegram lives in handlers/, outside bot/).

The entry point passes a ``ChatFactory``; without one, alerts go to the console.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from bot.alerts.held import HeldAlerts
from bot.alerts.outbox import AlertDispatcher, AlertOutbox, ConsoleSink
from bot.chat.cockpit import Cockpit
from bot.chat.frontend import ChatFactory
from bot.core.ports import ChatSink, Clock
from storage.alerts import SqliteAlertRepository

__all__ = ["ChatFactory", "notifications"]


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
    held: HeldAlerts | None = None,
) -> AsyncIterator[AlertDispatcher]:
    """The alert dispatcher into the chat (or the console), with the chat running meanwhile.
    ``simulated``: the clock is a replay's; ``held``: alerts the disk could not store, sent
    through the same chat."""
    frontend = chat(cockpit, outbox, alerts, clock, not simulated) if chat else None
    sink: ChatSink = frontend.sink if frontend else ConsoleSink(write)
    dispatcher = AlertDispatcher(alerts, sink, clock)
    if held is not None:
        held.attach(sink)
    if frontend is not None:
        cockpit.charts.start()
        frontend.start()
    try:
        yield dispatcher
    finally:
        if frontend is not None:
            await frontend.stop()
        cockpit.charts.close()

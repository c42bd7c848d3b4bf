"""A Telegram failing fast (a refused connection, a rejected token) is retried at every drain,
five times a second: its warning is logged once per episode, not at every drain."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.alerts.outbox import AlertDispatcher, AlertOutbox
from bot.core.clock import SystemClock
from bot.core.domain import Alert, AlertPriority
from storage.alerts import SqliteAlertRepository
from storage.db import open_database


class FlakySink:
    def __init__(self) -> None:
        self.down = True

    async def send(self, alert: Alert) -> None:
        if self.down:
            raise ConnectionRefusedError("connection refused")


async def test_a_failing_chat_is_warned_about_once_per_episode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.alerts.outbox")
    async with open_database(tmp_path / "db.sqlite") as db:
        clock, sink = SystemClock(), FlakySink()
        repository = SqliteAlertRepository(db)
        dispatcher = AlertDispatcher(repository, sink, clock)
        await AlertOutbox(repository, clock).push("fill", AlertPriority.INFO, "bought")
        for _ in range(10):
            assert await dispatcher.drain() == 0
        sink.down = False
        assert await dispatcher.drain() == 1
        sink.down = True
        await AlertOutbox(repository, clock).push("fill", AlertPriority.INFO, "sold")
        for _ in range(10):
            await dispatcher.drain()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one per episode
    assert all("stays queued" in record.getMessage() for record in warnings)

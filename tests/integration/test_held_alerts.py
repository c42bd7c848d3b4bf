"""Alerts the disk could not store, with no admin configured: they go to every user (as the
outbox sends the kinds not kept for admins), and one that reached no chat is never stored as
delivered."""

from __future__ import annotations

from pathlib import Path

from telegram import Bot

from bot.alerts.held import HeldAlerts
from bot.alerts.preferences import AlertPreferences
from bot.core.clock import SystemClock
from bot.core.domain import AlertPriority
from handlers.delivery import TelegramSink
from storage.alerts import SqliteAlertRepository
from storage.db import open_database
from storage.state import SqliteStateRepository
from tests.doubles.telegram_emulator import TelegramEmulator, running
from tests.rigs.chat_rig import VIEWER


async def held_through_telegram(tmp_path: Path, chats: list[int]) -> tuple[TelegramEmulator, list]:
    """One held alert sent through a sink with ``chats`` and no admin, then stored; returns
    the emulator and the outbox's pending alerts."""
    emulator = TelegramEmulator()
    async with running(emulator) as base, open_database(tmp_path / "db.sqlite") as db:
        clock = SystemClock()
        alerts = SqliteAlertRepository(db)
        bot = Bot(emulator.token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")
        async with bot:
            preferences = AlertPreferences(SqliteStateRepository(db), clock)
            held = HeldAlerts(alerts, clock)
            held.attach(TelegramSink(bot, chats, alerts, preferences, clock, admins=[]))
            held.hold("storage", AlertPriority.ERROR, "Storage trouble: disk full")
            await held.send()
            await held.store()
        return emulator, await alerts.pending()


async def test_held_alerts_go_to_every_user_when_no_admin_is_configured(tmp_path: Path) -> None:
    emulator, pending = await held_through_telegram(tmp_path, [VIEWER])
    assert [sent.text for sent in emulator.to(VIEWER)] == ["Storage trouble: disk full"]
    assert pending == []  # it reached a chat: stored as delivered


async def test_a_held_alert_that_reached_no_chat_stays_pending(tmp_path: Path) -> None:
    emulator, pending = await held_through_telegram(tmp_path, [])
    assert emulator.sent == []
    assert [alert.text for alert in pending] == ["Storage trouble: disk full"]

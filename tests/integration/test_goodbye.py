"""The goodbye at a stop is bounded: a Telegram answering 429 with a long retry_after (flood
control) must not keep the stop past systemd's TimeoutStopSec; what is not sent stays in the
outbox for the next start."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from bot.app.config import TelegramSettings, TelegramUser, load_settings, telegram_options
from bot.app.secret_values import Secrets
from bot.app.serve import run_service
from bot.trading.watch import GOODBYE_SECONDS
from handlers.frontend import telegram_factory
from tests.doubles.telegram_emulator import TelegramEmulator, running
from tests.integration.test_data_dir import replay_config, texts_to
from tests.rigs.chat_rig import ADMIN


async def test_a_rate_limited_goodbye_is_cut_short_and_stays_queued(tmp_path: Path) -> None:
    emulator = TelegramEmulator()
    async with running(emulator) as base:
        settings = load_settings(replay_config(tmp_path, tmp_path / "data"), None)
        settings = settings.model_copy(
            update={
                "telegram": TelegramSettings(
                    api_base_url=base, users=[TelegramUser(id=ADMIN, role="admin")]
                )
            }
        )
        secrets = Secrets(telegram_token=emulator.token)
        stop = asyncio.Event()
        chat = telegram_factory(telegram_options(settings, secrets))
        service = asyncio.create_task(run_service(settings, secrets, stop=stop, chat=chat))
        assert await texts_to(emulator, ADMIN, "pairpilot started", 1, within=60)
        emulator.limit("sendMessage", 3, 30)  # flood control: retry after 30 s, three times
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(service, timeout=40)  # unbounded: 90 s and more
        took = time.monotonic() - started
    assert took < GOODBYE_SECONDS + 5, f"the stop took {took:.1f} s"
    assert "pairpilot stopped" not in [sent.text for sent in emulator.to(ADMIN)]
    with closing(sqlite3.connect(settings.database_path)) as connection:
        pending = connection.execute(
            "SELECT text FROM alerts WHERE delivered_at IS NULL"
        ).fetchall()
    assert ("pairpilot stopped",) in pending

"""python-telegram-bot inside the service: the whole service with Telegram in its own
event loop (long polling), and the webhook that takes updates only with the secret."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from bot.app.bootstrap import assemble_replay
from bot.app.chat_root import build_cockpit
from bot.app.config import TelegramSettings, TelegramUser, WebhookSettings, telegram_options
from bot.app.secret_values import Secrets
from bot.app.serve import run_service
from bot.app.startup import load_replay
from bot.chat.venue import Venue
from bot.market.history import ReplayHistory
from bot.ops.scheduler import Jobs
from handlers.frontend import TelegramFrontend, telegram_factory
from storage.alerts import SqliteAlertRepository
from storage.db import open_database
from tests.doubles.telegram_emulator import TelegramEmulator, post_update, running
from tests.rigs.builders import replay_settings
from tests.rigs.chat_rig import ADMIN, USERS


async def test_the_service_runs_with_telegram_in_its_own_loop(tmp_path: Path) -> None:
    emulator = TelegramEmulator()
    async with running(emulator) as base:
        config = replay_settings(tmp_path).model_copy(
            update={
                "telegram": TelegramSettings(
                    api_base_url=base, users=[TelegramUser(id=ADMIN, role="admin")]
                )
            }
        )
        stop = asyncio.Event()
        service = asyncio.create_task(
            run_service(
                config,
                Secrets(telegram_token=emulator.token),
                stop=stop,
                chat=telegram_factory(
                    telegram_options(config, Secrets(telegram_token=emulator.token))
                ),
            )
        )
        first = await emulator.reply(ADMIN, within=10)
        assert first.text.startswith("pairpilot started: paper mode, replay, BTC/USDT")
        emulator.say(ADMIN, "/status")
        status = await emulator.reply(ADMIN, after=1, within=10)
        assert "Equity" in status.text
        stop.set()
        await asyncio.wait_for(service, timeout=10)
    assert emulator.to(ADMIN)[-1].text == "pairpilot stopped"


async def test_a_webhook_takes_updates_only_with_the_secret(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = replay_settings(tmp_path)
    emulator = TelegramEmulator()
    hook = WebhookSettings(url=f"http://127.0.0.1:{port}/hook", port=port)
    async with running(emulator) as base, open_database(config.database_path) as db:
        replay = load_replay(config)
        trading = await assemble_replay(db, config, replay)
        cockpit = build_cockpit(
            db,
            Venue("paper", "replay", "USDT"),
            trading.service,
            trading.engine,
            trading.control,
            ReplayHistory(replay.source),
            Jobs(trading.clock),
            trading.clock,
        )
        frontend = TelegramFrontend(
            token=emulator.token,
            api_base_url=base,
            users=USERS,
            cockpit=cockpit,
            outbox=trading.outbox,
            alerts=SqliteAlertRepository(db),
            clock=trading.clock,
            webhook=hook,
            webhook_secret="s3cret",
        )
        frontend.start()
        await frontend.running.wait()
        try:
            assert emulator.webhook == (hook.url, "s3cret")
            assert "getUpdates" not in emulator.calls
            emulator.say(ADMIN, "/status")
            assert "Equity" in (await emulator.reply(ADMIN)).text
            forged = {
                "update_id": 999,
                "message": {
                    "message_id": 1,
                    "date": 1,
                    "text": "/halt",
                    "chat": {"id": ADMIN, "type": "private"},
                    "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
                    "from": {"id": ADMIN, "is_bot": False, "first_name": "x"},
                },
            }
            assert await post_update(hook.url, "guess", forged) == 403
            await emulator.quiet(0.3)
            assert not await trading.engine.guard.halted()
            assert await emulator.delivered() == [200]
        finally:
            await frontend.stop()

"""The service on a config with user strategies (issue 18): a folder strategy and an entry-point
strategy trade their pairs, a broken file beside them stops nothing, and the chat lists them
(the real service, the Telegram emulator, a real dist-info on the path)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bot.app.config import load_settings, telegram_options
from bot.app.secret_values import Secrets
from bot.app.serve import run_service
from handlers.frontend import telegram_factory
from tests.doubles.telegram_emulator import TelegramEmulator, running
from tests.integration.test_serve_options import reply_with
from tests.integration.test_user_strategies import MINE, SAMPLE, installed
from tests.rigs.chat_rig import ADMIN


async def test_the_service_trades_folder_and_entry_point_strategies_past_a_broken_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    site = installed(
        tmp_path / "site",
        "ep_service",
        MINE.format(name="packaged"),
        "[pairpilot.strategies]\npackaged = ep_service:Mine\n",
    )
    monkeypatch.syspath_prepend(str(site))
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "mine.py").write_text(MINE.format(name="mine"), encoding="utf-8")
    (folder / "broken.py").write_text("import pandas\n\nraise ValueError('half written')\n")
    emulator = TelegramEmulator()
    async with running(emulator) as base:
        config = tmp_path / "config.toml"
        config.write_text(
            f'data_dir = "data"\n[market_data]\nsource = "replay"\n'
            f'[market_data.replay_files]\n"BTC/USDT" = "{SAMPLE}"\n'
            f'"ETH/USDT" = "{SAMPLE.with_name("ETH_USDT-1h.csv.gz")}"\n'
            f'[telegram]\napi_base_url = "{base}"\n'
            f'[[telegram.users]]\nid = {ADMIN}\nrole = "admin"\n'
            '[[pairs]]\npair = "BTC/USDT"\nstrategy = "mine"\nparams = { length = 30 }\n'
            "capital_share = 0.5\n"
            '[[pairs]]\npair = "ETH/USDT"\nstrategy = "packaged"\ncapital_share = 0.5\n',
            encoding="utf-8",
        )
        secrets = Secrets(telegram_token=emulator.token)
        settings = load_settings(config, secrets)
        assert f"strategy not loaded: {folder / 'broken.py'}:3: ValueError: half written" in (
            caplog.text
        )
        stop = asyncio.Event()
        service = asyncio.create_task(
            run_service(
                settings,
                secrets,
                stop=stop,
                chat=telegram_factory(telegram_options(settings, secrets)),
            )
        )
        try:
            started = await emulator.reply(ADMIN, within=60)
            assert started.text.startswith("pairpilot started: paper mode, replay")
            assert started.text.endswith(
                "strategies not loaded (the rest are):\n"
                f"{folder / 'broken.py'}:3: ValueError: half written"
            )
            asked = len(emulator.to(ADMIN))
            emulator.say(ADMIN, "/pairs")
            pairs = await reply_with(emulator, "ETH/USDT", asked)
            assert "mine" in pairs
            assert "packaged" in pairs
            asked = len(emulator.to(ADMIN))
            emulator.say(ADMIN, "/strategies")
            listed = (await reply_with(emulator, "length=24 (2 to 300)", asked)).splitlines()
            assert {"mine", "packaged", "ema_cross"} <= set(listed)
        finally:
            stop.set()
            await asyncio.wait_for(service, timeout=60)
            sys.modules.pop("ep_service", None)

"""A refused start (exit 2) under compose's `restart: unless-stopped` is restarted about once
a minute: the admins get its notice once an hour, not at every restart. Without an admin the
start warns, and the notice goes to the users listed."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

from tests.doubles.telegram_emulator import TelegramEmulator, running
from tests.rigs.chat_rig import ADMIN, TRADER

ROOT = str(Path(__file__).resolve().parents[2])
SAMPLE = Path(ROOT) / "bot" / "sample_data" / "BTC_USDT-1h.csv.gz"


async def start(config: Path, secrets: Path, tmp: Path) -> tuple[int, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PAIRPILOT_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli.main",
        "run",
        "--config",
        str(config),
        "--secrets",
        str(secrets),
        stderr=asyncio.subprocess.PIPE,
        env={**environment, "PYTHONPATH": ROOT, "TMPDIR": str(tmp)},
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, err.decode()


def refused_setup(tmp_path: Path, base: str, token: str, user: int, role: str) -> tuple[Path, Path]:
    """A config whose database is from a newer pairpilot (exit 2), and its secrets file."""
    data = tmp_path / "data"
    data.mkdir()
    with closing(sqlite3.connect(data / "pairpilot.sqlite")) as connection:
        connection.execute("PRAGMA user_version = 99")
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "{data}"\n[market_data]\nsource = "replay"\n'
        f'replay_files = {{ "BTC/USDT" = "{SAMPLE}" }}\n[telegram]\n'
        f'api_base_url = "{base}"\n[[telegram.users]]\nid = {user}\nrole = "{role}"\n'
        '[[pairs]]\npair = "BTC/USDT"\ncapital_share = 1.0\n',
        encoding="utf-8",
    )
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"PAIRPILOT_TELEGRAM_TOKEN={token}\n", encoding="utf-8")
    secrets.chmod(0o600)
    return config, secrets


async def test_a_refused_start_restarted_again_and_again_tells_the_admins_once_an_hour(
    tmp_path: Path,
) -> None:
    emulator = TelegramEmulator()
    async with running(emulator) as base:
        config, secrets = refused_setup(tmp_path, base, emulator.token, ADMIN, "admin")
        codes = [(await start(config, secrets, tmp_path))[0] for _ in range(2)]  # restarts
        assert len(emulator.to(ADMIN)) == 1
        an_hour_ago = time.time() - 3700
        markers = [
            tmp_path / name for name in os.listdir(tmp_path) if name.startswith("pairpilot-notice-")
        ]
        assert len(markers) == 1
        os.utime(markers[0], (an_hour_ago, an_hour_ago))
        codes.append((await start(config, secrets, tmp_path))[0])
    assert codes == [2, 2, 2]
    sent = [message.text for message in emulator.to(ADMIN)]
    assert len(sent) == 2
    assert sent[0] == sent[1]
    assert sent[0].startswith("pairpilot cannot start: ")


async def test_without_an_admin_the_start_warns_and_the_notice_goes_to_the_users(
    tmp_path: Path,
) -> None:
    emulator = TelegramEmulator()
    async with running(emulator) as base:
        config, secrets = refused_setup(tmp_path, base, emulator.token, TRADER, "trader")
        code, err = await start(config, secrets, tmp_path)
    assert code == 2
    assert "no admin in telegram.users" in err
    assert [sent.text for sent in emulator.to(TRADER)][0].startswith("pairpilot cannot start: ")

"""The data directory on a real small file system (a tmpfs, mounted when we may: root): full,
nearly full, read-only. The service refuses to start on a bad one naming the path; while it
runs it stops new entries before SQLite runs out of room, keeps managing exits, alerts, shows
it in the metrics and in health, stops without a crash on a full disk, and recovers."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from bot.alerts.held import HeldAlerts
from bot.alerts.outbox import AlertDispatcher, ConsoleSink
from bot.app.bootstrap import assemble_replay
from bot.app.config import TelegramSettings, TelegramUser, load_settings, telegram_options
from bot.app.run import ServeOptions
from bot.app.secret_values import Secrets
from bot.app.serve import run_service
from bot.app.startup import load_replay
from bot.cli.main import main
from bot.core.clock import SystemClock
from bot.core.domain import AlertPriority, Side
from bot.ops import data_dir
from bot.ops.telemetry import REGISTRY
from bot.trading.watch import ServiceWatch, goodbye
from handlers.frontend import telegram_factory
from storage.alerts import SqliteAlertRepository
from storage.db import LOCK_NAME, open_database
from storage.fills import SqliteFillRepository
from storage.state import SqliteStateRepository
from tests.doubles.telegram_emulator import TelegramEmulator, running
from tests.rigs.chat_rig import ADMIN, VIEWER

ROOT = str(Path(__file__).resolve().parents[2])
SAMPLE = Path(ROOT) / "bot" / "sample_data" / "BTC_USDT-1h.csv.gz"
MiB = 2**20


def mount_tmpfs(where: Path, size_mib: int) -> None:
    where.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    yield from mounted(tmp_path / "disk", 32)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """Under the 4 MiB the service needs to start at all."""
    yield from mounted(tmp_path / "tiny", 2)


@pytest.fixture
def roomy_disk(tmp_path: Path) -> Iterator[Path]:
    """Above the 64 MiB new entries need: the service starts untroubled."""
    yield from mounted(tmp_path / "disk", 80)


def mounted(disk: Path, size_mib: int) -> Iterator[Path]:
    mount_tmpfs(disk, size_mib)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int, name: str = "ballast") -> Path:
    """Write a file that leaves about ``leave`` bytes free on ``disk`` (0: until ENOSPC)."""
    ballast = disk / name
    with open(ballast, "wb") as handle:
        while data_dir.free_bytes(disk) > leave:
            try:
                handle.write(b"\0" * min(MiB, max(4096, data_dir.free_bytes(disk) - leave)))
                handle.flush()
            except OSError:
                break
    return ballast


def replay_config(tmp_path: Path, data: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "{data}"\n[market_data]\nsource = "replay"\n'
        f'replay_files = {{ "BTC/USDT" = "{SAMPLE}" }}\n'
        '[[pairs]]\npair = "BTC/USDT"\ncapital_share = 1.0\n',
        encoding="utf-8",
    )
    return config


def test_the_lock_file_is_among_the_files_checked() -> None:
    """bot/ops may not import storage/, so it spells the lock file's name itself: the same."""
    assert LOCK_NAME in data_dir.FILES


def test_the_service_refuses_a_full_or_read_only_data_dir_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = tmp_path / "tiny"
    mount_tmpfs(disk, 2)  # under the 4 MiB the service needs to start at all
    try:
        config = replay_config(tmp_path, disk / "data")
        assert main(["run", "--config", str(config)]) == 2
        error = capsys.readouterr().err
        needs = "has 2.0 MiB free; pairpilot needs at least 4 MiB"
        assert f"data_dir {disk / 'data'} {needs}" in error
        assert list((disk / "data").iterdir()) == []  # nothing half-written
        with closing(sqlite3.connect(disk / "data" / "pairpilot.sqlite")) as connection:
            connection.execute("PRAGMA journal_mode = WAL")  # what a stopped service left
            connection.execute("CREATE TABLE pair_runs (id INTEGER)")
        subprocess.run(["mount", "-o", "remount,ro,size=200m", str(disk)], check=True)
        assert main(["run", "--config", str(config)]) == 2
        assert f"data_dir {disk / 'data'} is on a read-only file system" in capsys.readouterr().err
        assert main(["health", "--config", str(config)]) == 1
        assert "FAIL  data_dir" in capsys.readouterr().out  # a check, not a traceback
        # the moment a backup matters most: the disk went read-only after an I/O error
        assert main(["backup", str(tmp_path / "copy.sqlite"), "--config", str(config)]) == 0
        with closing(sqlite3.connect(tmp_path / "copy.sqlite")) as connection:
            assert connection.execute("SELECT count(*) FROM pair_runs").fetchone() == (0,)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


async def test_a_start_refused_on_a_full_disk_is_told_to_the_admins_on_telegram(
    tmp_path: Path, tiny_disk: Path
) -> None:
    """Exit 2 is never restarted: without a word on Telegram the bot would stay down unseen."""
    emulator = TelegramEmulator()
    async with running(emulator) as base:
        config = replay_config(tmp_path, tiny_disk / "data")
        users = "".join(
            f'[[telegram.users]]\nid = {user}\nrole = "{role}"\n'
            for user, role in ((ADMIN, "admin"), (VIEWER, "viewer"))
        )
        config.write_text(
            config.read_text(encoding="utf-8") + f'[telegram]\napi_base_url = "{base}"\n' + users,
            encoding="utf-8",
        )
        secrets = tmp_path / "secrets.env"
        secrets.write_text(f"PAIRPILOT_TELEGRAM_TOKEN={emulator.token}\n", encoding="utf-8")
        secrets.chmod(0o600)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PAIRPILOT_")}
        environment["TMPDIR"] = str(tmp_path)  # the notice's once-an-hour marker
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
            env={**environment, "PYTHONPATH": ROOT},
        )
        _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    refusal = (
        f"data_dir {tiny_disk / 'data'} has 2.0 MiB free; pairpilot needs at least 4 MiB;"
        " nothing was written"
    )
    assert refusal in err.decode()
    assert [sent.text for sent in emulator.to(ADMIN)] == [f"pairpilot cannot start: {refusal}"]
    assert emulator.to(VIEWER) == []


async def test_a_filling_disk_stops_entries_keeps_exits_alerts_and_recovers(
    tmp_path: Path, small_disk: Path
) -> None:
    settings = load_settings(replay_config(tmp_path, small_disk / "data"), None)
    data_dir.prepare(settings.data_dir, min_free=8 * MiB)
    sent: list[str] = []
    async with open_database(settings.database_path) as db:
        trading = await assemble_replay(db, settings, load_replay(settings))
        alerts = SqliteAlertRepository(db)
        held = HeldAlerts(alerts, SystemClock())
        watch = ServiceWatch(
            path=settings.data_dir,
            state=SqliteStateRepository(db),
            service=trading.service,
            outbox=trading.outbox,
            held=held,
            source="replay",
            wall=SystemClock(),
            min_free=8 * MiB,
        )
        dispatcher = AlertDispatcher(alerts, ConsoleSink(sent.append), SystemClock())
        await watch.beat()
        assert trading.service.entries_blocked is None
        while not trading.engine.portfolio.positions():  # trade until a position is open
            await trading.driver.step()
        fills = SqliteFillRepository(db)
        before = len(await fills.all())

        ballast = fill(small_disk, leave=4 * MiB)
        await watch.beat()
        assert f"data_dir {settings.data_dir} has" in (trading.service.entries_blocked or "")
        assert REGISTRY.get_sample_value("pairpilot_storage_ok") == 0  # the /metrics gauge
        await dispatcher.drain()
        assert any(
            "Storage trouble" in text and str(settings.data_dir) in text and "still managed" in text
            for text in sent
        )

        for _ in range(400):  # the open position is still managed to its exit; no new entry
            await trading.driver.step()
        later = (await fills.all())[before:]
        assert [fill.side for fill in later][:1] == [Side.SELL]
        assert Side.BUY not in {fill.side for fill in later}
        assert not trading.engine.portfolio.positions()

        full = fill(small_disk, leave=0, name="more")  # SQLite cannot grow its files now
        chart = b"\0" * 4 * MiB  # more than the write-ahead log has room for

        async def push_chart() -> None:
            await trading.outbox.push("daily_report", AlertPriority.INFO, "report", chart)

        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            await push_chart()
        await watch.guarded(push_chart)()  # taken as trouble, logged once, no crash
        assert "writing to the database failed (database or disk is full)" in (
            trading.service.entries_blocked or ""
        )
        await watch.beat()
        await goodbye(dispatcher, watch)  # no crash either

        ballast.unlink()
        full.unlink()
        await watch.beat()
        assert trading.service.entries_blocked is None
        assert REGISTRY.get_sample_value("pairpilot_storage_ok") == 1
        await dispatcher.drain()
        assert "Storage OK again" in sent[-1]


async def texts_to(
    emulator: TelegramEmulator, chat: int, part: str, count: int, within: float = 15.0
) -> list[str]:
    """Waits until ``count`` messages to ``chat`` contain ``part``; returns them all."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = [sent.text for sent in emulator.to(chat) if part in sent.text]
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_a_disk_that_fills_in_one_go_reaches_the_admins_through_telegram(
    tmp_path: Path, roomy_disk: Path
) -> None:
    """No room for even one alert row: the alert goes straight to the admins (Telegram needs
    no disk), once per episode, retried while Telegram is down, and kept in the outbox as
    delivered once the disk takes writes again; the goodbye on a full disk arrives too."""
    emulator = TelegramEmulator()
    async with running(emulator) as base:
        settings = load_settings(replay_config(tmp_path, roomy_disk / "data"), None)
        settings = settings.model_copy(
            update={
                "telegram": TelegramSettings(
                    api_base_url=base,
                    users=[
                        TelegramUser(id=ADMIN, role="admin"),
                        TelegramUser(id=VIEWER, role="viewer"),
                    ],
                )
            }
        )
        secrets = Secrets(telegram_token=emulator.token)
        stop = asyncio.Event()
        chat = telegram_factory(telegram_options(settings, secrets))
        beats = ServeOptions(heartbeat_seconds=0.3)
        service = asyncio.create_task(
            run_service(settings, secrets, stop=stop, chat=chat, options=beats)
        )
        assert await texts_to(emulator, ADMIN, "pairpilot started", 1, within=60)  # a slow CI
        await asyncio.sleep(0.5)
        emulator.is_down = True  # the first sends fail: the alert is held and retried
        ballast = fill(roomy_disk, leave=0)
        await asyncio.sleep(1.5)
        emulator.is_down = False
        trouble = await texts_to(emulator, ADMIN, "Storage trouble", 1)
        assert len(trouble) == 1
        assert "New entries are off" in trouble[0]
        assert "exits cannot be booked" in trouble[0]  # 0 bytes free: no write, so no exit
        assert str(settings.data_dir) in trouble[0]
        assert not [sent for sent in emulator.to(VIEWER) if "Storage" in sent.text]
        await asyncio.sleep(1.5)  # beats and failing writes go on: still one alert
        assert len(await texts_to(emulator, ADMIN, "Storage trouble", 2, within=0)) == 1

        ballast.unlink()
        assert await texts_to(emulator, ADMIN, "Storage OK again", 1)
        await asyncio.sleep(0.5)  # the held alert is stored as delivered: never sent again
        assert len(await texts_to(emulator, ADMIN, "Storage trouble", 2, within=0)) == 1
        with closing(sqlite3.connect(settings.database_path)) as connection:
            stored = connection.execute(
                "SELECT delivered_at IS NOT NULL FROM alerts WHERE text LIKE 'Storage trouble%'"
            ).fetchall()
        assert stored == [(1,)]

        fill(roomy_disk, leave=0)  # a second episode: alerted again, once
        assert len(await texts_to(emulator, ADMIN, "Storage trouble", 2)) == 2
        stop.set()
        await asyncio.wait_for(service, timeout=20)
    assert emulator.to(ADMIN)[-1].text == "pairpilot stopped"

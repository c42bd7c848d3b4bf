"""`pairpilot run` as an operator deploys it: Telegram and /metrics on, JSON logs, a secrets
file, and a SIGTERM that must end it within 5 s with the goodbye delivered; `pairpilot health`
as the watchdog runs it; the data directory in trouble; backups."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import generate_latest

from bot.app.bootstrap import assemble_replay
from bot.app.config import load_settings
from bot.app.gauges import restore_gauges_early
from bot.app.run import start_watch
from bot.app.startup import load_replay
from bot.cli.main import main
from bot.core.domain import AlertPriority, EquitySnapshot, PairRun, RunState
from bot.market.candle_files import read_candle_file
from bot.ops.health import HEARTBEAT_KEY, heartbeat_record
from bot.ops.telemetry import EQUITY, HALTED, REGISTRY
from storage.alerts import SqliteAlertRepository
from storage.db import UnusableDatabase, latest_schema, migrations, open_database
from storage.equity import SqliteEquityRepository
from storage.state import SqliteStateRepository
from tests.doubles.fake_exchange import FakeBinance, Fault, binance_urls, serve
from tests.doubles.telegram_emulator import TelegramEmulator, running
from tests.rigs.chat_rig import ADMIN

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "bot" / "sample_data" / "BTC_USDT-1h.csv.gz"
SHUTDOWN_LIMIT = 5.0
STOP_MARGIN = 8.0  # seconds a stop may take beyond the exchange call in flight (a loaded CI)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def metric(text: str, name: str) -> float:
    """The value of the unlabelled sample ``name`` in a Prometheus text exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


async def test_sigterm_with_telegram_and_metrics_on_stops_within_5_s(tmp_path: Path) -> None:
    emulator = TelegramEmulator()
    port = free_port()
    async with running(emulator) as base:
        config = tmp_path / "pairpilot.toml"
        config.write_text(
            f'data_dir = "state"\n[market_data]\nsource = "replay"\nreplay_speed = 360000\n'
            f'replay_files = {{ "BTC/USDT" = "{SAMPLE}" }}\n'
            f"[metrics]\nport = {port}\n"
            f'[telegram]\napi_base_url = "{base}"\n'
            f'[[telegram.users]]\nid = {ADMIN}\nrole = "admin"\n'
            '[[pairs]]\npair = "BTC/USDT"\ncapital_share = 1.0\n',
            encoding="utf-8",
        )
        secrets = tmp_path / "secrets.env"
        secrets.write_text(f"PAIRPILOT_TELEGRAM_TOKEN={emulator.token}\n", encoding="utf-8")
        secrets.chmod(0o644)  # readable by everyone: warned about
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PAIRPILOT_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli.main",
            "--log-format",
            "json",
            "run",
            "--config",
            str(config),
            "--secrets",
            str(secrets),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**environment, "PYTHONPATH": str(ROOT)},
        )
        try:
            exposition = await scrape_until_trading(process, port)
        except BaseException:
            process.kill()
            raise
        assert metric(exposition, "pairpilot_equity") > 0
        assert metric(exposition, "pairpilot_ticks_total") > 0
        assert "pairpilot_tick_seconds_bucket" in exposition
        assert "pairpilot_outbox_backlog" in exposition
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
        took = time.monotonic() - signalled
        print(f"SIGTERM to exit with Telegram and metrics on: {took:.2f} s")
        assert process.returncode == 0, err.decode()[-2000:]
        assert took < SHUTDOWN_LIMIT, f"took {took:.2f} s to stop"
        texts = [message.text for message in emulator.to(ADMIN)]
        assert any("pairpilot started" in text for text in texts)
        assert texts[-1] == "pairpilot stopped"  # flushed before polling stopped
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert len(lines) == len(err.decode().splitlines())  # every line is one JSON object
    warnings = [line for line in lines if "readable by" in line["message"]]
    assert warnings
    assert "chmod 600" in warnings[0]["message"]
    assert warnings[0]["level"] == "WARNING"
    decisions = [line for line in lines if line.get("event") == "decision"]
    actions = {line["action"] for line in decisions}
    assert {"enter", "exit", "hold"} <= actions
    assert all(line["pair"] == "BTC/USDT" and line["reason"] for line in decisions)
    everything = out.decode() + err.decode()
    assert emulator.token not in everything  # the token came from the file: still masked


async def scrape_until_trading(process: asyncio.subprocess.Process, port: int) -> str:
    """/metrics once the service has filled an entry and an exit."""
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.returncode is None, "the service ended early"
            try:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    text = await response.text()
                if metric(text, 'pairpilot_orders_total{status="filled"}') >= 2:  # in and out
                    return text
            except (aiohttp.ClientError, AssertionError):
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the service never reported two filled orders on /metrics")


# --- health: what is wrong, and whether a restart would fix it (issue 21) ---------------------


def write_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "config.toml"
    pairs = '[[pairs]]\npair = "BTC/USDT"\ncapital_share = 0.5\n'
    config.write_text(f"{extra}\n{pairs}{pairs.replace('BTC', 'ETH')}", encoding="utf-8")
    return config


def seed(
    database: Path, beat: dict[str, object] | None, alert_age: timedelta | None = None
) -> None:
    """The database as a service leaves it: its heartbeat (built as the service builds it)
    and, optionally, an alert waiting since ``alert_age`` ago."""

    async def write() -> None:
        async with open_database(database) as db:
            await db.execute("DELETE FROM alerts")
            if beat is not None:
                await SqliteStateRepository(db).set(HEARTBEAT_KEY, beat, datetime.now(UTC))
            if alert_age is not None:
                await SqliteAlertRepository(db).add(
                    "trade", AlertPriority.TRADE, "x", datetime.now(UTC) - alert_age
                )

    asyncio.run(write())


def beat(
    *,
    ago: timedelta = timedelta(seconds=10),
    up: timedelta = timedelta(hours=1),
    seen: dict[str, timedelta | None] | None = None,
    source: str = "exchange",
    asked: timedelta | None = timedelta(minutes=20),
    **trouble: str | None,
) -> dict[str, object]:
    """``seen``: each pair's last new candle, that long ago; ``asked``: when the ticks last
    asked for candles (None: never)."""
    now = datetime.now(UTC)
    runs = [
        PairRun(
            id=i,
            pair=pair,
            strategy="ema_cross",
            timeframe="1h",
            params={},
            capital_share=0.5,
            state=RunState.RUNNING,
            created_at=now - timedelta(days=9),
            updated_at=now - timedelta(days=9),
        )
        for i, pair in enumerate(seen or {})
    ]
    ticks = {pair: now - age for pair, age in (seen or {}).items() if age is not None}
    trouble = {"storage_trouble": None, "exchange_trouble": None, **trouble}
    asks = {pair: now - asked for pair in seen or {}} if asked is not None else {}
    return heartbeat_record(
        now=now - ago,
        started_at=now - up,
        source=source,
        runs=runs,
        last_ticks=ticks,
        last_asked=asks,
        trouble=trouble,
    )


def health(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["health", "--config", str(config)])
    return code, capsys.readouterr().out


FRESH = {"BTC/USDT": timedelta(minutes=20), "ETH/USDT": timedelta(minutes=20)}
STUCK = {"BTC/USDT": timedelta(minutes=20), "ETH/USDT": timedelta(hours=5)}


DAY, YEARS = timedelta(days=1), timedelta(days=400)
READ_ONLY = "data_dir /x is on a read-only file system"


@pytest.mark.parametrize(
    ("state", "alert_age", "code", "words"),
    [
        (lambda: beat(seen=FRESH), None, 0, "ok    pair ETH/USDT: 1h, last new candle 20 min ago"),
        (lambda: None, None, 1, "no heartbeat recorded yet"),
        (lambda: beat(ago=timedelta(minutes=10), seen=FRESH), None, 3, "no heartbeat for 10 min"),
        (lambda: beat(seen=FRESH) | {"stopped_at": 1}, None, 1, "stopped on purpose"),
        # a replay's candle and alert times are simulated: years old, and no alarm
        (
            lambda: beat(seen={"BTC/USDT": YEARS}, source="replay"),
            YEARS,
            0,
            "candle freshness is not checked",
        ),
        # back after a day of downtime: no candle since the restart is no alarm yet
        (
            lambda: beat(up=timedelta(minutes=3), seen={"BTC/USDT": DAY, "ETH/USDT": None}),
            None,
            0,
            "ok    pair ETH/USDT: 1h, none yet",
        ),
        # one pair quiet among pairs that tick, asked at every candle: the market, not us
        (
            lambda: beat(seen=STUCK, up=DAY),
            None,
            1,
            "FAIL  pair ETH/USDT: no new candle for 300 min (expected every 60), though the "
            "service asks at every candle: the exchange has none",
        ),
        # ... not even asked for hours: the tick job is stuck, a restart fixes that
        (
            lambda: beat(seen=STUCK, up=DAY, asked=timedelta(hours=5)),
            None,
            3,
            "FAIL  pair ETH/USDT: no new candle for 300 min (expected every 60), and the service "
            "has not asked for them since 300 min: its tick job is stuck",
        ),
        # a heartbeat gone stale: what it last reported is history, the service is stuck
        (
            lambda: beat(ago=timedelta(minutes=30), seen=FRESH, storage_trouble=READ_ONLY),
            None,
            3,
            "no heartbeat for 30 min",
        ),
        (
            lambda: beat(seen=STUCK, up=DAY, exchange_trouble="binance timed out"),
            None,
            1,
            "the exchange is failing: binance timed out",
        ),
        (
            lambda: beat(seen=FRESH),
            timedelta(minutes=30),
            1,
            "FAIL  alerts: 1 alert(s) waiting, the oldest for 30 min: Telegram is unreachable",
        ),
        (lambda: beat(seen=FRESH, storage_trouble=READ_ONLY), None, 1, "read-only file system"),
    ],
)
def test_health_says_what_is_wrong_and_exits_3_only_when_a_restart_would_fix_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    state: Callable[[], dict[str, object] | None],
    alert_age: timedelta | None,
    code: int,
    words: str,
) -> None:
    config = write_config(tmp_path)
    seed(tmp_path / "data" / "pairpilot.sqlite", state(), alert_age)  # built now: times age
    got, out = health(config, capsys)
    assert (got, words in out) == (code, True), out


def test_health_without_a_database_says_so_and_advises_no_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got, out = health(write_config(tmp_path), capsys)
    assert got == 1
    assert "FAIL  database: no database at" in out
    assert not (tmp_path / "data" / "pairpilot.sqlite").exists()  # and it creates none


@pytest.mark.parametrize("mode", ["live", "webhook"])
def test_health_needs_no_secrets_in_live_or_webhook_mode(tmp_path: Path, mode: str) -> None:
    webhook = '[telegram.webhook]\nurl = "https://bot.example.com/hook"'
    extra = {"live": 'mode = "live"', "webhook": webhook}[mode]
    config = write_config(tmp_path, extra)
    seed(tmp_path / "data" / "pairpilot.sqlite", beat(seen=FRESH))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PAIRPILOT_")}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "health", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**environment, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def previous_schema() -> int:
    """The schema version before the newest: migration numbers may have gaps."""
    return sorted(number for number, _ in migrations())[-2]


def older_database(path: Path, version: int) -> None:
    """A database as an older pairpilot left it: migrated up to ``version`` only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
        for number, script in migrations():
            if number <= version:
                connection.executescript(f"{script}\nPRAGMA user_version = {number};")


def test_health_opens_the_database_read_only_and_never_migrates_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "data" / "pairpilot.sqlite"
    older_database(database, previous_schema())
    before, files = database.read_bytes(), sorted(os.listdir(database.parent))
    got, out = health(write_config(tmp_path), capsys)
    assert sorted(os.listdir(database.parent)) == files  # not even a -wal or -shm created
    assert f"the service migrates it to {latest_schema()} at its next start" in out
    assert got == 1  # no heartbeat: that older version wrote none
    assert database.read_bytes() == before
    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == previous_schema()


def test_the_service_refuses_a_schema_newer_than_it_knows_and_leaves_it_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "data" / "pairpilot.sqlite"
    older_database(database, latest_schema())
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("PRAGMA user_version = 99")
    before = database.read_bytes()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[market_data]\nsource = "replay"\nreplay_files = {{ "BTC/USDT" = "{SAMPLE}" }}\n',
        encoding="utf-8",
    )
    assert main(["run", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert f"database {database} has schema version 99, newer than this pairpilot" in error
    assert database.read_bytes() == before
    got, out = health(config, capsys)
    assert (got, "FAIL  schema: database") == (1, out.splitlines()[2][:22])


def short_replay(tmp_path: Path, candles: int) -> Path:
    """A replay config on the first ``candles`` real candles: the service ends by itself."""
    rows = gzip.decompress(SAMPLE.read_bytes()).decode().splitlines()[: candles + 1]
    data = tmp_path / "BTC_USDT-1h.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        'data_dir = "state"\n[market_data]\nsource = "replay"\nreplay_speed = '
        f'360000\nreplay_files = {{ "BTC/USDT" = "{data}" }}\n[[pairs]]\n'
        'pair = "BTC/USDT"\ncapital_share = 1.0\n',
        encoding="utf-8",
    )
    return config


UTC_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_json_logs_are_json_only_with_utc_times_alerts_start_and_stop(tmp_path: Path) -> None:
    config = short_replay(tmp_path, 120)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PAIRPILOT_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli.main",
            "--log-format",
            "json",
            "run",
            "--config",
            str(config),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**environment, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == ""  # no Telegram: the alerts are log records too, not bare lines
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert all(UTC_STAMP.match(line["time"]) for line in lines), lines[0]["time"]
    events = [line.get("event") for line in lines]
    assert events[0] == "start"
    assert events[-1] == "stop"
    assert "state" in lines[0]["message"]  # names its data_dir
    alerts = [line["message"] for line in lines if line.get("event") == "alert"]
    assert any("pairpilot started" in text for text in alerts)
    assert "pairpilot stopped" in alerts[-1]


def test_text_logs_carry_utc_times_and_json_errors_stay_json(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("mode = 'sideways'\n", encoding="utf-8")
    for form in ("text", "json"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot.cli.main",
                "--log-format",
                form,
                "--log-level",
                "INFO",
                "run",
                "--config",
                str(config),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert result.returncode == 2
        if form == "json":
            (line,) = [json.loads(text) for text in result.stderr.splitlines()]
            assert "mode = 'sideways'" in line["message"]
            assert UTC_STAMP.match(line["time"])
        else:
            assert "pairpilot: error: config file" in result.stderr
    logged = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli.main",
            "--log-level",
            "INFO",
            "run",
            "--config",
            str(short_replay(tmp_path, 60)),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    first = logged.stderr.splitlines()[0]
    assert UTC_STAMP.match(first.split()[0]), first
    assert "pairpilot 0.1.0 starting: paper mode on replay candles" in first


async def test_the_gauges_read_the_books_at_start_instead_of_zero(tmp_path: Path) -> None:
    settings = load_settings(short_replay(tmp_path, 120), None)
    now = datetime.now(UTC)
    async with open_database(settings.database_path) as db:  # what a previous run left
        trading = await assemble_replay(db, settings, load_replay(settings))
        await SqliteEquityRepository(db).add(EquitySnapshot(now, 1234.5, 1000.0))
        await trading.engine.guard.halt("drawdown over 15%", now)
    EQUITY.set(0)
    HALTED.set(0)
    await restore_gauges_early(settings.database_path)  # before markets load and reconcile
    early = generate_latest(REGISTRY).decode()
    assert (metric(early, "pairpilot_equity"), metric(early, "pairpilot_halted")) == (1234.5, 1)
    EQUITY.set(0)
    async with open_database(settings.database_path) as db:  # the restart
        trading = await assemble_replay(db, settings, load_replay(settings))
        await start_watch(db, settings, trading.service, trading.engine, trading.outbox, "replay")
    exposition = generate_latest(REGISTRY).decode()
    assert metric(exposition, "pairpilot_equity") == 1234.5
    assert metric(exposition, "pairpilot_halted") == 1
    assert metric(exposition, "pairpilot_storage_ok") == 1


@pytest.mark.parametrize("damage", ["garbage", "empty", "directory", "locked"])
def test_health_on_a_database_it_cannot_read_names_it_instead_of_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    database = tmp_path / "data" / "pairpilot.sqlite"
    older_database(database, latest_schema())
    if damage == "garbage":
        database.write_bytes(b"\x00not a database" * 64)
    elif damage == "empty":
        database.write_bytes(b"")
    elif damage == "directory":
        database.unlink()
        database.mkdir()
    holder = sqlite3.connect(":memory:")
    if damage == "locked":  # another process holds it exclusively
        holder = sqlite3.connect(database, isolation_level=None)
        holder.execute("PRAGMA journal_mode = DELETE")
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
    try:
        got, out = health(write_config(tmp_path), capsys)
    finally:
        holder.close()
    assert got == 1, out
    assert out.startswith("unhealthy: a restart would not help\n")
    failed = ("FAIL  service:" if damage == "locked" else "FAIL  database:", "FAIL  schema:")
    assert any(line.startswith(failed) for line in out.splitlines()), out


@pytest.mark.parametrize("form", ["text", "json"])
def test_the_service_on_a_corrupt_database_exits_2_naming_it(tmp_path: Path, form: str) -> None:
    config = short_replay(tmp_path, 60)
    database = tmp_path / "state" / "pairpilot.sqlite"
    database.parent.mkdir()
    database.write_bytes(b"\x00not a database" * 64)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli.main",
            "--log-format",
            form,
            "run",
            "--config",
            str(config),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2  # never restarted by systemd (RestartPreventExitStatus=2)
    assert f"database {database} cannot be used: file is not a database" in result.stderr
    assert "Traceback" not in result.stderr
    if form == "json":
        assert all(json.loads(line) for line in result.stderr.splitlines())


def test_no_command_migrates_the_database_under_a_running_older_service(tmp_path: Path) -> None:
    database = tmp_path / "data" / "pairpilot.sqlite"
    older_database(database, previous_schema())
    config = write_config(tmp_path)
    holder = subprocess.Popen(  # the running (older) service holds the data directory
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
            "f.write(sys.argv[2]); f.flush(); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); time.sleep(120)",
            str(database.parent / "pairpilot.lock"),
            str(os.getpid()),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli.main", "data", "list", "--config", str(config)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        # a pid of another namespace can equal ours (both pid 1 under Docker): no matter
        with pytest.raises(UnusableDatabase, match="is an older version: stop it"):
            asyncio.run(open_database(database).__aenter__())
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2, result.stderr
    assert f"(pid {os.getpid()}, perhaps in another container) is an older version" in (
        result.stderr
    )
    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == previous_schema()


def test_telegram_users_without_a_token_are_warned_about_and_a_secrets_directory_refused(
    tmp_path: Path,
) -> None:
    config = short_replay(tmp_path, 30)
    config.write_text(config.read_text() + '[[telegram.users]]\nid = 1\nrole = "admin"\n')
    empty = tmp_path / "secrets.env"
    empty.write_text("", encoding="utf-8")
    empty.chmod(0o600)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PAIRPILOT_")}

    def run(secrets: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "bot.cli.main",
                "--log-format",
                "json",
                "run",
                "--config",
                str(config),
                "--secrets",
                str(secrets),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**environment, "PYTHONPATH": str(ROOT)},
        )

    result = run(empty)
    assert result.returncode == 0, result.stderr[-2000:]
    warned = [json.loads(line) for line in result.stderr.splitlines() if "Telegram is off" in line]
    assert warned[0]["level"] == "WARNING"
    assert (
        "telegram.users lists 1 user(s) but PAIRPILOT_TELEGRAM_TOKEN is not set"
        in (warned[0]["message"])
    )
    (tmp_path / "secrets.d").mkdir()
    refused = run(tmp_path / "secrets.d")
    assert refused.returncode == 2
    assert "is a directory; expected a KEY=VALUE file" in refused.stderr


async def test_sigterm_in_a_multi_pair_exchange_outage_ends_the_tick_between_pairs(
    tmp_path: Path,
) -> None:
    """Each candle request times out (ccxt's timeout 1 s here, 10 s by default) and is retried
    5 times: a tick over 3 pairs would last ~40 s, past any stop timeout. A stop asked ends the
    tick at the next pair and the retries at once: bounded by one call, whatever the pairs."""
    candles = read_candle_file(SAMPLE)
    fake = FakeBinance(now_ms=int(candles["timestamp"].iloc[-1]) + 60_000)
    pairs = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    for pair in pairs:
        fake.add_candles(pair.replace("/", ""), "1h", candles)
    async with serve(fake) as base:
        config = tmp_path / "pairpilot.toml"
        urls = toml_inline(binance_urls(base))
        config.write_text(
            'data_dir = "state"\n[market_data]\nsource = "exchange"\n'
            '[exchange]\nname = "binance"\n'
            f"ccxt_config = {{ timeout = 1000, urls = {{ api = {urls} }} }}\n"
            + "".join(f'[[pairs]]\npair = "{pair}"\ncapital_share = 0.3\n' for pair in pairs),
            encoding="utf-8",
        )
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PAIRPILOT_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.rigs.slow_tick_child",
            "--log-format",
            "json",
            "run",
            "--config",
            str(config),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**environment, "PYTHONPATH": str(ROOT)},
        )
        try:
            await until(lambda: sum(path.endswith("/klines") for path, _ in fake.requests) >= 3)
            await asyncio.sleep(1.5)  # primed; ticks run every second from now on
            fake.faults.append(Fault("/api/v3/klines", delay=3.0, times=10_000))
            asked = len(fake.requests)
            await until(
                lambda: any(
                    path.endswith("/klines") and query["symbol"] == "BTCUSDT"
                    for path, query in fake.requests[asked:]
                )
            )  # the first pair
        except BaseException:
            process.kill()
            raise
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        out, err = await asyncio.wait_for(process.communicate(), timeout=90)
        took = time.monotonic() - signalled
        print(f"SIGTERM in a 3-pair exchange outage: stopped in {took:.2f} s")
        assert process.returncode == 0, err.decode()[-2000:]
        assert took < 1.0 + STOP_MARGIN, f"took {took:.2f} s to stop"
    assert "pairpilot stopped" in out.decode() + err.decode()
    assert "ETH/USDT and the pairs after it not ticked" in err.decode()  # between pairs
    with closing(sqlite3.connect(tmp_path / "state" / "pairpilot.sqlite")) as connection:
        beat = connection.execute(
            "SELECT value FROM bot_state WHERE key = ?", (HEARTBEAT_KEY,)
        ).fetchone()
        assert json.loads(beat[0]).get("stopped_at")  # a stop on purpose, recorded
        assert connection.execute("SELECT count(*) FROM orders").fetchone() == (0,)


def toml_inline(value: object) -> str:
    """``value`` (strings and tables of them) as a TOML inline value."""
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_inline(v)}" for k, v in value.items()) + " }"
        )
    return json.dumps(value)


async def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.sleep(0.05)

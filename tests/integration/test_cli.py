"""The `pairpilot` command as a user runs it: a real process, real files."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from datetime import datetime
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "bot" / "sample_data" / "BTC_USDT-1h.csv.gz"
HEADER = "timestamp,open,high,low,close,volume\n"


def pairpilot(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(SAMPLE.parents[2])},
        check=False,
    )


def test_backtest_json_has_the_documented_schema(tmp_path: Path) -> None:
    result = pairpilot(
        "backtest",
        "--data",
        str(SAMPLE),
        "--strategy",
        "ema_cross",
        "--param",
        "fast=12",
        "--param",
        "slow=26",
        "--fee",
        "0.001",
        "--balance",
        "1000",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert {"metrics", "trades"} <= set(document)
    metrics = document["metrics"]
    for key in ("total_return", "max_drawdown", "trades", "win_rate", "fees", "end_equity"):
        assert isinstance(metrics[key], int | float)
    assert metrics["trades"] == len(document["trades"]) > 10
    for trade in document["trades"]:
        assert set(trade) >= {
            "pair",
            "entry_time",
            "exit_time",
            "entry_price",
            "exit_price",
            "amount",
            "pnl",
            "fee",
        }
        assert trade["pair"] == "BTC/USDT"
        entry = datetime.fromisoformat(trade["entry_time"])
        assert entry.utcoffset() is not None
        assert entry.utcoffset().total_seconds() == 0
        assert datetime.fromisoformat(trade["exit_time"]) > entry
    assert {trade["exit_reason"] for trade in document["trades"]} == {"signal"}
    curve = document["equity_curve"]
    assert 100 < len(curve) <= 500
    assert curve[-1]["equity"] == metrics["end_equity"]
    assert datetime.fromisoformat(curve[0]["time"]) < datetime.fromisoformat(curve[-1]["time"])
    for key in (
        "cagr",
        "sharpe",
        "sortino",
        "calmar",
        "profit_factor",
        "expectancy",
        "avg_holding_hours",
        "exposure",
        "buy_and_hold_return",
        "max_drawdown_hours",
    ):
        assert isinstance(metrics[key], float), key
    total_pnl = sum(trade["pnl"] for trade in document["trades"])
    assert metrics["end_equity"] - 1000 == pytest.approx(total_pnl, abs=60)  # an open trade at most
    # Its receipt, in the default config's database, and nothing else (tests/integration/
    # test_receipts.py).
    assert len(document["receipt"]) == 6
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.sqlite")) == [
        "data/pairpilot.sqlite"
    ]
    assert [path.name for path in tmp_path.iterdir()] == ["data"]


def test_backtest_table_and_chart(tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    result = pairpilot("backtest", "--data", str(SAMPLE), "--chart", str(chart), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "BTC/USDT 1h ema_cross" in result.stdout
    assert "max drawdown" in result.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_backtest_on_a_terminal_shows_its_stages_then_clears_the_bar(tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    terminal, child_end = pty.openpty()
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli.main",
            "backtest",
            "--data",
            str(SAMPLE),
            "--chart",
            str(chart),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=child_end,
        env={**os.environ, "PYTHONPATH": str(SAMPLE.parents[2])},
    )
    os.close(child_end)
    table = process.stdout.read().decode() if process.stdout else ""
    assert process.wait(timeout=120) == 0
    shown = b""
    while chunk := _read_terminal(terminal):
        shown += chunk
    os.close(terminal)
    drawn = shown.decode()
    positions = [
        drawn.index(f"{stage}:") for stage in ("reading candles", "trading", "drawing", "writing")
    ]
    assert positions == sorted(positions)
    assert "3/4" in drawn
    last_line = drawn.rstrip("\r\n").rsplit("\r", 1)[-1]
    assert last_line.strip() == ""  # the bar is wiped; only the result stays on screen
    assert "final equity" in table
    assert chart.is_file()


def _read_terminal(terminal: int) -> bytes:
    try:
        return os.read(terminal, 65536)
    except OSError:  # EIO: the child's end is closed and everything was read
        return b""


def bad_file(tmp_path: Path, case: str, text: str) -> str:
    path = tmp_path / "input" / case / "BTC_USDT-1h.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def unnamed_copy(tmp_path: Path) -> str:
    path = tmp_path / "input" / "prices.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SAMPLE.read_bytes())
    return str(path)


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda p: ["--data", str(p / "missing.csv")], "does not exist"),
        (lambda p: ["--data", unnamed_copy(p)], "cannot tell the pair from prices.csv.gz"),
        (lambda p: ["--data", bad_file(p, "m.csv", "a,b\n1,2\n")], "has header"),
        (
            lambda p: [
                "--data",
                bad_file(p, "u.csv", HEADER + "7200000,1,1,1,1,1\n3600000,1,1,1,1,1\n"),
            ],
            "not sorted",
        ),
        (
            lambda p: ["--data", bad_file(p, "d.csv", HEADER + "3600000,1,1,1,1,1\n" * 2)],
            "duplicated timestamp",
        ),
        (lambda p: ["--data", str(SAMPLE), "--strategy", "nope"], "unknown strategy 'nope'"),
        (lambda p: ["--data", str(SAMPLE), "--param", "fast=zero"], "expected a whole number"),
        (lambda p: ["--data", str(SAMPLE), "--param", "slow=9999"], "out of bounds"),
        (lambda p: ["--data", str(SAMPLE), "--param", "fast"], "expected KEY=VALUE"),
        (lambda p: ["--data", str(SAMPLE), "--balance", "-5"], "--balance -5.0"),
        (
            lambda p: [
                "--data",
                bad_file(
                    p, "short", HEADER + "".join(f"{3_600_000 * i},1,1,1,1,1\n" for i in range(20))
                ),
            ],
            "ema_cross needs at least 28 candles (warmup 27 plus one to trade on)",
        ),
        (lambda p: ["--data", str(SAMPLE), "--since", "2025-07-01"], "go with stored candles"),
        (lambda p: ["--pair", "BTC/USDT"], "give --data FILE, or --pair and --timeframe"),
        (lambda p: ["--pair", "BTC/USDT", "--timeframe", "1h"], "no candles stored yet"),
    ],
)
def test_bad_backtest_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, make_args: object, message: str
) -> None:
    args = make_args(tmp_path)  # type: ignore[operator]
    before = sorted(tmp_path.rglob("*"))
    result = pairpilot("backtest", *args, "--chart", str(tmp_path / "c.png"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_run_with_a_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[paper]\nfee = 2\n")
    result = pairpilot("run", "--config", str(tmp_path / "bad.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "paper.fee = 2" in result.stderr
    assert not (tmp_path / "data").exists()


def test_demo_runs_offline_shows_trades_and_writes_a_chart(tmp_path: Path) -> None:
    # The timeout guards against a hang; the demo's speed is bench/RESULTS.md's.
    result = pairpilot("demo", "--output", str(tmp_path / "out"), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(" BUY " in line for line in lines) > 20
    assert sum(" SELL " in line for line in lines) > 20
    assert any(line.strip().startswith("trades closed:") for line in lines)
    assert any(line.strip().startswith("max drawdown:") for line in lines)
    chart = tmp_path / "out" / "equity.png"
    assert f"equity chart:   {chart}" in result.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with sqlite3.connect(tmp_path / "out" / "pairpilot.sqlite") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        undelivered = connection.execute("SELECT count(*) FROM alerts WHERE delivered_at IS NULL")
        assert undelivered.fetchone() == (0,)


def write_run_config(tmp_path: Path, speed: int) -> Path:
    config = tmp_path / "pairpilot.toml"
    config.write_text(
        f'data_dir = "state"\n[market_data]\nsource = "replay"\nreplay_speed = {speed}\n'
        f'replay_files = {{ "BTC/USDT" = "{SAMPLE}" }}\n'
        '[[pairs]]\npair = "BTC/USDT"\ncapital_share = 1.0\n'
    )
    return config


def replay_position(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        row = connection.execute("SELECT value FROM bot_state WHERE key = 'replay.clock'")
        return int(row.fetchone()[0])


def test_run_stops_cleanly_on_ctrl_c_and_resumes_where_it_stopped(tmp_path: Path) -> None:
    """SIGINT here; SIGTERM with Telegram and metrics on is test_operations'."""
    signum = signal.SIGINT
    config = write_run_config(tmp_path, speed=360_000)  # 100 candles a second
    database = tmp_path / "state" / "pairpilot.sqlite"
    stopped_at = []
    for _ in range(2):
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "run", "--config", str(config)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(SAMPLE.parents[2])},
        )
        deadline = time.monotonic() + 60
        previous = stopped_at[-1] if stopped_at else None
        while not _moved_past(database, previous):  # this run is up and replaying
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1.0)
        process.send_signal(signum)
        signalled = time.monotonic()
        out, err = process.communicate(timeout=15)
        assert time.monotonic() - signalled < 5, "did not stop within 5 s"
        assert process.returncode == 0, err
        assert "pairpilot stopped" in out
        stopped_at.append(replay_position(database))
        with sqlite3.connect(database) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            statuses = connection.execute("SELECT DISTINCT status FROM orders").fetchall()
            assert set(statuses) <= {("filled",)}
    assert stopped_at[1] > stopped_at[0]  # the second run carried on, it did not start over


def _moved_past(database: Path, previous: int | None) -> bool:
    """The replay has a position, later than ``previous`` when one is given."""
    if not database.exists():
        return False
    try:
        position = replay_position(database)
    except (sqlite3.Error, TypeError):
        return False
    return previous is None or position > previous

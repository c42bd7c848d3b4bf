"""`pairpilot strategy list` shows each strategy's stored check (issue 18): passed, FAILED
naming the check, changed since its check (the file was edited), or not checked; read from the
config's real SQLite database, which listing never creates."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli.main import main
from tests.integration.test_strategy_check_cli import user_fixtures
from tests.rigs.sample_head import sample_head
from tests.strategy_fixtures import NextClose, ShortWarmup


def listed(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, str]:
    """Each strategy's check status as `strategy list` prints it, by name."""
    capsys.readouterr()
    assert main(["strategy", "list", *args]) == 0
    statuses = {}
    for line in capsys.readouterr().out.splitlines():
        if "  check: " in line and not line.startswith(" "):
            statuses[line.split()[0]] = line.split("  check: ")[1]
    return statuses


def test_without_a_database_every_strategy_is_not_checked_and_none_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    user_fixtures(tmp_path)
    statuses = listed(capsys)
    assert {"ema_cross", "rsi", ShortWarmup.name} <= set(statuses)
    assert set(statuses.values()) == {"not checked"}
    assert not (tmp_path / "data").exists()


def test_passed_failed_changed_and_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    file = user_fixtures(tmp_path)
    head = str(sample_head(tmp_path / "candles"))  # what is listed, not the check, is the point
    assert main(["strategy", "check", "bollinger_breakout", "--data", head]) == 0
    assert main(["strategy", "check", ShortWarmup.name, "--data", head]) == 1
    assert main(["strategy", "check", NextClose.name, "--data", head]) == 1
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    database = tmp_path / "data" / "pairpilot.sqlite"
    before = database.read_bytes()

    statuses = listed(capsys)
    assert statuses["bollinger_breakout"].startswith(f"passed {today} (defaults; BTC/USDT 1h, ")
    assert statuses[ShortWarmup.name] == (
        f"FAILED (warm-up, defaults) {today}: sticks until the source changes"
    )
    assert statuses[NextClose.name].startswith("FAILED (look-ahead")
    assert statuses["rsi"] == "not checked"

    file.write_text(file.read_text() + "\n# edited after its check\n")
    statuses = listed(capsys)
    assert statuses[ShortWarmup.name] == "changed since its check"
    assert statuses[NextClose.name] == "changed since its check"
    assert statuses["bollinger_breakout"].startswith(f"passed {today} (defaults; BTC/USDT 1h, ")
    assert database.read_bytes() == before  # read only


def test_a_config_names_the_database_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "elsewhere" / "config.toml"
    config.parent.mkdir()
    config.write_text('data_dir = "mine"\n', encoding="utf-8")
    head = str(sample_head(tmp_path / "candles"))
    assert (
        main(["strategy", "check", "bollinger_breakout", "--data", head, "--config", str(config)])
        == 0
    )
    assert (tmp_path / "elsewhere" / "mine" / "pairpilot.sqlite").is_file()
    assert listed(capsys, "--config", str(config))["bollinger_breakout"].startswith("passed ")
    assert listed(capsys)["bollinger_breakout"] == "not checked"
    assert not (tmp_path / "data").exists()


def test_a_database_from_before_strategy_checks_is_read_as_not_checked_and_left_as_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "data" / "pairpilot.sqlite"
    database.parent.mkdir()
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE fills (id INTEGER PRIMARY KEY)")
    connection.close()
    before = database.read_bytes()
    assert set(listed(capsys).values()) == {"not checked"}
    assert database.read_bytes() == before
    assert sorted(path.name for path in database.parent.iterdir()) == ["pairpilot.sqlite"]

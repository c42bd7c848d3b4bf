"""`pairpilot backtest` says in one line when its strategy has not passed its check at its
current source (issue 18): research runs anyway, live trading would refuse it. The checks are
read from the config's database, opened read only (with none yet: not checked)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.app.config import load_settings
from bot.cli.main import main
from storage.db import open_database
from tests.integration.test_cli import SAMPLE
from tests.rigs.checked import record_check


async def test_backtest_prints_one_note_line_when_the_strategy_has_not_passed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('data_dir = "data"\n', encoding="utf-8")
    database = load_settings(config, None).database_path
    backtest = ["backtest", "--config", str(config), "--data", str(SAMPLE), "--strategy"]

    assert not database.exists()
    assert await asyncio.to_thread(main, [*backtest, "rsi"]) == 0  # no database: not checked
    note = "note: rsi not checked; `pairpilot strategy check rsi` before live"
    assert capsys.readouterr().err.splitlines().count(note) == 1

    async with open_database(database) as db:
        await record_check(db, "ema_cross")
        await record_check(db, "rsi", failed=["warm-up"])
    assert await asyncio.to_thread(main, [*backtest, "ema_cross"]) == 0
    assert "note:" not in capsys.readouterr().err  # passed at its current source
    assert await asyncio.to_thread(main, [*backtest, "rsi"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(lines) == 1
    assert lines[0].startswith("note: rsi FAILED (warm-up, defaults) ")
    assert lines[0].endswith("; `pairpilot strategy check rsi` before live")


async def test_a_pass_at_the_defaults_does_not_clear_a_backtest_at_other_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The gate reads a run's own parameters (a pass clears only those); so does the note."""
    config = tmp_path / "config.toml"
    config.write_text('data_dir = "data"\n', encoding="utf-8")
    database = load_settings(config, None).database_path
    async with open_database(database) as db:
        await record_check(db, "ema_cross")
        await record_check(db, "ema_cross", params={"fast": 8})
    backtest = ["backtest", "--config", str(config), "--data", str(SAMPLE), "--strategy"]
    tuned = [*backtest, "ema_cross", "--param", "fast=10", "--param", "stop_loss=0.02"]
    assert await asyncio.to_thread(main, tuned) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert lines == [
        "note: ema_cross not checked with these parameters (checked for defaults; fast=8); "
        "`pairpilot strategy check ema_cross --param fast=10 --param stop_loss=0.02` before live"
    ]
    assert await asyncio.to_thread(main, [*backtest, "ema_cross", "--param", "fast=8"]) == 0
    assert "note:" not in capsys.readouterr().err  # passed at exactly these

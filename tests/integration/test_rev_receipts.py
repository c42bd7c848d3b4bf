"""Hostile review of session 22 (issue 17): research receipts through the `pairpilot` command
(a real process, a real SQLite file). Bad input must be one clear line and store nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.integration.test_cli import SAMPLE, pairpilot
from tests.integration.test_cli_portfolio import BOTH, entry, write_config
from tests.integration.test_receipts import database


def stored_receipts(cwd: Path) -> list[str]:
    if not database(cwd).exists():
        return []
    with sqlite3.connect(database(cwd)) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM receipts")]


def test_a_chart_that_cannot_be_written_is_one_clear_line_and_stores_no_receipt(
    tmp_path: Path,
) -> None:
    """`--chart` into a folder that does not exist: today the backtest stores its receipt,
    then dies on write_bytes with a traceback; the receipt's id is never shown (an orphan)."""
    chart = tmp_path / "no-such-folder" / "chart.png"
    done = pairpilot("backtest", "--data", str(SAMPLE), "--chart", str(chart), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert stored_receipts(tmp_path) == []


def test_a_portfolio_chart_that_cannot_be_written_stores_no_receipt(tmp_path: Path) -> None:
    config = write_config(tmp_path, entry("BTC/USDT", 0.5) + entry("ETH/USDT", 0.4), BOTH)
    chart = tmp_path / "no-such-folder" / "chart.png"
    done = pairpilot("backtest", "--config", str(config), "--chart", str(chart), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert stored_receipts(tmp_path) == []

"""Hostile review of session 22 (issue 17): research receipts through the `pairpilot` command
(a real process, a real SQLite file) and from chat (the Bot API emulator). Bad input must be
one clear line and store nothing; /compare must not hide why two figures differ."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.integration.test_cli import SAMPLE, pairpilot
from tests.integration.test_cli_portfolio import BOTH, entry, write_config
from tests.integration.test_receipts import database
from tests.integration.test_telegram_receipts import RECEIPT, photo_for, receipt_rows
from tests.rigs.chat_rig import TRADER, chat_stack


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


async def test_compare_names_receipts_made_on_other_candles_or_other_backtest_code(
    tmp_path: Path,
) -> None:
    """Two receipts of the same strategy, parameters, terms and span, whose figures differ
    because one was made on other candles (the exchange revised them, a gap was backfilled)
    and by other backtest code (a receipt kept from before the kernel sold capped sales in
    parts): /compare says "data (both)", "params: the same", "terms: the same" and shows two
    sets of figures, with nothing saying why they differ."""
    async with chat_stack(tmp_path) as chat:
        for _ in range(500):
            await chat.trading.driver.step()
        ids = []
        for _ in range(2):
            photo = await photo_for(chat, "/backtest btcusdt ema_cross 1h 20")
            found = RECEIPT.search(photo.text)
            assert found, photo.text
            ids.append(found.group(1))
        first, second = ids
        body = json.loads(dict(await receipt_rows(chat))[second])
        body["series"][0]["candle_hash"] = "0" * 32  # other candles over the same span
        body["code"] = "1" * 32  # other backtest code
        body["result"] = {**body["result"], "trades": body["result"]["trades"] + 3}
        await chat.db.execute(
            "UPDATE receipts SET body = ? WHERE id = ?", (json.dumps(body), second)
        )
        lines = (await chat.ask(TRADER, f"/compare {first} {second}")).splitlines()
        assert not any(line.startswith("data (both)") for line in lines), lines
        assert any("candles" in line for line in lines), lines
        assert any("code" in line for line in lines), lines
